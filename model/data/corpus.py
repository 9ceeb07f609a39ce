"""``im2latex data corpus``: the training formulas, filtered, deduplicated and split.

Every source yields ``(latex, source)`` pairs: the shared lists (``school``, ``research``),
user lists (``user:<stem>``), formulas harvested from installed packages' documentation
(``harvest``) and the grammar generator (``generated``).  Each formula is respelled
(:mod:`model.data.respell`), normalized to its canonical tokens, and kept only when

* it parses, has 1 to ``max_tokens`` tokens, balanced ``\\left``/``\\right`` and environments,
  and writes back to LaTeX that normalizes to the same tokens (checked for real sources;
  the generator's output is tested to do so);
* every command in it is *known*: emitted by the generator, or used by at least
  ``min_command_lines`` formulas of the shared lists, and not a layout command a snip cannot
  show (``\\hskip``, ``\\tiny``, ``\\phantom``...);
* the vocabulary covers it.

Duplicates (same canonical tokens, whatever the spelling or source) are kept once, the first
source winning; sources are read real-first, so a formula that is both real and generated
counts as real.

**Splits** come from a hash of the canonical tokens (sha1), not from chance, so a formula lands
in the same split in every build, whichever sources are added: hashes below ``val_fraction``
go to validation, the next ``test_fraction`` to test, capped at ``split_cap`` each (lowest
hashes first) so evaluation stays affordable on a CPU.  Formulas in the held-out hash range
beyond the cap are left out of every split (never trained on), and **generated formulas never
enter validation or test** (those in the held-out range are dropped): val/test measure real
notation only.

**Vocabulary**: every token the generator can emit plus every token of at least
``min_token_count`` distinct shared-list formulas, so it depends only on the generator and
the shared lists (not on installed packages or user lists) and stays stable.  ``--vocab``
reuses a saved vocabulary (the bundled model's) instead; formulas it does not cover are
dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from model.data import generator as generator_module
from model.data.harvest import HarvestStats, harvest
from model.data.respell import respell
from model.data.shared_lists import (CorpusError, default_corpus_dir, research_formulas,
                                     school_formulas, user_formulas)
from model.errors import Im2LatexError
from model.tokenizer import ARG_COUNT, LatexSyntaxError, detokenize, normalize, normalize_tokens, tokenize
from model.atomic import atomic_write
from model.vocab import Vocab, write_json_atomic

SPLITS = ("train", "val", "test")
SHARED_SOURCES = ("school", "research")

# Commands that change layout or size only, or that we do not render: a formula using one
# is dropped, however often the lists use it.
UNSUPPORTED_COMMANDS = frozenset({
    "\\postdisplaypenalty", "\\penalty", "\\null", "\\tiny", "\\scriptsize", "\\footnotesize",
    "\\small", "\\normalsize", "\\large", "\\Large", "\\LARGE", "\\huge", "\\Huge", "\\rule",
    "\\hbox", "\\vbox", "\\vcenter", "\\hskip", "\\vskip", "\\bgroup", "\\egroup", "\\noalign",
    "\\smallskip", "\\medskip", "\\bigskip", "\\enskip", "\\lefteqn", "\\MakeLowercase",
    "\\MakeUppercase", "\\shoveright", "\\shoveleft", "\\phantom", "\\vphantom", "\\hphantom",
    "\\smash", "\\raisebox", "\\multicolumn", "\\newline", "\\linebreak", "\\nonumber",
    "\\label", "\\ref", "\\eqref", "\\cite", "\\color", "\\textcolor", "\\colorbox", "\\href",
    "\\url", "\\mathop", "\\mathbin", "\\mathrel", "\\mathord", "\\atop", "\\over", "\\choose",
    "\\cr", "\\sb", "\\sp", "\\(", "\\)", "\\[", "\\]", "\\hspace", "\\vspace", "\\kern",
    "\\mkern", "\\mskip", "\\hfill",
})


# Commands with an argument that the tokenizer does not know: it unwraps a one-construct
# argument ``\\fbox{\\sqrt{2}}`` to ``\\fbox\\sqrt{2}``, which no longer means the same.
UNBRACED_ARGUMENT = frozenset({
    "\\fbox", "\\emph", "\\textsc", "\\textsl", "\\textup", "\\pmb", "\\overparen",
    "\\underparen", "\\overleftrightarrow", "\\underrightarrow", "\\underleftarrow",
    "\\underleftrightarrow", "\\substack", "\\xmapsto", "\\xleftrightarrow", "\\mbox",
    "\\hbox", "\\sideset", "\\genfrac", "\\dfrac", "\\tbinom", "\\dbinom", "\\bm",
})
_MULTI_TOKEN_STARTS = frozenset({"\\left", "\\big", "\\Big", "\\bigg", "\\Bigg", "^", "_"})


class _Skip(Exception):
    """A formula left out, with the reason counted in the summary."""


@dataclass
class CorpusSummary:
    """Counts of a corpus build, written as summary.json and printed at the end."""

    out_dir: str
    splits: dict[str, dict[str, int]] = field(default_factory=dict)   # split -> source -> n
    read: dict[str, int] = field(default_factory=dict)                # source -> formulas read
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # reason -> source -> n
    duplicates: dict[str, int] = field(default_factory=dict)          # source -> n
    held_out_over_cap: int = 0
    vocab_size: int = 0
    vocab_reused: bool = False
    known_commands: int = 0
    rare_commands: dict[str, int] = field(default_factory=dict)       # most used dropped commands
    harvest: dict[str, object] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def total(self, split: str) -> int:
        return sum(self.splits.get(split, {}).values())

    def to_json(self) -> dict:
        data = asdict(self)
        data["totals"] = {s: self.total(s) for s in SPLITS}
        return data

    def format(self) -> str:
        """A short human-readable report."""
        sources = sorted({s for counts in self.splits.values() for s in counts} | set(self.read))
        lines = [f"Corpus written to {self.out_dir} in {self.seconds:.1f} s",
                 f"{'source':<22}{'read':>9}{'train':>9}{'val':>7}{'test':>7}"]
        for source in sources:
            lines.append(f"{source:<22}{self.read.get(source, 0):>9}"
                         + "".join(f"{self.splits.get(s, {}).get(source, 0):>{w}}"
                                   for s, w in (("train", 9), ("val", 7), ("test", 7))))
        lines.append(f"{'total':<22}{sum(self.read.values()):>9}{self.total('train'):>9}"
                     f"{self.total('val'):>7}{self.total('test'):>7}")
        lines.append("skipped:")
        for reason, by_source in sorted(self.skipped.items(), key=lambda kv: -sum(kv[1].values())):
            detail = ", ".join(f"{s} {n}" for s, n in sorted(by_source.items()))
            lines.append(f"  {reason}: {sum(by_source.values())} ({detail})")
        lines.append(f"  duplicates: {sum(self.duplicates.values())} "
                     f"({', '.join(f'{s} {n}' for s, n in sorted(self.duplicates.items()))})")
        if self.held_out_over_cap:
            lines.append(f"  held-out range beyond the split cap (in no split): {self.held_out_over_cap}")
        lines.append(f"vocabulary: {self.vocab_size} tokens ({'reused' if self.vocab_reused else 'built'}); "
                     f"known commands: {self.known_commands}")
        if self.rare_commands:
            lines.append("most used dropped commands: "
                         + ", ".join(f"{c} {n}" for c, n in list(self.rare_commands.items())[:12]))
        return "\n".join(lines)


# ------------------------------------------------------------------------ per-formula steps


def canonical_tokens(latex: str) -> list[str]:
    """Respelled, normalized tokens of one source formula; LatexSyntaxError if it cannot be."""
    return normalize_tokens(respell(tokenize(latex)))


def _check(tokens: Sequence[str], max_tokens: int, round_trip: bool = True) -> None:
    if not tokens:
        raise _Skip("empty after normalization")
    if len(tokens) > max_tokens:
        raise _Skip(f"longer than {max_tokens} tokens")
    if tokens.count("\\left") != tokens.count("\\right"):
        raise _Skip("unbalanced \\left/\\right")
    begins = Counter(t[7:] for t in tokens if t.startswith("\\begin{"))
    ends = Counter(t[5:] for t in tokens if t.startswith("\\end{"))
    if begins != ends:
        raise _Skip("unbalanced environment")
    for i, token in enumerate(tokens[:-1]):
        following = tokens[i + 1]
        if token == "\\\\" and following == "[":
            raise _Skip("row starts with [ (read as a skip length after \\\\)")
        if token in UNBRACED_ARGUMENT and following != "{" and (
                following in ARG_COUNT or following in _MULTI_TOKEN_STARTS or following.startswith("\\begin{")):
            raise _Skip("argument braces lost in normalization")
    if round_trip and normalize(detokenize(list(tokens))) != list(tokens):
        raise _Skip("canonical LaTeX does not round-trip")


def commands_of(tokens: Iterable[str]) -> set[str]:
    """Control sequences (and environment tokens) of a token list."""
    return {t for t in tokens if t.startswith("\\")}


def split_hash(key: str) -> float:
    """A stable number in [0, 1) from a formula's canonical key (sha1, first 64 bits)."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:16], 16) / 2.0 ** 64


