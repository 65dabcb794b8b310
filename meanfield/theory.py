"""Mean-field recursions (docs/theory.md, section 3): forward p, q, gamma, lambda, e, s, mu; backward chi.

The recursion carries ``(log p, d = 1 - e, mu / sqrt p)`` rather than ``(p, gamma, mu)``:

* log p never overflows (a ReLU FRN has p ~ B^l; at l = 1e5 that is exp(4e4));
* d -> 0 like 1/l^2 for ReLU, and the update of d is a sum of non-negative terms, so it keeps full
  relative precision where 1 - gamma/p would cancel.

The step of one block is derived from its definition (:func:`meanfield.blocks.theory_step`). For
x = V phi(h) + x + a (FRN; RRN is the same with sv2 = 1, sa2 = 0 plus the mean term) and
``inc = (p_l - p_{l-1}) / p_{l-1}`` it reads

    log p_l = log p_{l-1} + log1p(inc)
    d_l     = (sv2 (V/p) (1 - rho(c)) + d_{l-1}) / (1 + inc),   1 - c = sw2 d_{l-1} / (sw2 + sb2/p_{l-1})

where rho(c) = W(q, c q) / V(q). The backward pass is a reverse cumulative sum of log chi factors.
One ``jax.lax.scan`` over depth serves every depth <= L; grids of hyperparameters are vmapped in
chunks and sharded over all visible devices. Every call computes in float64 inside its own scope
(:func:`meanfield._x64.float64`): the user's ``jax_enable_x64`` setting is left as it was, and results
are float64 numpy arrays either way.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._plan import DEFAULT_CHUNK, check_chunk_size, trajectory_bytes  # noqa: F401
from ._x64 import float64
from . import stochastic_depth
from .activations import Activation
from .blocks import DECAYS, GRADIENT_FIELDS, Block, at_layer, get_block, theory_step
from .parallel import map_points
from .spec import Hyper, Spec
from .trajectory import Trajectory


def estimate_bytes(spec: Spec, *, chunk_size: int | None = None) -> int:
    """Peak memory of :func:`trajectory` for ``spec`` (numpy only: nothing is compiled)."""
    return trajectory_bytes(spec.depth, spec.size, chunk_size)


def _layer_scan(block: Block, act: Activation, depth: int, h: Hyper, decay: bool):
    """Forward recursion for a batch of grid points (arrays of shape (B,) in ``h``).

    Returns the initial state and the states after each layer, arrays of shape (L, B). The depth loop
    carries the state and nothing else: XLA:CPU compiles a loop that reads little per step into one
    kernel, and every per-layer quantity that does not feed the next layer is computed afterwards, for
    all layers at once (:func:`_layer_outputs`). The batch is explicit (not vmapped) so that
    activations can route each grid point to the cheapest accurate rule (see
    ``activations._split_eval``). With ``decay`` the layer index l = 1..L is the scan's input, layer
    l's variances are :func:`meanfield.blocks.at_layer` of ``h`` and the block step sees l (a growing
    stream weighs its old and new coordinates by N_(l-1) / N_l); without it (every decay exponent 0,
    a stream of constant width) the loop does not compute l^-decay at all, which keeps it small
    enough to be one kernel.
    """

    def step(carry, l):
        new, _ = theory_step(block, act, h if l is None else at_layer(h, l), carry, l)
        return new, new

    carry0 = (jnp.log(h.p0), 1.0 - h.gamma0 / h.p0, jnp.zeros_like(h.p0))
    _, states = jax.lax.scan(step, carry0, _layers(depth) if decay else None, length=depth)
    return carry0, states


def _layers(depth: int):
    """The layer indices 1..L as float64."""
    return jnp.arange(1, depth + 1, dtype=jnp.float64)


#: Points (layers x grid points) per batch of :func:`_layer_outputs`: bounds its working memory.
_OUTPUT_POINTS = 1 << 16


def _layer_outputs(block: Block, act: Activation, h: Hyper, inputs, decay: bool) -> dict:
    """The per-layer outputs of :func:`meanfield.blocks.theory_step` (log q, c, log chi factor, gains,
    log q of every activation) given each layer's input state ``inputs`` (three (L, B) arrays),
    a batch of layers at a time."""
    depth, width = inputs[0].shape
    per = max(1, min(depth, _OUTPUT_POINTS // width))
    n = -(-depth // per)
    pad = n * per - depth
    # padded layers repeat the last input: valid states, cut off below; the layer index only with decay
    columns = inputs + ((_layers(depth)[:, None],) if decay else ())
    padded = tuple(jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x for x in columns)
    out = jax.lax.map(lambda xs: theory_step(block, act, at_layer(h, xs[3]) if decay else h, xs[:3],
                                             xs[3] if decay else None)[1],
                      tuple(x.reshape((n, per) + x.shape[1:]) for x in padded))
    return jax.tree.map(lambda x: x.reshape((n * per,) + x.shape[2:])[:depth]
                        if x.ndim == 3 else jnp.moveaxis(x, 1, 0).reshape((x.shape[1], n * per, width))[:, :depth],
                        out)


def _core(arch, act: Activation, depth: int, h: Hyper, decay: bool, mix: bool = False):
    """Trajectories of a batch (every field (B, L + 1), log_R (B,)) and the range of q over every
    activation's input and layer, (B, 2). ``mix``: some survival probability is below 1, and the
    trajectory is the expectation over the stochastic-depth masks (:mod:`meanfield.stochastic_depth`)
    of the plain network's."""
    block = get_block(arch)
    (lp0, d0, m0), states = _layer_scan(block, act, depth, h, decay)
    inputs = tuple(jnp.concatenate([x0[None], x[:-1]]) for x0, x in zip((lp0, d0, m0), states))
    out = _layer_outputs(block, act, h, inputs, decay)
    log_p, d, m = (x.T for x in states)  # (B, L)
    log_q, c = out["log_q"].T, out["c"].T
    log_q_acts = out["log_q_acts"]  # (acts, L, B)
    q_range = jnp.exp(jnp.stack([jnp.nanmin(log_q_acts, axis=(0, 1)), jnp.nanmax(log_q_acts, axis=(0, 1))], axis=1))
    col = lambda x: x[:, None]  # noqa: E731
    nan = jnp.full_like(col(lp0), jnp.nan)
    log_p = jnp.concatenate([col(lp0), log_p], axis=1)
    d = jnp.concatenate([col(d0), d], axis=1)
    m = jnp.concatenate([col(m0), m], axis=1)
    if mix:
        gains = {name: gain.T for name, gain in out["gains"].items()}
        return stochastic_depth.expectation(h.survival, log_p, d, m, log_q, c, out["log_factor"].T, gains), q_range
    e = 1.0 - d
    log_s = log_p + jnp.log(2.0 * d)
    q = jnp.concatenate([nan, jnp.exp(log_q)], axis=1)
    lam = jnp.concatenate([nan, c * jnp.exp(log_q)], axis=1)

    # backward: chi^(l-1) = chi^(l) * factor_l, chi^(L) = 1
    log_factor = out["log_factor"].T
    tail = jnp.cumsum(log_factor[:, ::-1], axis=1)[:, ::-1]  # tail[:, k] = sum_{j >= k} log factor_{j+1}
    log_chi = jnp.concatenate([tail, jnp.zeros_like(nan)], axis=1)
    lchi = log_chi[:, 1:]  # chi^(l), l = 1..L
    grads = {}
    for name in GRADIENT_FIELDS:
        gain = out["gains"].get(name)
        grads[name] = (jnp.full_like(log_p, jnp.nan) if gain is None
                       else jnp.concatenate([nan, jnp.exp(lchi + gain.T)], axis=1))
    p = jnp.exp(log_p)
    traj = Trajectory(
        p=p, q=q, gamma=e * p, lam=lam, e=e, s=jnp.exp(log_s), mu=m * jnp.exp(0.5 * log_p),
        chi=jnp.exp(log_chi), log_chi=log_chi, chi_a=grads["a"], chi_b=grads["b"], chi_w=grads["w"],
        chi_v=grads["v"], log_p=log_p, log_s=log_s, log_R=log_chi[:, 0],
    )
    return traj, q_range


