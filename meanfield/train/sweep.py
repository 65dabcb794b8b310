"""MNIST sweeps: grids of variances, alpha, depths and seeds, trained group by group, results to CSV.

A sweep is the product of its value lists (``alpha, sw2, sv2, sb2, sa2``, depths and seeds ``0..S-1``),
except that axes named in ``zip`` are paired elementwise instead of crossed. Networks are grouped by
depth (depth fixes the compiled shapes); each group (at most ``max_group`` networks, split evenly) is
one call of :func:`~meanfield.train.trainer.train_grid`.

Files in the output directory:

* ``config.json``: the full configuration (and the data's mean-field input statistics p0, gamma0);
* ``results.csv``: one row per network (:data:`COLUMNS`), appended with flush + fsync after every
  group, so an interrupted sweep loses at most the group in flight. ``diverged`` is the 1-based epoch
  in which the loss or a gradient first turned NaN or inf (0: never); a diverged network is scored
  with its last finite parameters. ``seconds`` is the wall time of its group (compilation included)
  divided by the number of networks in the group.

``resume=True`` skips networks already in ``results.csv`` and refuses to continue a sweep whose
``config.json`` differs.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import sys
import time
import numpy as np

from ..spec import Spec
from .data import MNIST, load_mnist, subset
from .model import INIT_PRESETS, Variances
from .trainer import TrainConfig, train_grid

COLUMNS = ("arch", "act", "alpha", "sw2", "sv2", "sb2", "sa2", "depth", "width", "seed", "epochs",
           "train_acc", "test_acc", "test_loss", "diverged", "seconds")
VALUE_AXES = ("alpha", "sw2", "sv2", "sb2", "sa2")
#: Rough device memory one group may use; sets the default group size (see :func:`default_max_group`).
GROUP_MEMORY_BYTES = 2 * 2**30


class SweepError(ValueError):
    """A sweep cannot start or resume (bad grid, conflicting output directory)."""


def parse_list(text: str, name: str, *, integer: bool = False) -> tuple:
    """``a:b:n`` (n evenly spaced values from a to b inclusive) or a comma list ``x1,x2,...``.

    Depth lists (``integer=True``) must give integers; ``a:b:n`` values are rounded to the nearest
    integer and duplicates dropped.
    """
    text = str(text).strip()
    kind = "integer" if integer else "number"
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise SweepError(f"--{name} {text!r}: a range is a:b:n (start:stop:count)")
            a, b = float(parts[0]), float(parts[1])
            try:
                n = int(parts[2])
            except ValueError:
                raise SweepError(f"--{name} {text!r}: the count n in a:b:n must be an integer >= 1, "
                                 f"got {parts[2]!r}") from None
            if n < 1:
                raise SweepError(f"--{name} {text!r}: the count n in a:b:n must be >= 1, got {n}")
            if not (math.isfinite(a) and math.isfinite(b)):
                raise SweepError(f"--{name} {text!r}: a and b must be finite")
            if b < a:
                raise SweepError(f"--{name} {text!r}: a:b:n needs a <= b")
            if n == 1 and a != b:
                raise SweepError(f"--{name} {text!r}: a single value (n = 1) needs a == b")
            values = [float(v) for v in np.linspace(a, b, n)]
        else:
            values = [float(v) for v in text.split(",") if v.strip() != ""]
            if not values:
                raise SweepError(f"--{name} is empty")
    except ValueError as err:
        if isinstance(err, SweepError):
            raise
        raise SweepError(f"--{name} {text!r}: expected a:b:n or a comma list of {kind}s") from None
    if not all(math.isfinite(v) for v in values):
        raise SweepError(f"--{name} {text!r}: values must be finite")
    if integer:
        if ":" not in text and any(v != round(v) for v in values):
            raise SweepError(f"--{name} {text!r}: values must be integers")
        values = list(dict.fromkeys(int(round(v)) for v in values))
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep's results (written to ``config.json``).

    Args:
      arch, act: ``frn`` or ``rrn``; ``tanh``, ``relu`` or ``alpha_relu``.
      alpha, sw2, sv2, sb2, sa2: value lists (tuples of floats).
      depth: depths L (tuple of ints).
      seeds: number of seeds per setting (seeds 0..seeds-1).
      train: the training hyperparameters.
      train_subset, test_subset: deterministic subset sizes (None: whole split).
      data: None for the packaged MNIST, else the user's path.
      init: ``spec`` (the lists above), ``he`` or ``xavier`` (the preset's variances; see
        :data:`~meanfield.train.model.INIT_PRESETS`).
      zip: names of value axes paired elementwise (equal lengths) instead of crossed.
    """

    arch: str
    act: str
    depth: tuple
    sw2: tuple = (1.0,)
    sv2: tuple = (1.0,)
    sb2: tuple = (0.0,)
    sa2: tuple = (0.0,)
    alpha: tuple = (1.0,)
    seeds: int = 1
    train: TrainConfig = TrainConfig()
    train_subset: int | None = None
    test_subset: int | None = None
    data: str | None = None
    init: str = "spec"
    zip: tuple = ()

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["train"] = dataclasses.asdict(self.train)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @staticmethod
    def from_json(obj: dict) -> "SweepConfig":
        obj = dict(obj)
        obj["train"] = TrainConfig(**obj["train"])
        for k in ("depth", "sw2", "sv2", "sb2", "sa2", "alpha", "zip"):
            obj[k] = tuple(obj[k])
        return SweepConfig(**obj)