def canonical_key(tokens: Sequence[str]) -> str:
    """The deduplication and hashing key: canonical tokens, one per line."""
    return "\n".join(tokens)


def hash_region(h: float, val_fraction: float, test_fraction: float) -> str:
    """``val``, ``test`` or ``train`` for a split hash (before the split cap is applied)."""
    if h < val_fraction:
        return "val"
    if h < val_fraction + test_fraction:
        return "test"
    return "train"


def build_vocab(shared_token_lists: Iterable[Sequence[str]], min_count: int = 5) -> Vocab:
    """Generator tokens plus tokens seen in at least ``min_count`` shared-list formulas."""
    return Vocab.build(([*set(tokens)] for tokens in shared_token_lists), min_count=min_count,
                       always=generator_module.generator_tokens())


def load_vocab(path: str | Path) -> Vocab:
    """A saved vocabulary, or CorpusError saying why it cannot be used."""
    try:
        return Vocab.load(path)
    except FileNotFoundError:
        raise CorpusError(f"The vocabulary file {path} does not exist.") from None
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise CorpusError(f"The vocabulary file {path} is not a vocabulary ({e}).") from None


# ------------------------------------------------------------------------ the build


@dataclass
class _Record:
    tokens: tuple[str, ...]
    source: str


def _sources(corpus_dir: Path, extra_lists: Sequence[Path], generated: int, seed: int,
             use_harvest: bool, harvest_seconds: float, harvest_stats: HarvestStats,
             ) -> Iterator[tuple[str, str]]:
    yield from school_formulas(corpus_dir)
    yield from research_formulas(corpus_dir)
    for path in extra_lists:
        yield from user_formulas(path)
    if use_harvest:
        yield from harvest(time_limit=harvest_seconds, stats=harvest_stats)
    for latex in generator_module.generate(generated, seed):
        yield latex, "generated"


