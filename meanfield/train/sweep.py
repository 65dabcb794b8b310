"""MNIST sweeps: grids of variances, alpha, depths and seeds, trained group by group, results to CSV.

A sweep is the product of its value lists (``alpha, sw2, sv2, sb2, sa2``, the learning rates ``lr``,
depths and seeds ``0..S-1``), except that axes named in ``zip`` are paired elementwise instead of
crossed. Every cell is trained at every learning rate of the fixed list; the analysis
(:mod:`meanfield.train.analysis`) selects one per cell on the held-out validation set, so no
learning rate is tuned by looking at test accuracy. Networks are grouped by
depth (depth fixes the compiled shapes); each group (at most ``max_group`` networks, split evenly) is
one call of :func:`~meanfield.train.trainer.train_grid`.

Files in the output directory:

* ``config.json``: the full configuration (and the data's mean-field input statistics p0, gamma0);
* ``results.csv``: one row per network (:data:`COLUMNS`, the gate's sg2 and gate_bias last; ``val_acc``
  is the accuracy on the validation set, ``val_subset`` training examples disjoint from the training
  subset), appended with flush + fsync after every group, so an interrupted sweep loses at most the
  group in flight. ``diverged`` is the 1-based epoch
  in which the loss or a gradient first turned NaN or inf (0: never); a diverged network is scored
  with its last finite parameters. ``seconds`` is the wall time of its group (compilation included)
  divided by the number of networks in the group.

``resume=True`` skips networks already in ``results.csv`` and refuses to continue a sweep whose
``config.json`` differs.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import sys
import time

import numpy as np

from .config import (COLUMNS, COLUMNS_WITHOUT_GATE, GATE_COLUMNS, VALUE_AXES, SweepConfig, SweepError,
                     TrainConfig, cell_value, effective, network_key, settings, validate)
from .data import MNIST, load_mnist, subset
from .predictors import THEORY_AXES

#: Rough device memory one group may use; sets the default group size (see :func:`default_max_group`).
GROUP_MEMORY_BYTES = 2 * 2**30


def default_max_group(cfg: TrainConfig, depth: int, n_devices: int = 1, block=None) -> int:
    """Networks per compiled call so that one group stays within ~:data:`GROUP_MEMORY_BYTES` per device.

    Per network: the backward pass keeps ~4 (batch, width) float32 arrays per layer, and parameters,
    gradients and optimizer state hold ~4 copies of the 2 (width, width) matrices per layer. A growing
    stream (``block``, :attr:`~meanfield.blocks.Block.grows`) has the final width N_L instead, and its
    one (N_L, G) matrix per layer.
    """
    width, entries = cfg.width, 2 * cfg.width**2
    if block is not None and block.grows:
        width = block.row_width(cfg.width, depth)
        entries = sum(math.prod(s) for s in block.shapes(cfg.width, depth).values())
    per_net = 4 * depth * (4 * cfg.batch * width + 4 * entries) + 4 * 4 * 794 * width
    return max(1, int(GROUP_MEMORY_BYTES // per_net)) * n_devices


# ------------------------------------------------------------------------------------ output lock
LOCK_NAME = ".lock"


@contextlib.contextmanager
def output_lock(out_dir: str):
    """Hold an exclusive lock on a sweep directory (``DIR/.lock``, with the holder's pid) while the
    body runs; a second sweep into the same directory gets a :class:`SweepError` naming the holder."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise SweepError(f"--out {out_dir} is in use by another sweep (process {holder}); wait for it "
                             "to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_writable(out_dir: str) -> None:
    """Refuse an output directory that cannot be created or written (before any data is loaded)."""
    parent = out_dir
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent.rstrip(os.sep))
    parent = parent or "."
    if not os.path.isdir(parent):
        raise SweepError(f"--out {out_dir}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SweepError(f"--out {out_dir}: {parent} is not writable")


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
        if tuple(reader.fieldnames) not in (COLUMNS, COLUMNS_WITHOUT_GATE):
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
    check_writable(out_dir)
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
        try:  # with the defaults of fields added since the file was written
            old = SweepConfig.from_json(old).to_json()
        except (TypeError, KeyError, ValueError, AttributeError):
            pass  # not a sweep configuration: reported as differing below
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

    The directory is locked for the whole run (:func:`output_lock`); the checks of :func:`prepare` run
    before the data are loaded.

    Args:
      cfg: the sweep.
      out_dir: output directory (created).
      resume: continue a sweep with the same configuration, skipping finished networks.
      data: already loaded MNIST (whole splits; the subsets of ``cfg`` are applied here); loaded from
        ``cfg.data`` when None.
      max_group: networks per compiled call (default: :func:`default_max_group`).
      progress: draw a progress bar (tqdm) on stderr.
      devices: devices, or a one-axis mesh, to shard each group over (default: every device of every
        process). Under ``jax.distributed`` every process calls this with the same arguments: process 0
        alone locks, reads and writes ``out_dir`` and tells the others which networks are done.
    """
    validate(cfg)
    from ..parallel import is_writer

    with contextlib.ExitStack() as stack:
        done, error = set(), None
        if is_writer():  # the one process that locks, reads and writes the directory
            try:
                check_writable(out_dir)
                stack.enter_context(output_lock(out_dir))
                done = prepare(cfg, out_dir, resume=resume)
            except SweepError as err:
                error = err
        done = _share_done(cfg, done, error)
        if data is None:
            data = load_mnist(cfg.data)
        stats_in = data.input_stats()
        try:
            data = subset(data, cfg.train_subset, cfg.test_subset, cfg.val_subset)
        except ValueError as err:
            raise SweepError(f"the data do not fit this sweep's subsets: {err}") from None
        return _train_missing(cfg, out_dir, done, data, stats_in, max_group, progress, devices)


def _all_networks(eff: SweepConfig) -> list:
    """Every network of an (effective) sweep, in training order: (setting, depth, seed)."""
    grid = settings(eff)
    return [(s, depth, seed) for depth in sorted(eff.depth) for s in grid for seed in range(eff.seeds)]


def _key(s: dict, depth: int, seed: int) -> tuple:
    return (tuple(s[a] for a in VALUE_AXES), depth, seed)


def _share_done(cfg: SweepConfig, done: set, error: SweepError | None) -> set:
    """The finished networks as process 0 read them, on every process (``jax.distributed``), or
    process 0's error raised everywhere, so that every process trains the same groups in step."""
    import jax

    if jax.process_count() == 1:
        if error is not None:
            raise error
        return done
    from jax.experimental import multihost_utils

    nets = _all_networks(effective(cfg))
    mask = np.array([error is None] + [_key(*n) in done for n in nets], np.bool_)
    mask = np.asarray(multihost_utils.broadcast_one_to_all(mask))
    if not mask[0]:
        raise error if error is not None else SweepError("the sweep cannot start: see the error of process 0")
    return {_key(*n) for n, d in zip(nets, mask[1:]) if d}


def _train_missing(cfg, out_dir, done, data, stats_in, max_group, progress, devices) -> str:
    import jax
    from tqdm.auto import tqdm

    from ..activations import get_activation
    from ..spec import Spec, branch_scale_at
    from .model import NetworkSettings
    from .predictors import readout_scale
    from .trainer import train_grid

    from ..parallel import grid_mesh, is_writer

    eff = effective(cfg)
    p0, gamma0 = stats_in
    writer = is_writer()
    config_path = os.path.join(out_dir, "config.json")
    results_path = os.path.join(out_dir, "results.csv")
    if writer:
        with open(config_path, "w") as f:
            json.dump({"sweep": cfg.to_json(), "effective": effective(cfg).to_json(),
                       "input_stats": {"p0": p0, "gamma0": gamma0},
                       "n_train": int(len(data.x_train)), "n_test": int(len(data.x_test)),
                       "n_val": int(len(data.x_val))}, f, indent=2)
            f.write("\n")

    act = get_activation(eff.act)
    block = Spec(eff.arch, act, 1, **eff.variants()).block  # with the sweep's width and normalization
    per_layer = {k: v for k, v in eff.variants().items() if k.startswith("decay_") or k == "survival"}
    mesh = grid_mesh(devices)
    n_dev = mesh.devices.size
    todo = {}
    for s, depth, seed in _all_networks(eff):
        if _key(s, depth, seed) not in done:
            todo.setdefault(depth, []).append((s, seed))
    n_eval = len(data.x_train) + len(data.x_test) + len(data.x_val)
    seen = (len(data.x_train) // eff.train.batch) * eff.train.batch
    # progress counts network-example-layers; a training example costs ~3 forward passes
    epoch_cost = lambda depth: 3 * depth * seen  # noqa: E731
    eval_cost = lambda depth: depth * n_eval  # noqa: E731
    total = sum((eff.train.epochs * epoch_cost(d) + eval_cost(d)) * len(n) for d, n in todo.items())
    n_nets = sum(len(n) for n in todo.values())
    bar = tqdm(total=total, disable=not (progress and writer), file=sys.stderr, unit="ex-layer",
               unit_scale=True, mininterval=5.0, desc=f"train {n_nets} networks")
    finished = 0
    with _results_file(results_path, writer) as rows, bar:
        for depth, nets in todo.items():
            limit = max_group or default_max_group(eff.train, depth, n_dev, block)
            n_groups = -(-len(nets) // limit)
            size = -(-len(nets) // n_groups)
            for start in range(0, len(nets), size):
                group = nets[start:start + size]
                t0 = time.perf_counter()
                column = lambda a: np.array([s[a] for s, _ in group])  # noqa: E731
                var = NetworkSettings(*(column(a) for a in ("sw2", "sv2", "sb2", "sa2", "alpha", "lr")),
                                      branch_scale=branch_scale_at(eff.branch_scale, depth),
                                      sg2=column("sg2"), gate_bias=column("gate_bias"), **per_layer)
                if eff.readout == "meanfield":
                    var = var._replace(out_scale=readout_scale(
                        eff.arch, eff.act, {a: column(a) for a in THEORY_AXES}, np.full(len(group), depth),
                        p0, gamma0, eff.branch_scale, eff.variants()))
                seeds = np.array([seed for _, seed in group])

                def on_epoch(epoch, state, depth=depth, n=len(group)):
                    jax.block_until_ready(state.epoch_loss)  # the bar shows epochs done, not dispatched
                    bar.set_postfix_str(f"{finished}/{n_nets} done, L={depth} epoch {epoch}/{eff.train.epochs}")
                    bar.update(epoch_cost(depth) * n)

                res = train_grid(var, seeds, data, arch=block, act=act, depth=depth, cfg=eff.train,
                                 devices=mesh, on_epoch=on_epoch if progress and writer else None)
                seconds = (time.perf_counter() - t0) / len(group)
                rows([[_fmt(v) for v in (
                    eff.arch, eff.act, eff.readout, s["alpha"], s["sw2"], s["sv2"], s["sb2"], s["sa2"],
                    s["lr"], depth, eff.train.width, seed, eff.train.epochs, float(res.train_acc[i]),
                    float(res.val_acc[i]), float(res.test_acc[i]), float(res.test_loss[i]),
                    int(res.diverged_epoch[i]), seconds, s["sg2"], s["gate_bias"])]
                    for i, (s, seed) in enumerate(group)])
                finished += len(group)
                bar.update(eval_cost(depth) * len(group))
                bar.set_postfix_str(f"{finished}/{n_nets} done, L={depth}")
    return results_path


@contextlib.contextmanager
def _results_file(path: str, writer: bool):
    """A function that appends rows (of :data:`COLUMNS`) to results.csv (header first in a new file),
    flushed and synced after every call; on processes other than the writer it does nothing. A file
    from before the gate columns gets rows without them (a sweep resumed there has no gate)."""
    if not writer:
        yield lambda rows: None
        return
    new_file = not os.path.exists(path) or os.path.getsize(path) == 0
    width = len(COLUMNS)
    if not new_file:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        width = len(COLUMNS_WITHOUT_GATE) if header and tuple(header) == COLUMNS_WITHOUT_GATE else width
    with open(path, "a", newline="") as f:
        out = csv.writer(f)

        def append(rows):
            out.writerows(row[:width] for row in rows)
            f.flush()
            os.fsync(f.fileno())

        if new_file:
            append([COLUMNS])
        yield append


def read_results(path: str) -> dict[str, np.ndarray]:
    """results.csv as columns: numbers as float arrays (depth, seed, diverged as int), text as str."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ints = ("depth", "width", "seed", "epochs", "diverged")
    out = {}
    for c in COLUMNS:
        vals = [r.get(c) for r in rows]
        if c in GATE_COLUMNS:  # neutral in a file from before the gate columns
            out[c] = np.array([cell_value(r, c) for r in rows], dtype=np.float64)
        elif c in ("arch", "act", "readout"):
            out[c] = np.array(vals, dtype=str)
        elif c in ints:
            out[c] = np.array([int(v) for v in vals], dtype=np.int64)
        else:
            out[c] = np.array([float(v) for v in vals], dtype=np.float64)
    return out


def results_frame(out_dir: str) -> "pandas.DataFrame":
    """The sweep in ``out_dir`` as a pandas DataFrame: one row per network of ``results.csv``, the
    columns and dtypes of :func:`read_results`, and ``config.json``'s fields in ``.attrs``. Needs the
    ``tables`` extra (pandas); ``frame.set_index([...]).to_xarray()`` gives a Dataset over the grid."""
    from .._extras import require

    pd = require("pandas", "tables", "results_frame")
    frame = pd.DataFrame(read_results(os.path.join(out_dir, "results.csv")))
    with open(os.path.join(out_dir, "config.json")) as f:
        frame.attrs.update(json.load(f))
    return frame
