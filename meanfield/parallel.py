"""Map a per-point function over a flat grid of points, on every device of every process.

A grid of hyperparameters (theory), of networks (simulation) or of networks to train is a flat
leading axis of independent points: no point ever needs another's data, so the work splits over
devices without communication. This module owns that split:

* :func:`grid_mesh`: a one-axis mesh (``"grid"``) over all devices of all processes (or the user's
  devices, or the user's own :class:`jax.sharding.Mesh`);
* :func:`shard_rows` / :func:`replicate`: host arrays to global arrays, sharded along the leading axis or
  replicated. Every process holds the same host array and contributes its own devices' part
  (:func:`jax.make_array_from_callback`), so nothing is copied between hosts;
* :func:`to_host`: a global array back to numpy on every process (JAX's own
  :func:`~jax.experimental.multihost_utils.process_allgather` across processes);
* :func:`map_points`: pad the points to a multiple of the device count, run ``fn`` on each device's
  block (:func:`jax.shard_map`) in memory-bounded chunks, gather, cut the padding.

With several processes (``jax.distributed.initialize()`` before any other JAX call), every process
calls the same functions with the same arguments, and every process receives the full result; only
process 0 should write files (:func:`is_writer`). Results do not depend on the number of devices or
processes: each point is computed by the same program on its own.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "grid"


def grid_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"grid"`` over ``devices`` (default: every device of every process), or
    ``devices`` itself if it is already a :class:`~jax.sharding.Mesh` (its first axis is used)."""
    if isinstance(devices, Mesh):
        return devices
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must hold at least one device")
    return Mesh(np.array(devices), (AXIS,))


def _axis(mesh: Mesh) -> str:
    return mesh.axis_names[0]


def _size(mesh: Mesh) -> int:
    return int(mesh.shape[_axis(mesh)])


def is_writer() -> bool:
    """True on the one process that writes files (process 0; the only process without
    ``jax.distributed``)."""
    return jax.process_index() == 0


def pad_rows(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with its last row repeated up to ``n`` rows (padded points are valid points whose results
    are dropped)."""
    a = np.asarray(a)
    if a.shape[0] == n:
        return a
    return np.concatenate([a, np.repeat(a[-1:], n - a.shape[0], 0)])


def shard_rows(tree, mesh: Mesh):
    """Host arrays (same leading length, a multiple of the mesh size) -> global arrays sharded along
    the leading axis over ``mesh``."""
    return _put(tree, mesh, PartitionSpec(_axis(mesh)))


def replicate(tree, mesh: Mesh):
    """Host arrays -> global arrays replicated on every device of ``mesh``."""
    return _put(tree, mesh, PartitionSpec())


def _put(tree, mesh: Mesh, spec: PartitionSpec):
    """Each process places its own devices' part of the host arrays, laid out by ``spec``."""
    if _size(mesh) == 1:  # a plain single-device array: XLA compiles a sharded program slower on CPU
        device = mesh.devices.flat[0]
        return jax.tree.map(lambda a: jax.device_put(np.asarray(a), device), tree)
    sharding = NamedSharding(mesh, spec)

    def put(a):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])

    return jax.tree.map(put, tree)


def to_host(tree):
    """Global arrays -> numpy arrays with every element, on every process."""
    def get(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(get, tree)


@functools.lru_cache(maxsize=128)
def _program(fn: Callable, static: tuple, mesh: Mesh) -> Callable:
    body = functools.partial(fn, **dict(static))
    if _size(mesh) == 1:  # an already jitted fn keeps its own compilation cache
        return body if hasattr(fn, "lower") else jax.jit(body)
    spec = PartitionSpec(_axis(mesh))
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec))


def map_points(fn: Callable, points, *, static: dict | None = None, chunk: int | None = None,
               mesh: Mesh | None = None, progress: str | None = None):
    """``fn(block, **static)`` over the leading axis of ``points``, sharded over ``mesh``, in chunks.

    Args:
      fn: maps a pytree of arrays with leading axis b to a pytree of arrays with leading axis b, each
        row depending only on the same row of the input (a batch of independent points). It is traced
        once per (``fn``, ``static``, mesh, chunk shape): new point values never recompile.
      points: pytree of host arrays with a common leading length n >= 1.
      static: hashable keyword arguments of ``fn`` (architecture, depth, ...).
      chunk: points per compiled call (default: all), rounded up to a multiple of the device count;
        it bounds the memory of one call.
      mesh: the devices (default :func:`grid_mesh`: all devices of all processes).
      progress: a description to show a progress bar over the chunks on stderr (process 0 only).

    Returns:
      pytree of numpy arrays with leading length n, on every process.
    """
    mesh = grid_mesh(mesh)
    leaves = jax.tree.leaves(points)
    if not leaves:
        raise ValueError("points must hold at least one array")
    n = int(np.shape(leaves[0])[0])
    if n < 1 or any(int(np.shape(a)[0]) != n for a in leaves):
        raise ValueError(f"every array of points needs the same leading length >= 1, got "
                         f"{[np.shape(a) for a in leaves]}")
    n_dev = _size(mesh)
    size = min(n if chunk is None else int(chunk), n)
    size = -(-size // n_dev) * n_dev
    program = _program(fn, tuple(sorted((static or {}).items())), mesh)
    starts = range(0, n, size)
    if progress and is_writer() and len(starts) > 1:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=progress, unit="chunk", total=len(starts))
    pieces = []
    for start in starts:
        stop = min(start + size, n)
        block = jax.tree.map(lambda a: pad_rows(np.asarray(a)[start:stop], size), points)
        out = to_host(program(shard_rows(block, mesh)))
        pieces.append(jax.tree.map(lambda a: a[: stop - start], out))
    if len(pieces) == 1:
        return pieces[0]
    return jax.tree.map(lambda *parts: np.concatenate(parts), *pieces)