def _write_jsonl(path: Path, records: Iterable[_Record]) -> None:
    """Write atomically: a crash leaves the old file or the new one."""
    with atomic_write(path) as f:
        for record in records:
            f.write(json.dumps({"latex": detokenize(list(record.tokens)), "source": record.source},
                               ensure_ascii=False) + "\n")


def build_corpus(out_dir: str | Path, corpus_dir: str | Path | None = None,
                 extra_lists: Sequence[str | Path] = (), generated: int = 150_000, seed: int = 0,
                 vocab: Vocab | str | Path | None = None, *, use_harvest: bool = True,
                 harvest_seconds: float = 30.0, val_fraction: float = 0.015,
                 test_fraction: float = 0.015, split_cap: int = 3000, max_tokens: int = 160,
                 min_command_lines: int = 10, min_token_count: int = 5,
                 log: Callable[[str], None] | None = None) -> CorpusSummary:
    """Build ``<out>/{train,val,test}.jsonl``, ``vocab.json`` and ``summary.json``."""
    start = time.monotonic()
    log = log or (lambda message: None)
    out = Path(out_dir)
    corpus = Path(corpus_dir) if corpus_dir is not None else default_corpus_dir()
    lists = [Path(p) for p in extra_lists]
    for path in lists:
        if not path.is_file():
            raise CorpusError(f"The formula list {path} does not exist.")
    if generated < 0 or split_cap < 0 or not (0 <= val_fraction and 0 <= test_fraction
                                                 and val_fraction + test_fraction < 1):
        raise CorpusError("Generated count and split cap must not be negative, and the "
                          "validation and test fractions must add up to less than 1.")
    given_vocab = load_vocab(vocab) if isinstance(vocab, (str, Path)) else vocab
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CorpusError(f"Cannot create the output folder {out} ({e.strerror}).") from None

    summary = CorpusSummary(out_dir=str(out), vocab_reused=given_vocab is not None)
    summary.settings = {"corpus_dir": str(corpus), "extra_lists": [str(p) for p in lists],
                        "generated": generated, "seed": seed, "harvest": use_harvest,
                        "val_fraction": val_fraction, "test_fraction": test_fraction,
                        "split_cap": split_cap, "max_tokens": max_tokens,
                        "min_command_lines": min_command_lines, "min_token_count": min_token_count}
    skipped: dict[str, Counter[str]] = defaultdict(Counter)
    read: Counter[str] = Counter()
    harvest_stats = HarvestStats()
    stage = time.monotonic()

    # 1. read and normalize every source
    records: list[_Record] = []
    intern = sys.intern
    for latex, source in _sources(corpus, lists, generated, seed, use_harvest, harvest_seconds,
                                  harvest_stats):
        read[source] += 1
        try:
            tokens = canonical_tokens(latex)
            # generated formulas round-trip by construction (tests/test_generator.py): skip the
            # costly check for them
            _check(tokens, max_tokens, round_trip=source != "generated")
        except LatexSyntaxError as e:
            skipped[f"syntax error: {e}"][source] += 1
            continue
        except _Skip as e:
            skipped[str(e)][source] += 1
            continue
        except RecursionError:
            skipped["nested too deeply"][source] += 1
            continue
        records.append(_Record(tuple(intern(t) for t in tokens), source))
    summary.stage_seconds["read and normalize"] = round(time.monotonic() - stage, 2)
    log(f"read {sum(read.values())} formulas, {len(records)} normalized "
        f"({summary.stage_seconds['read and normalize']} s)")
    stage = time.monotonic()

    # 2. known commands: the generator's, plus those common in the shared lists
    command_lines: Counter[str] = Counter()
    for record in records:
        if record.source in SHARED_SOURCES:
            command_lines.update(commands_of(record.tokens))
    known = {t for t in generator_module.generator_tokens() if t.startswith("\\")}
    known |= {c for c, n in command_lines.items() if n >= min_command_lines}
    known -= UNSUPPORTED_COMMANDS
    summary.known_commands = len(known)
    dropped_commands: Counter[str] = Counter()
    kept: list[_Record] = []
    for record in records:
        unknown = commands_of(record.tokens) - known
        if unknown:
            reason = ("unsupported command" if unknown & UNSUPPORTED_COMMANDS else "rare command")
            skipped[reason][record.source] += 1
            dropped_commands.update(unknown)
            continue
        kept.append(record)
    summary.rare_commands = dict(dropped_commands.most_common(40))

    # 3. vocabulary
    if given_vocab is None:
        shared_unique = {r.tokens for r in kept if r.source in SHARED_SOURCES}
        given_vocab = build_vocab(shared_unique, min_count=min_token_count)
    vocab_obj = given_vocab
    summary.vocab_size = len(vocab_obj)

    # 4. vocabulary coverage, deduplication
    seen: set[str] = set()
    unique: list[tuple[_Record, str]] = []
    duplicates: Counter[str] = Counter()
    for record in kept:
        if not vocab_obj.covers(list(record.tokens)):
            skipped["token outside the vocabulary"][record.source] += 1
            continue
        key = canonical_key(record.tokens)
        if key in seen:
            duplicates[record.source] += 1
            continue
        seen.add(key)
        unique.append((record, key))
    del seen, records, kept
    summary.duplicates = dict(duplicates)
    summary.stage_seconds["filter and deduplicate"] = round(time.monotonic() - stage, 2)
    stage = time.monotonic()

    # 5. hash split, with the cap on validation and test
    by_split: dict[str, list[tuple[float, _Record]]] = {s: [] for s in SPLITS}
    for record, key in unique:
        h = split_hash(key)
        region = hash_region(h, val_fraction, test_fraction)
        if region != "train" and record.source == "generated":
            skipped["generated formula in the held-out hash range"][record.source] += 1
            continue
        by_split[region].append((h, record))
    for split in ("val", "test"):
        by_split[split].sort(key=lambda item: item[0])
        summary.held_out_over_cap += max(0, len(by_split[split]) - split_cap)
        by_split[split] = by_split[split][:split_cap]
    train = [record for _, record in by_split["train"]]
    random.Random(seed).shuffle(train)
    outputs = {"train": train, "val": [r for _, r in by_split["val"]],
               "test": [r for _, r in by_split["test"]]}
    for split, split_records in outputs.items():
        _write_jsonl(out / f"{split}.jsonl", split_records)
        summary.splits[split] = dict(sorted(Counter(r.source for r in split_records).items()))
    vocab_obj.save(out / "vocab.json")
    summary.stage_seconds["split and write"] = round(time.monotonic() - stage, 2)

    summary.read = dict(read)
    summary.skipped = {reason: dict(by_source) for reason, by_source in skipped.items()}
    summary.harvest = asdict(harvest_stats) if use_harvest else {}
    summary.seconds = round(time.monotonic() - start, 2)
    write_json_atomic(out / "summary.json", summary.to_json())
    return summary