def effective(cfg: SweepConfig) -> SweepConfig:
    """The sweep as trained: preset variances applied, unused axes (V and a of an rrn, alpha of a
    non-alpha activation) fixed to the values the network uses (sv2 = 1, sa2 = 0, alpha = 1)."""
    changes = {}
    if cfg.init != "spec":
        changes.update({k: (v,) for k, v in INIT_PRESETS[cfg.init].items()})
    if cfg.arch == "rrn":
        changes.update(sv2=(1.0,), sa2=(0.0,))
    if cfg.act != "alpha_relu":
        changes["alpha"] = (1.0,)
    zipped = tuple(a for a in cfg.zip if a not in changes)
    return dataclasses.replace(cfg, zip=zipped if len(zipped) > 1 else (), **changes)


def validate(cfg: SweepConfig) -> None:
    """Every check that can fail before compilation; raises SweepError or ValueError naming the field."""
    if cfg.arch not in ("frn", "rrn"):
        raise SweepError(f"arch must be frn or rrn, got {cfg.arch!r}")
    if cfg.act not in ("tanh", "relu", "alpha_relu"):
        raise SweepError(f"act must be tanh, relu or alpha_relu, got {cfg.act!r}")
    if cfg.init not in ("spec", *INIT_PRESETS):
        raise SweepError(f"init must be one of spec, {', '.join(INIT_PRESETS)}; got {cfg.init!r}")
    if isinstance(cfg.seeds, bool) or not isinstance(cfg.seeds, int) or cfg.seeds < 1:
        raise SweepError(f"seeds must be an integer >= 1, got {cfg.seeds!r}")
    for name in ("train_subset", "test_subset"):
        value = getattr(cfg, name)
        limit = 60_000 if name == "train_subset" else 10_000
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit):
            raise SweepError(f"{name.replace('_', '-')} must be an integer in [1, {limit}], got {value!r}")
    if cfg.train_subset is not None and cfg.train.batch > cfg.train_subset:
        raise SweepError(f"batch ({cfg.train.batch}) must be <= train-subset ({cfg.train_subset})")
    unknown = [a for a in cfg.zip if a not in VALUE_AXES]
    if unknown:
        raise SweepError(f"zip names unknown axes {unknown}; choose from {', '.join(VALUE_AXES)}")
    lengths = {a: len(getattr(cfg, a)) for a in cfg.zip}
    if len(set(lengths.values())) > 1:
        raise SweepError(f"zipped lists must have equal lengths, got {lengths}")
    for d in cfg.depth:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise SweepError(f"depth must be integers >= 1, got {d!r}")
    eff = effective(cfg)
    # Spec validates the variances and alpha (with the field name and allowed range)
    Spec(arch=eff.arch, act=eff.act, depth=1, sw2=np.array(eff.sw2), sv2=np.array(eff.sv2)[:, None],
         sb2=np.array(eff.sb2)[:, None, None], sa2=np.array(eff.sa2)[:, None, None, None],
         alpha=np.array(eff.alpha)[:, None, None, None, None])


def settings(cfg: SweepConfig) -> list[dict]:
    """The variance settings of an (effective) sweep: a list of dicts over :data:`VALUE_AXES`."""
    free = [a for a in VALUE_AXES if a not in cfg.zip]
    factors = [[{a: v} for v in getattr(cfg, a)] for a in free]
    if cfg.zip:
        factors.append([dict(zip(cfg.zip, vals)) for vals in zip(*(getattr(cfg, a) for a in cfg.zip))])
    out = []
    for combo in itertools.product(*factors):
        merged = {}
        for part in combo:
            merged.update(part)
        out.append({a: float(merged[a]) for a in VALUE_AXES})
    return out


