# im2latex-desktop: `make run` installs into .venv and starts the app; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PyTorch this project is tested with; override e.g. TORCH=torch for others.  The app does not
# need torchvision; it is installed for the test that checks model/resnet.py against its resnet18.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DATA ?= data
RUN ?= runs/latest
MODEL ?= resources/model
# a training run's time box: its learning rate decays over the end of it (train.json decay_share)
MINUTES ?= 110

.PHONY: run test install tex system-deps data data-web data-screen data-slice train train-bg train-stop promote gpu-pack eval bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,hotkey]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/im2latex-desktop

test: install
	$(BIN)/python -m pytest -q -ra tests

# Debian packages for rendering training data (TeX Live) and for the X11 end-to-end tests.
system-deps:
	bash packaging/install-system-deps.sh

# Build the corpus and render every split (at least 200k training samples).
data: install
	$(BIN)/im2latex data build --out $(DATA)
	$(MAKE) data-web data-screen

# PDF pages as a viewer rasterizes them at 60-100 % zoom (pdflatex at 60-96 dpi, used in training
# at their own pixel size): the small glyphs' own look, which a larger render scaled down lacks.
SCREEN_START ?= 0
SCREEN ?= 240000
data-screen: install
	$(BIN)/im2latex data render --corpus $(DATA)/corpus --out $(DATA)/shards --split train \
		--renderer tex-screen --start $(SCREEN_START) --limit $(SCREEN) --workers 2 --quiet

# Web-page looks for training (#9): KaTeX in headless Chromium at device scale 1 and 2 for
# 40k training formulas from the 100,000th on (needs Chromium, Node.js and `npm ci` in
# model/data/web; packaging/install-system-deps.sh installs them).  Resumable.
data-web: install
	$(BIN)/im2latex data render --corpus $(DATA)/corpus --out $(DATA)/shards --split train \
		--renderer katex --start 100000 --limit 40000 --workers 1 --batch-size 1000

# A session's start on a fresh clone, before make train-bg (about 12 minutes on 2 cores): the
# corpus with the bundled vocabulary, validation and test, and one slice of training formulas,
# SLICE formulas from SLICE_START with pdflatex, WEB more with KaTeX from WEB_START (default: right
# after the slice), and data-screen's screen-resolution renders.  Pick a slice
# the bundle has seen least (MODEL_CARD.md lists the slices each session rendered).
SLICE_START ?= 281000
SLICE ?= 8000
WEB ?= 8000
WEB_START ?= $(shell echo $$(($(SLICE_START) + $(SLICE))))
data-slice: install
	test -f $(DATA)/corpus/train.jsonl || $(BIN)/im2latex data corpus --out $(DATA)/corpus --vocab $(MODEL)/vocab.json
	$(BIN)/im2latex data render --corpus $(DATA)/corpus --out $(DATA)/shards --split val --workers 2 --quiet
	$(BIN)/im2latex data render --corpus $(DATA)/corpus --out $(DATA)/shards --split test --workers 2 --quiet
	$(BIN)/im2latex data render --corpus $(DATA)/corpus --out $(DATA)/shards --split train --workers 2 --quiet \
		--start $(SLICE_START) --limit $(SLICE)
	$(MAKE) data-screen
	cd model/data/web && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
		PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund; }
	$(BIN)/im2latex data render --corpus $(DATA)/corpus --out $(DATA)/shards --split train --renderer katex \
		--start $(WEB_START) --limit $(WEB) --workers 1 --batch-size 500 --quiet

train: install
	$(BIN)/im2latex train --config train.json --data $(DATA) --out $(RUN) --resume $(MODEL) --max-minutes $(MINUTES)

# Keep the CPU busy while you work: resume from the bundled model at the lowest priority.
train-bg: install
	mkdir -p $(RUN)
	nohup nice -n 19 $(BIN)/im2latex train --config train.json --data $(DATA) --out $(RUN) \
		--resume $(MODEL) --max-minutes $(MINUTES) > $(RUN)/train.log 2>&1 &
	@echo "training in the background; log: $(RUN)/train.log, metrics: $(RUN)/metrics.png"

train-stop:
	-pkill -TERM -f "im2latex train" && echo "asked training to save and stop"

# A session's end: bundle the run's last or best checkpoint if it reads the first 300 validation
# samples better than the bundled model (scores in $(RUN)/promote.json); then update the model card.
promote: install
	$(BIN)/im2latex promote $(RUN) --bundle $(MODEL) --split $(DATA)/shards/val --out $(RUN)/promote.json

# A lent GPU machine (no TeX, 64 MiB a call): pack rendered samples and formulas to draw there
# into artifacts/gpu/, then carry it in one time-boxed call (see model/gpu_session.py, README).
gpu-pack: install
	$(BIN)/python -m model.gpu_session pack --data $(DATA)

eval: install
	$(BIN)/im2latex evaluate --split $(DATA)/shards/val --out $(RUN)/val_report.json

# Every benchmark (minutes): benchmarks/results.json, benchmarks/RESULTS.md and the README's table;
# e.g. BENCH_ARGS="--quick" or BENCH_ARGS="--model runs/latest/best.pt --parts latency,startup".
bench: install
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache

# Packaging (packaging/, README "Install and desktop integration").
.PHONY: wheel bundle bundle-check

# sdist and wheel in dist/, carrying the bundled model, icons and desktop entries.
wheel: install
	$(BIN)/python -m build --outdir dist .

# Stand-alone one-folder app in dist/im2latex/ (PyInstaller, several minutes; not part of `make test`).
bundle: install
	$(BIN)/pip install -q -e '.[test,bundle]'
	nice -n 10 $(BIN)/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/im2latex.spec
	du -sh dist/im2latex

# The built bundle starts, answers --version, and reads a rendered formula on the CPU.
bundle-check:
	$(BIN)/python packaging/bundle_check.py dist/im2latex

# The snip-style evaluation suite (issue 9): render held-out formulas as users snip them (pdf,
# zoom, web, hidpi, dark, im2latex-100k) into $(SUITE), then score the model on every style.
.PHONY: eval-suite
SUITE ?= $(DATA)/suite
eval-suite: install
	cd model/data/web && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
		PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund; }
	nice -n 10 $(BIN)/im2latex data suite --out $(SUITE) --corpus $(DATA)/corpus
	$(BIN)/im2latex evaluate --suite $(SUITE) --model $(MODEL) --out $(RUN)/suite_report.json

# Reliability (issue 10): 10,000 fuzzed inputs through the reading path, and a 1,000-recognition
# soak of the app's worker thread; each prints and writes its figures to benchmarks/*.json.
.PHONY: fuzz soak bounds

fuzz: install
	nice -n 10 $(BIN)/python benchmarks/fuzz.py --cases 10000

soak: install
	QT_QPA_PLATFORM=offscreen nice -n 10 $(BIN)/python benchmarks/soak.py --recognitions 1000

# How often the decoding bounds (length, time, repetition) hit on validation snips.
bounds: install
	nice -n 10 $(BIN)/python benchmarks/decoding_bounds.py --split $(DATA)/shards/val --samples 300