@functools.partial(jax.jit, static_argnames=("arch", "act", "depth", "decay", "mix"))
def _batched(h: Hyper, *, arch, act: Activation, depth: int, decay: bool, mix: bool) -> tuple[Trajectory, jax.Array]:
    """:func:`_core` compiled for one block of grid points (the per-point function of
    :func:`meanfield.parallel.map_points`: each device runs the whole depth scan on its block).
    ``decay``: whether the layers differ, a variance decaying with depth or the stream growing (the
    step takes the layer index); ``mix``: whether some survival probability is below 1 (one program for
    each combination that occurs)."""
    return _core(arch, act, depth, h, decay, mix)


def trajectory(spec: Spec, *, chunk_size: int | None = None, progress: bool = False, mesh=None) -> Trajectory:
    """Mean-field trajectory of ``spec``, layers l = 0..L on the last axis (float64 numpy arrays).

    A spec with array-valued hyperparameters is a grid: the result has the grid's broadcast shape in
    front. The grid is evaluated in chunks of ``chunk_size`` points (default 4096) by one compiled
    program (a new hyperparameter value never recompiles), sharded over every device of every process
    (or over ``mesh``: a list of devices or a one-axis :class:`~jax.sharding.Mesh`; see
    :mod:`meanfield.parallel`). ``progress=True`` shows a progress bar over the chunks on stderr. :func:`estimate_bytes` gives the
    peak memory beforehand.
    """
    if not isinstance(spec, Spec):
        raise ValueError(f"spec must be a meanfield.Spec, got {type(spec).__name__}")
    chunk = check_chunk_size(chunk_size)
    with float64():
        return _trajectory(spec, chunk, progress, mesh)


def _trajectory(spec: Spec, chunk: int, progress: bool, mesh) -> Trajectory:
    """The grid, flattened, through :func:`meanfield.parallel.map_points`. A tabulated activation (tanh,
    custom) runs on its table without a per-layer range check (a conditional in the scan costs more
    than the lookup); the points where the q of some activation's input left the table's range run
    again with the check."""
    shape = spec.shape
    n = math.prod(shape)
    flat = Hyper(*(np.reshape(x, (n,)) for x in spec.hyper()))
    act = spec.act

    # the layers differ: a variance decays, or the stream grows (the step then takes the layer index)
    decay = spec.block.grows or any(bool(np.any(getattr(flat, d) != 0)) for d in DECAYS.values())
    mix = bool(np.any(flat.survival != 1.0))

    def run(points, a):
        return map_points(_batched, points,
                          static={"arch": spec.block, "act": a, "depth": spec.depth, "decay": decay, "mix": mix},
                          chunk=chunk, mesh=mesh, progress="theory" if progress else None)

    if act.unchecked is None:
        out, _ = run(flat, act)
    else:
        out, q_range = run(flat, act.unchecked)
        redo = np.flatnonzero(~act.table.covers_rows(q_range))
        if len(redo):
            fixed, _ = run(Hyper(*(x[redo] for x in flat)), act)
            out = Trajectory(*(np.array(field) for field in out))
            for field, part in zip(out, fixed):
                field[redo] = part
    return Trajectory(*(np.reshape(a, shape + a.shape[1:]) for a in out))