# ------------------------------------------------------------------------ command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``im2latex data corpus``."""
    parser.add_argument("--out", required=True, type=Path, help="output folder (e.g. data/corpus)")
    parser.add_argument("--corpus-dir", type=Path, default=None,
                        help="folder of the shared formula lists (default: $IM2LATEX_CORPUS, "
                             "else ../shared/corpus next to the repository)")
    parser.add_argument("--extra-list", type=Path, nargs="+", action="extend", default=[],
                        metavar="FILE", help="more formula lists, one formula per line "
                                             "(token-spaced lines are fine)")
    parser.add_argument("--generated", type=int, default=150_000,
                        help="number of generated formulas (training only; default 150000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator and shuffle")
    parser.add_argument("--vocab", type=Path, default=None,
                        help="reuse this vocabulary (the bundled model's) instead of building one")
    parser.add_argument("--no-harvest", action="store_true",
                        help="do not read formulas from installed packages' documentation")
    parser.add_argument("--harvest-seconds", type=float, default=30.0,
                        help="time limit of the documentation harvest (default 30)")
    parser.add_argument("--split-cap", type=int, default=3000,
                        help="most formulas in validation and in test (default 3000)")


def run(args: argparse.Namespace) -> int:
    """Build the corpus and print its summary; 1 with a one-line message on bad input."""
    try:
        summary = build_corpus(
            args.out, args.corpus_dir, args.extra_list, args.generated, args.seed, args.vocab,
            use_harvest=not args.no_harvest, harvest_seconds=args.harvest_seconds,
            split_cap=args.split_cap, log=lambda message: print(message, file=sys.stderr, flush=True))
    except Im2LatexError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary.format())
    return 0
