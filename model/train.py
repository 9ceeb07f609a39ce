"""`im2latex train`: a readable training loop driven by a small config.

One process by default; several through ``torchrun`` (DistributedDataParallel).  The values used
are saved with every checkpoint, the metrics go to ``metrics.jsonl`` and ``metrics.png`` in the
run folder, and ``last.pt`` / ``best.pt`` can be resumed from (a bundle directory with weights
only also works: the optimizer then starts fresh, unless the training checkpoint the bundle was
exported from is still on disk at the same step; see ``load_resumed``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from .average import average_checkpoints
from .batching import pad_batch
from .checkpoint import LoadedModel, load_model, save_training_checkpoint
from .config import ModelConfig
from .errors import Im2LatexError
from .export import portable_path
from .network import Im2LatexModel, count_parameters
from .vocab import PAD, Vocab, write_json_atomic


@dataclass
class TrainConfig:
    data: str = "data"                 # folder with shards/train and shards/val
    out: str = "runs/latest"           # run folder: checkpoints, metrics
    resume: str | None = None          # training checkpoint or bundle to start from
    vocab: str | None = None           # default: the resumed model's, else <data>/corpus/vocab.json
    steps: int = 20000                 # optimizer steps in this run
    max_minutes: float = 0.0           # stop cleanly (and save) after this long; 0 = no limit
    batch_size: int = 32               # samples per batch at most ...
    batch_pixels: int = 32 * 64 * 320  # ... and at most this many input pixels per batch
    lr: float = 6e-4
    min_lr_ratio: float = 0.05         # cosine decays to lr * this
    warmup: int = 500
    # The learning rate holds at its peak after warm-up and decays (cosine) over the last
    # decay_share of the run; 1 = over the whole run.  Below 1 the weights where the decay
    # starts are saved as stable.pt, and the next run continues from them (see load_resumed).
    decay_share: float = 1.0
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    # at most this share of an epoch is grammar-generated formulas (they are 40 % of the corpus,
    # none of validation, test or real snips); 1 = as rendered
    generated_share: float = 1.0
    # kinds of notation (keys of model.metrics.STRUCTURES) or length groups (LENGTH_BUCKETS) drawn
    # more often than once an epoch, each copy augmented anew: the weak, rare kinds (matrices are
    # 5 % of the corpus, multi-line blocks 3 %) and long formulas; a formula of several kinds takes
    # the largest weight
    kind_weights: dict = field(default_factory=dict)
    clip: float = 1.0
    log_every: int = 25
    eval_every: int = 500
    eval_samples: int = 256
    save_every: int = 250
    # keep the last N saves of last.pt (hard links in snapshots/, no extra disk) and, at the end,
    # write their mean as average.pt: a candidate for promote (see model/average.py); 0 = none
    snapshots: int = 4
    workers: int = 1
    seed: int = 0
    amp: str = "auto"                  # "auto": bf16 where it is fast (CUDA, or CPUs with AVX512-BF16); "off"
    channels_last: bool = True
    threads: int = 0                   # torch intra-op threads; 0 = all cores
    model: dict = field(default_factory=dict)  # ModelConfig overrides for a fresh model

    @classmethod
    def from_sources(cls, file: str | None, overrides: dict) -> "TrainConfig":
        """Defaults, then the JSON/TOML file, then command-line flags."""
        values: dict = {}
        if file:
            text = Path(file).read_bytes()
            values = tomllib.loads(text.decode()) if file.endswith(".toml") else json.loads(text)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise SystemExit(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**values)


# ---------------------------------------------------------------- set-up


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Single process, or one process per GPU/CPU when started by torchrun."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, local = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return Runtime(device, rank, world)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Runtime(device)


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 autocast pays off on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX") and _cpu_has_bf16()
    except AttributeError:
        return False


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load_resumed(resume: str | Path) -> tuple[Path, LoadedModel]:
    """What ``--resume`` loads, and from where.  A bundle whose run held its peak learning rate
    before decaying (``decay_share`` < 1) continues from the weights where the decay started
    (``stable_checkpoint``, at ``stable_step``), so runs add up to one long constant-rate run;
    else a bundle resumes from the training checkpoint it was exported from (``exported_from``,
    at the bundle's step): the same weights at full precision, with Adam's moments.  Either
    only while that file is still on disk at that step; anything else resumes from ``resume``
    itself (a fresh optimizer)."""
    resume = Path(resume)
    try:
        meta = json.loads((resume / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None  # not a bundle: a checkpoint file
    if isinstance(meta, dict):
        for key, step_key in (("stable_checkpoint", "stable_step"), ("exported_from", "total_steps")):
            try:
                source = Path(meta[key])
                if source.is_file():
                    loaded = load_model(source, device="cpu")
                    if loaded.state.get("step") == meta.get(step_key):
                        return source, loaded
            except (OSError, KeyError, TypeError, Im2LatexError):
                pass  # no usable source of this kind
    return resume, load_model(resume, device="cpu")


def build_model(cfg: TrainConfig, rt: Runtime) -> tuple[Im2LatexModel, ModelConfig, Vocab, dict]:
    """A resumed model (weights, vocabulary, saved state) or a fresh one for the corpus vocabulary."""
    if cfg.resume:
        source, loaded = load_resumed(cfg.resume)
        if source != Path(cfg.resume) and rt.main:
            print(f"resuming {cfg.resume} from {source} (step {loaded.state.get('step')}, with its optimizer state)",
                  flush=True)
        model, mcfg, vocab = loaded.model, loaded.config, loaded.vocab
        if cfg.model:
            model, mcfg = _reshape_resumed(model, mcfg, cfg.model)
        state = dict(loaded.state or {})
        state["meta"] = dict(loaded.meta or {})
        model.train()
    else:
        vocab_path = Path(cfg.vocab) if cfg.vocab else Path(cfg.data) / "corpus" / "vocab.json"
        vocab = Vocab.load(vocab_path)
        base = ModelConfig().to_dict()
        base.update(cfg.model)
        base["vocab_size"] = len(vocab)
        mcfg = ModelConfig.from_dict(base)
        torch.manual_seed(cfg.seed)
        model = Im2LatexModel(mcfg)
        state = {"meta": {}}
    return model.to(rt.device), mcfg, vocab, state


# The meta of a run's stable point (see lr_at): where it is, and its step.
STABLE_KEYS = ("stable_checkpoint", "stable_step")

# Settings a resumed model may change: they leave every weight's shape as it is.
RESUME_OVERRIDES = ("encoder_stride", "dropout")


def _reshape_resumed(model: Im2LatexModel, mcfg: ModelConfig, overrides: dict) -> tuple[Im2LatexModel, ModelConfig]:
    """The resumed weights in a model built with ``overrides`` (e.g. finer feature cells)."""
    current = mcfg.to_dict()
    refused = sorted(k for k, v in overrides.items() if k not in RESUME_OVERRIDES and current.get(k) != v)
    if refused:
        raise ValueError(f"a resumed model keeps its shape: --model-config may only change "
                         f"{', '.join(RESUME_OVERRIDES)}, not {', '.join(refused)}")
    if all(current.get(k) == v for k, v in overrides.items()):
        return model, mcfg
    new = ModelConfig.from_dict({**current, **overrides})
    reshaped = Im2LatexModel(new)
    reshaped.load_state_dict(model.state_dict())
    return reshaped.train(), new


def run_progress(step: int, cfg: TrainConfig, minutes: float = 0.0) -> float:
    """How far the run is past its warm-up, 0 to 1: by steps, or by ``max_minutes`` when that
    runs out first (a time-boxed run still ends its schedule)."""
    progress = min(1.0, max(0, step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.max_minutes:
        progress = max(progress, min(1.0, minutes / cfg.max_minutes))
    return progress


def decaying(step: int, cfg: TrainConfig, minutes: float = 0.0) -> bool:
    """True once the learning rate has left its peak for the final decay (never before the end
    of the warm-up; with ``decay_share`` 1, right after it)."""
    return step >= cfg.warmup and run_progress(step, cfg, minutes) > 1.0 - cfg.decay_share


def lr_at(step: int, cfg: TrainConfig, minutes: float = 0.0) -> float:
    """Linear warm-up, the peak until the last ``decay_share`` of the run, then cosine decay to
    lr * min_lr_ratio.

    Sessions each train a couple of hours and every one must end with a finished (decayed)
    model, but a run that resumes a decayed model at the peak rate first loses ground (in-run
    validation fell for the first ~500 steps of every session, Adam's moments carried over or
    not).  Holding the peak and decaying only at the end lets the next run continue the
    constant-rate weights (stable.pt) instead: one long run, cooled down at each session's end."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    hold = 1.0 - cfg.decay_share
    progress = run_progress(step, cfg, minutes)
    if progress <= hold:
        return cfg.lr
    q = (progress - hold) / cfg.decay_share
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * q)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and embeddings' positional tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # the fused kernel is ~15 % of a CPU step faster than the per-tensor loop (measured: py-spy)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8, fused=True)


