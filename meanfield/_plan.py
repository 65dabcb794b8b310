"""Validation and memory planning of the engines, in numpy only.

Kept apart from :mod:`meanfield.theory` and :mod:`meanfield.simulate` (which import jax) so that the
command line can reject bad input, and runs that cannot fit in memory, before jax is imported. The
engines re-export these names.
"""

from __future__ import annotations

import math

import numpy as np

from .blocks import get_block

# ------------------------------------------------------------------------------------------ theory
#: Default number of grid points per compiled call of the theory engine.
DEFAULT_CHUNK = 4096
#: Trajectory fields (16 float64 arrays over the layers per grid point).
_RESULT_ARRAYS = 16
#: float64 arrays of length L + 1 alive per grid point of a compiled chunk, besides the result fields
#: (scan outputs and backward temporaries). Measured: one ReLU FRN of depth 1e7 peaks 2.46 GB above
#: the resident size of a bare jax import, 31 arrays of 80 MB in all; 32 + 16 leaves a 1.5x margin.
_LIVE_ARRAYS = 32


def check_chunk_size(chunk_size) -> int:
    """``chunk_size`` as an int >= 1 (None: :data:`DEFAULT_CHUNK`); ValueError naming the field otherwise."""
    if chunk_size is None:
        return DEFAULT_CHUNK
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1 (or None for {DEFAULT_CHUNK}), got {chunk_size!r}")
    return int(chunk_size)


def trajectory_bytes(depth: int, n_points: int = 1, chunk_size: int | None = None) -> int:
    """Peak memory of a theory trajectory: the result of every grid point plus one compiled chunk."""
    chunk = min(check_chunk_size(chunk_size), n_points)
    row = 8 * (depth + 1)  # one float64 array over the layers
    return _RESULT_ARRAYS * row * n_points + _LIVE_ARRAYS * row * chunk


# ------------------------------------------------------------------------------------------ simulation
SAMPLERS = ("fast", "dense")
DTYPES = ("float32", "float64")
#: Target memory of one compiled chunk of networks (at least one network is always simulated at once).
DEFAULT_MEMORY_BYTES = 1 << 30


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return dt


def _check_int(name: str, value, low: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}{why}; got {value!r}")
    return int(value)


def check_args(width, samples, sampler="fast", dtype="float32") -> tuple[int, int, str, np.dtype]:
    """Validate the simulation arguments (before any compilation); ValueError naming the field."""
    width = _check_int("width", width, 3, " (two zero-mean inputs with a prescribed Gram matrix need 3 "
                                          "coordinates)")
    samples = _check_int("samples", samples, 2, " (a standard error needs 2 samples)")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    return width, samples, sampler, _check_dtype(dtype)


def _tape_rows(sampler: str, arch, width: int, depth: int) -> int:
    return get_block(arch).tape_rows(sampler, width, depth)


def plan(sampler: str, arch, width: int, depth: int, itemsize: int, n_networks: int,
         memory_bytes: int = DEFAULT_MEMORY_BYTES, segment: int | None = None) -> tuple[int, int]:
    """(segment length, networks per chunk) for a memory budget; segment >= depth means no recompute.

    Without a given ``segment``, the whole backward tape is kept when one network's tape fits in
    ``memory_bytes``; otherwise the segment length minimizes checkpoints + one segment's tape.
    ``arch``: a block name or :class:`~meanfield.blocks.Block` (a growing stream is planned at its final
    width N_L, the length of the samplers' vectors).
    """
    tape_rows = _tape_rows(sampler, arch, width, depth)
    if segment is None:
        if network_bytes(sampler, arch, width, depth, itemsize, depth) <= memory_bytes:
            segment = depth
        else:
            segment = max(1, min(depth - 1, round(math.sqrt(2.0 * depth / tape_rows))))
    segment = min(segment, depth)
    chunk = int(max(1, min(n_networks, memory_bytes // network_bytes(sampler, arch, width, depth, itemsize,
                                                                      segment))))
    return segment, chunk


def network_bytes(sampler: str, arch, width: int, depth: int, itemsize: int, segment: int) -> int:
    """Working memory of one network in a compiled chunk: tape (or checkpoints + one segment) + one layer.
    Rows are of the samplers' vector length (the stream's width; N_L for a growing stream)."""
    block = get_block(arch)
    n = block.row_width(width, depth)
    tape_rows = _tape_rows(sampler, arch, width, depth)
    # transient arrays of one layer: the forward draws and their images (fast), or the largest matrix
    # (N x N; G x N_L for a growing stream)
    work_rows = 24 if sampler == "fast" else block.matrix_rows(width, depth) + 8
    if segment >= depth:
        return (depth * tape_rows + work_rows + 2) * n * itemsize
    return (2 * (depth // segment + 1) + segment * tape_rows + work_rows) * n * itemsize


#: Per-layer float64 numbers kept per network on the host: the raw measurements and the per-network
#: trajectory, before they are averaged.
_HOST_ROWS = 12 + 16


def simulation_bytes(sampler: str, arch, width: int, depth: int, itemsize: int, n_networks: int,
                     memory_bytes: int = DEFAULT_MEMORY_BYTES, segment: int | None = None) -> int:
    """Peak memory of a simulation: one compiled chunk of networks plus the per-layer results of all."""
    segment, chunk = plan(sampler, arch, width, depth, itemsize, n_networks, memory_bytes, segment)
    device = chunk * network_bytes(sampler, arch, width, depth, itemsize, segment)
    return device + _HOST_ROWS * 8 * (depth + 1) * n_networks