def network_key(row: dict) -> tuple:
    """Identity of one network in results.csv (after the string round trip)."""
    return (tuple(float(row[a]) for a in VALUE_AXES), int(row["depth"]), int(row["seed"]))


def default_max_group(cfg: TrainConfig, depth: int, n_devices: int = 1) -> int:
    """Networks per compiled call so that one group stays within ~:data:`GROUP_MEMORY_BYTES` per device.

    Per network: the backward pass keeps ~4 (batch, width) float32 arrays per layer, and parameters,
    gradients and optimizer state hold ~4 copies of the 2 (width, width) matrices per layer.
    """
    per_net = 4 * depth * (4 * cfg.batch * cfg.width + 8 * cfg.width**2) + 4 * 4 * 794 * cfg.width
    return max(1, int(GROUP_MEMORY_BYTES // per_net)) * n_devices


# --------------------------------------------------------------------------------------- progress
class Progress:
    """A progress bar with an ETA on stderr; cost counts example-layers (depth x examples seen)."""

    def __init__(self, total_cost: float, total_nets: int, stream=None, width: int = 28):
        """``stream=None`` counts silently."""
        self.total, self.done_cost, self.total_nets, self.done_nets = total_cost, 0.0, total_nets, 0
        self.stream = stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.width = width

    @staticmethod
    def _clock(seconds: float) -> str:
        seconds = int(round(seconds))
        h, rem = divmod(seconds, 3600)
        return (f"{h}:" if h else "") + f"{rem // 60:02d}:{rem % 60:02d}"

    def update(self, cost: float = 0.0, nets: int = 0, note: str = "", final: bool = False) -> None:
        self.done_cost += cost
        self.done_nets += nets
        if self.stream is None:
            return
        frac = min(1.0, self.done_cost / self.total) if self.total else 1.0
        elapsed = time.perf_counter() - self.start
        eta = "--:--" if frac <= 0 else self._clock(elapsed * (1 - frac) / frac)
        filled = int(round(frac * self.width))
        line = (f"train [{'#' * filled}{'.' * (self.width - filled)}] {100 * frac:5.1f}% "
                f"{self.done_nets}/{self.total_nets} networks  {self._clock(elapsed)} elapsed  ETA {eta}"
                + (f"  {note}" if note else ""))
        if self.tty:
            self.stream.write("\r" + line.ljust(110) + ("\n" if final else ""))
        elif nets:
            self.stream.write(line + "\n")
        self.stream.flush()


# -------------------------------------------------------------------------------------- the sweep
def _read_done(path: str) -> set:
    """Keys of the finished networks; a trailing partial line (interrupted write) is cut off."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw and not raw.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(raw.rfind(b"\n") + 1)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return set()
        if tuple(reader.fieldnames) != COLUMNS:
            raise SweepError(f"{path} has columns {reader.fieldnames}, expected {list(COLUMNS)}")
        return {network_key(row) for row in reader}


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def prepare(cfg: SweepConfig, out_dir: str, *, resume: bool = False) -> set:
    """Validate the sweep and check the output directory (refusing to overwrite results, or to resume
    a different configuration); return the keys of the networks already finished."""
    validate(cfg)
    config_path = os.path.join(out_dir, "config.json")
    results_path = os.path.join(out_dir, "results.csv")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise SweepError(f"--out {out_dir} exists and is not a directory")
    done: set = set()
    if os.path.exists(results_path):
        if not resume:
            raise SweepError(f"{results_path} already exists: pass --resume to continue that sweep, "
                             "or choose another --out")
        if not os.path.exists(config_path):
            raise SweepError(f"cannot resume: {results_path} has no config.json beside it")
        with open(config_path) as f:
            try:
                old = json.load(f).get("sweep")
            except json.JSONDecodeError:
                raise SweepError(f"cannot resume: {config_path} is not valid JSON") from None
        new = cfg.to_json()
        if old != new:
            diff = sorted(k for k in set(old or {}) | set(new) if (old or {}).get(k) != new.get(k))
            raise SweepError(f"cannot resume: the configuration differs from {config_path} "
                             f"(in {', '.join(diff)}); use the same flags or another --out")
        done = _read_done(results_path)
    return done


def run_sweep(cfg: SweepConfig, out_dir: str, *, resume: bool = False, data: MNIST | None = None,
              max_group: int | None = None, progress: bool = True, devices=None) -> str:
    """Train every network of the sweep not yet in ``out_dir/results.csv``; returns the CSV path.

    Args:
      cfg: the sweep.
      out_dir: output directory (created).
      resume: continue a sweep with the same configuration, skipping finished networks.
      data: already loaded MNIST (whole splits; the subsets of ``cfg`` are applied here); loaded from
        ``cfg.data`` when None.
      max_group: networks per compiled call (default: :func:`default_max_group`).
      progress: draw the progress bar on stderr.
      devices: devices to shard each group over (default: all visible).
    """
    import jax

    done = prepare(cfg, out_dir, resume=resume)
    eff = effective(cfg)
    if data is None:
        data = load_mnist(cfg.data)
    p0, gamma0 = data.input_stats()
    data = subset(data, cfg.train_subset, cfg.test_subset)
    os.makedirs(out_dir, exist_ok=True)
    config_path = os.path.join(out_dir, "config.json")
    results_path = os.path.join(out_dir, "results.csv")
    with open(config_path, "w") as f:
        json.dump({"sweep": cfg.to_json(), "effective": effective(cfg).to_json(),
                   "input_stats": {"p0": p0, "gamma0": gamma0},
                   "n_train": int(len(data.x_train)), "n_test": int(len(data.x_test))}, f, indent=2)
        f.write("\n")

    from ..activations import get_activation

    act = get_activation(eff.act)
    n_dev = len(devices) if devices is not None else len(jax.devices())
    grid = settings(eff)
    todo = {}
    for depth in sorted(eff.depth):
        nets = [(s, seed) for s in grid for seed in range(eff.seeds)
                if (tuple(s[a] for a in VALUE_AXES), depth, seed) not in done]
        if nets:
            todo[depth] = nets
    n_eval = len(data.x_train) + len(data.x_test)
    seen = (len(data.x_train) // eff.train.batch) * eff.train.batch
    # progress counts example-layers; a training example costs ~3 forward passes (backward ~ 2x)
    epoch_cost = lambda depth: 3 * depth * seen  # noqa: E731
    eval_cost = lambda depth: depth * n_eval  # noqa: E731
    bar = Progress(sum((eff.train.epochs * epoch_cost(d) + eval_cost(d)) * len(n) for d, n in todo.items()),
                   sum(len(n) for n in todo.values()), stream=sys.stderr if progress else None)
    new_file = not os.path.exists(results_path) or os.path.getsize(results_path) == 0
    with open(results_path, "a", newline="") as f:
        writer = csv.writer(f)
        if new_file:
            writer.writerow(COLUMNS)
            f.flush()
            os.fsync(f.fileno())
        for depth, nets in todo.items():
            limit = max_group or default_max_group(eff.train, depth, n_dev)
            n_groups = -(-len(nets) // limit)
            size = -(-len(nets) // n_groups)
            for start in range(0, len(nets), size):
                group = nets[start:start + size]
                t0 = time.perf_counter()
                var = Variances(*(np.array([s[a] for s, _ in group]) for a in ("sw2", "sv2", "sb2", "sa2", "alpha")))
                seeds = np.array([seed for _, seed in group])

                def on_epoch(epoch, state, depth=depth, n=len(group)):
                    bar.update(epoch_cost(depth) * n, note=f"L={depth} epoch {epoch}/{eff.train.epochs}")

                res = train_grid(var, seeds, data, arch=eff.arch, act=act, depth=depth, cfg=eff.train,
                                 devices=devices, on_epoch=on_epoch)
                seconds = (time.perf_counter() - t0) / len(group)
                for i, (s, seed) in enumerate(group):
                    writer.writerow([_fmt(v) for v in (
                        eff.arch, eff.act, s["alpha"], s["sw2"], s["sv2"], s["sb2"], s["sa2"], depth,
                        eff.train.width, seed, eff.train.epochs, float(res.train_acc[i]), float(res.test_acc[i]),
                        float(res.test_loss[i]), int(res.diverged_epoch[i]), seconds)])
                f.flush()
                os.fsync(f.fileno())
                bar.update(eval_cost(depth) * len(group), nets=len(group), note=f"L={depth} done")
    bar.update(final=True)
    return results_path


def read_results(path: str) -> dict[str, np.ndarray]:
    """results.csv as columns: numbers as float arrays (depth, seed, diverged as int), text as str."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ints = ("depth", "width", "seed", "epochs", "diverged")
    out = {}
    for c in COLUMNS:
        vals = [r[c] for r in rows]
        if c in ("arch", "act"):
            out[c] = np.array(vals, dtype=str)
        elif c in ints:
            out[c] = np.array([int(v) for v in vals], dtype=np.int64)
        else:
            out[c] = np.array([float(v) for v in vals], dtype=np.float64)
    return out