# ---------------------------------------------------------------- data


def collate(batch: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad images (right/bottom) and token ids (with PAD) of one bucketed batch."""
    arrays = [b[0] for b in batch]
    ids = [torch.as_tensor(b[1], dtype=torch.long) for b in batch]
    images, sizes = pad_batch(arrays)
    tokens = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=PAD)
    return images, sizes, tokens


def make_loader(split_dir: Path, vocab: Vocab, mcfg: ModelConfig, cfg: TrainConfig, rt: Runtime,
                augment: bool, shuffle: bool, limit: int | None = None):
    from .data.shards import BucketBatchSampler, FormulaDataset

    dataset = FormulaDataset(split_dir, vocab, mcfg.input, augment=augment, seed=cfg.seed)
    widths, heights = dataset.widths, dataset.heights
    if limit is not None:
        widths, heights = widths[:limit], heights[:limit]
    keep = None
    if augment:
        latex = dataset.reader.latex[:len(widths)]
        keep = combine_weights(generated_keep(latex, Path(cfg.data) / "corpus" / "train.jsonl",
                                              cfg.generated_share, announce=rt.main),
                               kind_weights(latex, cfg.kind_weights, announce=rt.main))
    sampler = BucketBatchSampler(widths, batch_size=cfg.batch_size, max_pixels=cfg.batch_pixels,
                                 heights=heights, shuffle=shuffle, seed=cfg.seed, rank=rt.rank, world=rt.world,
                                 keep=keep)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0, prefetch_factor=4 if cfg.workers > 0 else None,
        worker_init_fn=_worker_init)
    return dataset, sampler, loader


def generated_keep(latex: Sequence[str], corpus_file: Path, share: float, announce: bool = False) -> np.ndarray | None:
    """Per-sample chance to be in an epoch so that grammar-generated formulas make up at most
    ``share`` of it (None: no cap needed).  Shards do not record a formula's source; the
    corpus they were rendered from does."""
    if share >= 1.0:
        return None
    if not corpus_file.exists():
        if announce:
            print(f"generated_share {share}: no {corpus_file} to tell generated formulas apart; all kept", flush=True)
        return None
    generated = set()
    with corpus_file.open() as f:
        for line in f:
            row = json.loads(line)
            if str(row.get("source", "")).startswith("generated"):
                generated.add(row["latex"])
    is_generated = np.fromiter((x in generated for x in latex), dtype=bool, count=len(latex))
    n_gen = int(is_generated.sum())
    if n_gen == 0 or n_gen <= share * len(latex):
        return None
    chance = share * (len(latex) - n_gen) / (n_gen * (1.0 - share))
    if announce:
        print(f"generated formulas: {n_gen} of {len(latex)} samples, each in an epoch with chance "
              f"{chance:.2f} (share {share:.0%})", flush=True)
    return np.where(is_generated, chance, 1.0)


def kind_weights(latex: Sequence[str], weights: dict, announce: bool = False) -> np.ndarray | None:
    """Expected appearances per epoch of each sample from the kinds of notation it holds and its
    length group (the largest weight of these; 1 for none).  Shards hold the corpus's canonical
    LaTeX, so its tokens are the normal form's."""
    from .metrics import LENGTH_BUCKETS, STRUCTURES, length_bucket, structures
    from .tokenizer import tokenize

    known = [*STRUCTURES, *LENGTH_BUCKETS]
    unknown = set(weights) - set(known)
    if unknown:
        raise SystemExit(f"kind_weights: unknown kinds {sorted(unknown)}; known: {known}")
    if any(not (isinstance(w, (int, float)) and 0 <= w <= 10) for w in weights.values()):
        raise SystemExit("kind_weights: each weight must be a number from 0 to 10")
    if not weights:
        return None
    out = np.ones(len(latex), dtype=np.float64)
    counts = dict.fromkeys(weights, 0)
    for i, text in enumerate(latex):
        tokens = tokenize(text)
        kinds = [k for k in [*structures(tokens), length_bucket(len(tokens))] if k in weights]
        if kinds:
            out[i] = max(weights[k] for k in kinds)
            for k in kinds:
                counts[k] += 1
    if announce:
        print("kind weights: " + ", ".join(f"{k} x{weights[k]:g} ({counts[k]} samples)" for k in weights)
              + f"; an epoch holds {out.sum() / len(out):.2f}x the samples it would unweighted", flush=True)
    return out


def combine_weights(*weights: np.ndarray | None) -> np.ndarray | None:
    """The product of per-sample weights (None: 1 for all)."""
    given = [w for w in weights if w is not None]
    return np.prod(given, axis=0) if given else None


def close_loader(loader) -> None:
    """Stop a DataLoader's persistent workers now.  Left to garbage collection, a loader caught
    in a reference cycle outlives the trainer, and at exit multiprocessing's SIGTERM, which the
    workers ignore (see ``_worker_init``), leaves the process waiting for them for ever."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        iterator._shutdown_workers()  # sends each worker its end-of-work sentinel and joins it
        loader._iterator = None


EPOCHS_FILE = "epochs.json"  # in the data folder: the last epoch any run drew from its shards


def first_epoch(meta: dict, n_samples: int, last_drawn: int | None = None) -> int:
    """The epoch a run starts in: after its resumed checkpoint's, and after every epoch a run
    already drew from this data folder (``last_drawn``: a run whose checkpoint was not bundled, or
    one restarted from the same bundle, leaves no other trace).  Each epoch seeds its own sample
    order, augmentations and draw of generated formulas, and a session's CPU run ends hours before
    an epoch does, so a run that began at epoch 0 again would see the same samples the same way
    every session.  A checkpoint saved before epochs were recorded counts the passes over
    ``n_samples`` its samples make (rounded up: it has used epoch 0, so it never restarts there)."""
    if "epoch" in meta:
        start = int(meta["epoch"]) + 1
    else:
        seen = int(meta.get("samples_seen", 0))
        start = -(-seen // n_samples) if seen > 0 and n_samples > 0 else 0
    return start if last_drawn is None else max(start, last_drawn + 1)


def read_last_drawn(data: Path) -> int | None:
    """The last epoch a run drew from ``data`` (``EPOCHS_FILE``), None if none is recorded."""
    try:
        return int(json.loads((Path(data) / EPOCHS_FILE).read_text())["last_drawn"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_drawn(data: Path, epoch: int) -> bool:
    """Record ``epoch`` as drawn from ``data``; False where the folder cannot be written (a
    read-only data folder trains all the same, without the record)."""
    try:
        write_json_atomic(Path(data) / EPOCHS_FILE, {"last_drawn": int(epoch)})
    except OSError:
        return False
    return True


def _manifest_samples(split_dir: Path) -> int:
    try:
        return int(json.loads((split_dir / "manifest.json").read_text()).get("samples", 0))
    except (OSError, ValueError):
        return 0


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # data workers must not fight the trainer for cores
    # `pkill -f "im2latex train"` reaches the workers too (same command line): they leave the
    # stopping to the trainer, which saves a checkpoint and then shuts them down
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---------------------------------------------------------------- evaluation during training


@torch.inference_mode()
def validate(model: Im2LatexModel, loader, vocab: Vocab, rt: Runtime, max_len: int = 200) -> dict:
    """Greedy decoding on the validation subset: BLEU-4, edit similarity, exact match."""
    from .decoding import greedy_decode
    from .metrics import score_tokens
    from .syntax import SyntaxRules

    model.eval()
    refs, hyps = [], []
    syntax = SyntaxRules(vocab)  # as the app decodes
    for images, sizes, tokens in loader:
        decoded = greedy_decode(model, images.to(rt.device), sizes.to(rt.device), max_len, syntax=syntax)
        for row, d in zip(tokens.tolist(), decoded):
            refs.append(vocab.decode(row[1:]))
            hyps.append(vocab.decode(d.ids))
    model.train()
    s = score_tokens(refs, hyps)
    return {"val_bleu4": s.bleu4, "val_edit_similarity": s.edit_similarity, "val_exact_match": s.exact_match, "val_n": s.n}


def plot_metrics(log_path: Path, png_path: Path) -> None:
    """Loss and validation scores over steps, for a person to glance at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_bleu4" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot([r["total_step"] for r in train], [r["loss"] for r in train], lw=0.8)
    ax1.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    for key, label in (("val_bleu4", "BLEU-4"), ("val_exact_match", "exact match"), ("val_edit_similarity", "edit sim.")):
        ax2.plot([r["total_step"] for r in val], [r[key] for r in val], marker="o", ms=3, label=label)
    ax2.set(xlabel="step", ylim=(0, 1), title="validation (greedy)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- the loop


def train(cfg: TrainConfig) -> Path:
    rt = setup_runtime(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if not 0.0 < cfg.decay_share <= 1.0:
        raise ValueError("decay_share must be above 0 and at most 1")
    model, mcfg, vocab, state = build_model(cfg, rt)
    # this run's own stable point, if it reaches one, replaces the resumed run's
    meta = {k: v for k, v in state.get("meta", {}).items() if k not in STABLE_KEYS}
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    use_bf16 = cfg.amp == "auto" and bf16_is_fast(rt.device)
    optimizer = make_optimizer(model, cfg)
    if state.get("optimizer"):
        # Adam's moments carry over whatever the new peak learning rate: the schedule below sets
        # each group's lr on every step, so the saved lr is never used
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError):
            pass  # a different parameter layout: start the optimizer fresh
    net = torch.nn.parallel.DistributedDataParallel(model) if rt.world > 1 else model

    data_root = Path(cfg.data)
    data = data_root / "shards"
    train_ds, sampler, loader = make_loader(data / "train", vocab, mcfg, cfg, rt, augment=True, shuffle=True)
    val_loader = None
    if (data / "val").exists() and rt.main:
        _, _, val_loader = make_loader(data / "val", vocab, mcfg, cfg, Runtime(rt.device), augment=False,
                                       shuffle=False, limit=cfg.eval_samples)

    epoch0 = first_epoch(meta, len(train_ds), read_last_drawn(data_root))
    if rt.world > 1:  # every process draws the same batches: rank 0's choice
        chosen = torch.tensor([epoch0], device=rt.device)
        dist.broadcast(chosen, 0)
        epoch0 = int(chosen.item())
    total0 = int(meta.get("total_steps", 0))
    seen0 = int(meta.get("samples_seen", 0))
    hours0 = float(meta.get("train_hours", 0.0))
    # best = (exact match, BLEU-4): BLEU decides while exact match is still 0 early in training
    best = ((float(meta.get("best_val_exact_match", -1.0)), float(meta.get("best_val_bleu4", -1.0)))
            if cfg.resume and str(cfg.resume).endswith("best.pt") else (-1.0, -1.0))
    log_path = out / "metrics.jsonl"
    if rt.main:
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
        start_note = f"resumed at step {total0}" if cfg.resume else "fresh start"
        print(f"model: {count_parameters(model) / 1e6:.2f} M parameters, vocabulary {len(vocab)}, "
              f"device {rt.device}, bf16 {use_bf16}, {len(train_ds)} training samples, {start_note}, "
              f"epoch {epoch0}", flush=True)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))

    def save(name: str, step: int, seen: int, hours: float, extra: dict | None = None) -> Path:
        m = {**meta, "total_steps": total0 + step, "samples_seen": seen0 + seen, "train_hours": hours0 + hours,
             "train_config": asdict(cfg), "bf16": use_bf16, "device": str(rt.device), "epoch": epoch,
             **(extra or {})}
        path = out / name
        save_training_checkpoint(path, model, mcfg, vocab, optimizer=optimizer, step=total0 + step, meta=m)
        return path

    start = time.time()
    step, seen, epoch = 0, 0, epoch0 - 1  # epoch: the last one entered (saved in checkpoints)
    window_loss, window_n, window_t = 0.0, 0, time.time()
    bar = tqdm(total=cfg.steps, disable=not rt.main, dynamic_ncols=True, mininterval=5)
    model.train()
    while step < cfg.steps and not stop["now"]:
        epoch += 1
        if rt.main and not record_drawn(data_root, epoch):
            tqdm.write(f"note: cannot write {data_root / EPOCHS_FILE}; a later run may draw epoch {epoch} again")
        if epoch > epoch0 and _manifest_samples(data / "train") > len(train_ds):
            # rendering is still adding shards: train on everything there is now
            close_loader(loader)
            train_ds, sampler, loader = make_loader(data / "train", vocab, mcfg, cfg, rt, augment=True, shuffle=True)
            if rt.main:
                tqdm.write(f"epoch {epoch}: {len(train_ds)} training samples")
        sampler.set_epoch(epoch)
        for images, sizes, tokens in loader:
            if (rt.main and cfg.decay_share < 1.0 and "stable_step" not in meta
                    and decaying(step, cfg, (time.time() - start) / 60)):
                stable = save("stable.pt", step, seen, (time.time() - start) / 3600)
                meta.update(stable_checkpoint=portable_path(stable), stable_step=total0 + step)
                tqdm.write(f"step {total0 + step}: the learning rate starts to decay; the weights so far: {stable}")
            images = images.to(rt.device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            sizes, tokens = sizes.to(rt.device), tokens.to(rt.device)
            lr = lr_at(step, cfg, (time.time() - start) / 60)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = net(images, sizes, tokens[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                   ignore_index=PAD, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()

            step += 1
            seen += images.shape[0] * rt.world
            window_loss += loss.item()
            window_n += images.shape[0]
            bar.update(1)
            hours = (time.time() - start) / 3600
            if rt.main and step % cfg.log_every == 0:
                dt = time.time() - window_t
                row = {"step": step, "total_step": total0 + step, "loss": window_loss / cfg.log_every,
                       "lr": lr, "samples_per_s": window_n * rt.world / dt, "epoch": epoch,
                       "time": time.time()}
                with log_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{row['loss']:.3f}", sps=f"{row['samples_per_s']:.0f}")
                window_loss, window_n, window_t = 0.0, 0, time.time()
            if rt.main and val_loader is not None and step % cfg.eval_every == 0:
                scores = validate(model, val_loader, vocab, rt)
                with log_path.open("a") as f:
                    f.write(json.dumps({"step": step, "total_step": total0 + step, **scores}) + "\n")
                tqdm.write(f"step {total0 + step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
                plot_metrics(log_path, out / "metrics.png")
                if (scores["val_exact_match"], scores["val_bleu4"]) > best:
                    best = (scores["val_exact_match"], scores["val_bleu4"])
                    save("best.pt", step, seen, hours, {f"best_{k}": v for k, v in scores.items()})
            if rt.main and step % cfg.save_every == 0:
                keep_snapshot(save("last.pt", step, seen, hours), total0 + step, cfg.snapshots)
            out_of_time = cfg.max_minutes and (time.time() - start) / 60 >= cfg.max_minutes
            if step >= cfg.steps or stop["now"] or out_of_time:
                stop["now"] = stop["now"] or bool(out_of_time)
                break
    bar.close()
    close_loader(loader)
    close_loader(val_loader)
    hours = (time.time() - start) / 3600
    path = out / "last.pt"
    if rt.main:
        path = save("last.pt", step, seen, hours)
        print(f"stopped at step {total0 + step} ({seen} samples this run, {hours * 60:.1f} min); "
              f"checkpoint {path}", flush=True)
        snaps = keep_snapshot(path, total0 + step, cfg.snapshots)
        if len(snaps) >= 2:
            average_checkpoints(snaps, out / "average.pt")
            print(f"mean of the last {len(snaps)} saves (steps {', '.join(p.stem for p in snaps)}): "
                  f"{out / 'average.pt'}", flush=True)
    if rt.world > 1:
        dist.destroy_process_group()
    return path


def keep_snapshot(path: Path, step: int, keep: int) -> list[Path]:
    """Link ``path`` (a just-saved last.pt) as snapshots/<step>.pt, delete all but the newest
    ``keep``, and return those, oldest first.  A save replaces last.pt by a new file, so the
    link keeps the old one's bytes without copying them."""
    if keep <= 0:
        return []
    folder = path.parent / "snapshots"
    folder.mkdir(exist_ok=True)
    target = folder / f"{step:06d}.pt"
    target.unlink(missing_ok=True)
    try:
        os.link(path, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(path, target)
    snaps = sorted(folder.glob("[0-9]*.pt"))
    for old in snaps[:-keep]:
        old.unlink()
    return snaps[-keep:]


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON or TOML file with training settings (flags override it)")
    for f in fields(TrainConfig):
        if f.name == "model":
            continue
        kind = {"int": int, "float": float, "bool": _bool}.get(str(f.type).split(" ")[0], str)
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=None)
    parser.add_argument("--model-config", dest="model", type=json.loads, default=None,
                        help='ModelConfig overrides for a fresh model, as JSON: \'{"d_model": 192}\'; '
                             'a resumed one may change only encoder_stride and dropout')


def _bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


def run(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    cfg = TrainConfig.from_sources(args.config, overrides)
    train(cfg)
    return 0
