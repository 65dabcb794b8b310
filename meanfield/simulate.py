"""Finite-width simulation (docs/theory.md, section 8): sampled networks, measured with the theory's quantities.

This module owns the simulation engine: sampling networks of width N (the blocks of
:mod:`meanfield.blocks`, which give each sampler its layer step) from a
:class:`~meanfield.spec.Spec`, pushing two inputs forward and one gradient backward through the same
weights, and returning the per-layer mean and standard error over independent networks as two
:class:`~meanfield.trajectory.Trajectory` values (the theory engine's result type). It also owns the
comparison of a simulation with a theory trajectory (:func:`compare`) and the matching plot helper
(:func:`plot_comparison`).

Two samplers draw from the same distribution:

``dense``
    The reference: each layer draws its N x N matrices W (and V) from the layer's key inside
    ``lax.scan``; the backward pass redraws them from the same keys in a reverse scan. O(N^2) per layer.

``fast`` (exact)
    Only two forward columns (the inputs x, x') ever meet a matrix, so the matrix need not exist. For an
    orthonormal basis q_0, q_1 of span(x, x'), W q_0 and W q_1 are independent N(0, (sw2/N) I) vectors
    z_0, z_1, which gives W x and W x' exactly. Given those, W = sum_k (W q_k) q_k^T + W (I - P) with
    P the projector onto span(x, x') and W (I - P) independent of everything the forward pass saw, so

        W^T u = sqrt(sw2/N) * [ sum_k q_k (z_k . u) + |u| (I - P) z' ],   z' ~ N(0, I_N) fresh,

    is the exact conditional law of the backward product. The same holds for V with the columns
    phi(h), phi(h'). A layer costs O(N) and one ``jax.random.normal`` call for the forward draws (plus
    one for the backward's fresh vectors). The basis is built from the sum and difference x + x',
    x - x' (so that nearly parallel inputs, e -> 1, keep their difference to full relative precision)
    by Gram-Schmidt; a direction whose norm is below ``4 sqrt(eps)`` of the pair's norm is dropped from
    the conditioning (a pseudo-inverse with a relative threshold), and the backward pass then draws that
    direction fresh, which changes the joint law only at that rounding level.

Memory: the backward pass of the fast sampler needs, per layer, the two bases, the four forward
Gaussian vectors and phi'(h) (9 N numbers for an FRN, 5 N otherwise). When a network's tape does not
fit in ``memory_bytes``, the forward pass keeps only the state (x, x') at the start of segments of
~sqrt(2 L / 9) layers, and the backward pass recomputes each segment from its checkpoint by redrawing
the same numbers from the same per-layer keys (14 N instead of 8 N Gaussian numbers per FRN layer).
Networks (samples times grid points) are vmapped in chunks sized to the same budget.

Random numbers: a network's key is split once, into one key for a (3, N) normal draw (the two inputs,
centred and orthonormalized to the exact p0 and gamma0, and the signs of the +-1 output gradient) and
per-layer keys (fast: forward draws, backward fresh vectors; dense: W, V, (b, a)); the stochastic-depth
mask (one Bernoulli(survival) draw per layer) comes from a key folded off the input key. Sample s of every
grid point uses the same key, so a grid is simulated with common random numbers.

Conventions of the recorded quantities (per network, then averaged; input 1 unless stated):
p = |x|^2/N, q = |h|^2/N, gamma = x.x'/N, lam = h.h'/N, e = gamma / sqrt(p p'), s = |x - x'|^2/N,
mu = mean_i x_i; with g^(l) = dE/dx^(l) and g^(L) a random +-1 vector (so chi^(L) = 1 exactly):
chi = |g|^2/N, chi_a = |dE/da|^2/N = chi, chi_b = |dE/db|^2/N, and chi_w, chi_v the mean over all N^2
entries of the squared gradients dE/dW = delta x^T and dE/dV = g phi(h)^T. These are rank one, so
mean_ij (delta_i x_j)^2 = mean(delta^2) mean(x^2) exactly, and chi_w = chi_b p^(l-1),
chi_v = chi * mean(phi(h)^2): the un-normalized per-entry mean square, which is the O(1) quantity of
docs/theory.md, section 3 (chi_w = sv2 chi V'(q) p^(l-1)); no factor N. Where the stream grows
(``densenet``: N_l = N0 + l G with ``width`` = N0), N is the stream's own width at that layer: the
samplers keep vectors of the final width N_L, zero beyond N_l, and average over the first N_l
coordinates (chi^(l) = |g^(l)|^2 / N_l, p^(l-1) = |x^(l-1)|^2 / N_(l-1) in chi_w).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._plan import DEFAULT_MEMORY_BYTES, DTYPES, SAMPLERS, _check_dtype, _check_int, check_args, plan  # noqa: F401
from ._x64 import in_float64
from .activations import Activation
from .blocks import GRADIENT_FIELDS, Block, at_layer, dense_layers, fast_layers, get_block, keys_per_layer, masked
from .parallel import map_points
from .spec import Hyper, Spec
from .trajectory import FIELDS, Trajectory

def _check_key(key):
    try:
        arr = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    except TypeError:
        arr = None
    if arr is not None and jnp.issubdtype(arr.dtype, jax.dtypes.prng_key) and arr.shape == ():
        return arr
    if arr is not None and arr.dtype == jnp.uint32 and arr.shape == (2,):
        return arr
    raise ValueError(f"key must be a single JAX PRNG key (jax.random.key(seed) or PRNGKey(seed)); got {key!r}")


# ------------------------------------------------------------------------------------- shared pieces
def _inputs(z, p0, gamma0):
    """Two inputs with coordinate mean 0, |x|^2/N = |x'|^2/N = p0 and x.x'/N = gamma0 (to rounding).

    Built from two Gaussian rows ``z`` (2, N): centred, orthonormalized, then combined.
    """
    n = z.shape[-1]
    z = z - jnp.mean(z, axis=1, keepdims=True)
    u1 = z[0] / jnp.linalg.norm(z[0])
    v = z[1] - jnp.dot(u1, z[1]) * u1
    u2 = v / jnp.linalg.norm(v)
    root_n = math.sqrt(n)
    sp = jnp.sqrt(p0)
    c1 = gamma0 / sp
    c2 = jnp.sqrt(jnp.maximum(p0 - c1 * c1, 0.0))
    return jnp.stack([root_n * (sp * u1), root_n * (c1 * u1 + c2 * u2)])


def _x_stats(x_pair, width=None):
    """The stream's statistics over its ``width`` coordinates (None: all; a growing stream is zero
    beyond its width)."""
    x, y = x_pair[0], x_pair[1]
    d = x - y
    mean = jnp.mean if width is None else (lambda v: jnp.sum(v) / width)  # noqa: E731
    return dict(p=mean(x * x), p2=mean(y * y), gamma=mean(x * y), s=mean(d * d), mu=mean(x))


def _layers(sampler: str, block: Block, act: Activation, n: int, dtype, hp, depth: int):
    """The block's (forward, backward) layer steps for ``sampler``, forward stats with the stream's.

    Both take the layer as ``(keys, l, xi)``: its keys, its index l >= 1, which sets its variances
    (:func:`meanfield.blocks.at_layer`) and, for a growing stream, its widths, and its stochastic-depth
    draw xi (1: the branch is kept)."""
    make = fast_layers if sampler == "fast" else dense_layers
    block_forward, block_backward = make(block, act, n, dtype, depth)

    def forward(x_pair, layer):
        keys, l, xi = layer
        new, stats, tape = block_forward(x_pair, keys, masked(at_layer(hp, l), xi), l)
        width = block.width_at(n, jnp.round(l).astype(jnp.int32) - 1) if block.grows else None
        return new, {**_x_stats(x_pair, width), **stats}, tape

    def backward(g, tape, layer):
        keys, l, xi = layer
        return block_backward(g, tape, keys, masked(at_layer(hp, l), xi), l)

    return forward, backward


# ---------------------------------------------------------------------------------- one network
def _forward_scan(forward, x0, layers, keep_tape: bool):
    """``layers``: (keys, l) stacked over the scanned layers."""
    def body(x_pair, layer):
        new, stats, tape = forward(x_pair, layer)
        return new, (stats, tape if keep_tape else None)

    x_end, (stats, tape) = jax.lax.scan(body, x0, layers)
    return x_end, stats, tape


def _backward_scan(backward, g, tape, layers):
    def body(g_cur, xs):
        return backward(g_cur, *xs)

    return jax.lax.scan(body, g, (tape, layers), reverse=True)


def _split_key(key, depth: int, sampler: str, arch):
    """(input key, per-layer keys of shape (L, k)) from one network key, in a single split (``arch``: a
    block name or :class:`~meanfield.blocks.Block`)."""
    k = keys_per_layer(get_block(arch), sampler)
    keys = jax.random.split(key, 1 + depth * k)
    return keys[0], keys[1:].reshape((depth, k) + keys.shape[1:])


def _start(key, hp, width: int, dtype, final: int | None = None):
    """The two inputs (see :func:`_inputs`) and the +-1 output gradient, from one normal draw.

    ``final``: the stream's width at the top where it grows (default ``width``): the inputs are then
    zero beyond their ``width`` coordinates and the output gradient has ``final`` coordinates."""
    final = width if final is None else final
    z = jax.random.normal(key, (3, final), dtype)
    x0 = _inputs(z[:2, :width], hp.p0, hp.gamma0)
    if final != width:
        x0 = jnp.pad(x0, ((0, 0), (0, final - width)))
    return x0, jnp.where(z[2] < 0, -1.0, 1.0).astype(dtype)


def _mask(key, survival, depth: int, dtype):
    """The stochastic-depth draws xi_l ~ Bernoulli(survival), l = 1..L, of one network, from a key folded
    off its input key (so that the other draws do not change; survival 1 gives xi = 1 everywhere)."""
    return jax.random.bernoulli(jax.random.fold_in(key, 1), survival, (depth,)).astype(dtype)


def _network(hp, key, *, arch, act, depth, width, dtype, sampler, segment):
    """Raw per-layer statistics of one sampled network (dict of float64 arrays of length L + 1)."""
    hp = Hyper(*(jnp.asarray(v, dtype) for v in hp))
    block = get_block(arch)
    forward, backward = _layers(sampler, block, act, width, dtype, hp, depth)
    k_start, keys = _split_key(key, depth, sampler, block)
    x0, g_top = _start(k_start, hp, width, dtype, block.width_at(width, depth))
    xi = _mask(k_start, hp.survival, depth, dtype)
    keys = (keys, jnp.arange(1, depth + 1, dtype=dtype), xi)  # each layer's keys, index and mask
    cut = lambda sl: jax.tree.map(lambda a: a[sl], keys)  # noqa: E731

    if segment >= depth:  # the whole tape fits: one forward pass, one backward pass
        x_end, fstats, tape = _forward_scan(forward, x0, keys, True)
        g0, bstats = _backward_scan(backward, g_top, tape, keys)
    else:  # checkpoint the state every `segment` layers; recompute each segment in the backward pass
        rem = depth % segment  # a first, shorter segment
        seg_keys = jax.tree.map(lambda a: a.reshape((depth // segment, segment) + a.shape[1:]), cut(slice(rem, None)))
        x_mid, fstats_head, _ = _forward_scan(forward, x0, cut(slice(rem)), False) if rem else (x0, None, None)

        def seg_forward(x_pair, seg):
            new, stats, _ = _forward_scan(forward, x_pair, seg, False)
            return new, (x_pair, stats)

        x_end, (checkpoints, fstats) = jax.lax.scan(seg_forward, x_mid, seg_keys)

        def seg_backward(g, xs):
            x_start, seg = xs
            _, _, tape = _forward_scan(forward, x_start, seg, True)
            return _backward_scan(backward, g, tape, seg)

        g0, bstats = jax.lax.scan(seg_backward, g_top, (checkpoints, seg_keys), reverse=True)
        flat = lambda a: a.reshape((-1,) + a.shape[2:])  # noqa: E731
        fstats, bstats = jax.tree.map(flat, fstats), jax.tree.map(flat, bstats)
        if rem:
            _, _, tape_head = _forward_scan(forward, x0, cut(slice(rem)), True)
            g0, bstats_head = _backward_scan(backward, g0, tape_head, cut(slice(rem)))
            cat = lambda a, b: jnp.concatenate([a, b])  # noqa: E731
            fstats = jax.tree.map(cat, fstats_head, fstats)
            bstats = jax.tree.map(cat, bstats_head, bstats)

    grows = block.grows  # chi^(0) and the top's statistics over the input's and the top's widths
    last = _x_stats(x_end, block.width_at(width, depth) if grows else None)
    nan = jnp.full((1,), jnp.nan, dtype)
    out = {k: jnp.concatenate([fstats[k], last[k][None]]) for k in ("p", "p2", "gamma", "s", "mu")}
    out.update({k: jnp.concatenate([nan, v]) for k, v in fstats.items() if k not in out})
    out.update({k: jnp.concatenate([nan, v]) for k, v in bstats.items() if k != "chi"})
    chi0 = jnp.sum(g0 * g0) / width if grows else jnp.mean(g0 * g0)
    out["chi"] = jnp.concatenate([chi0[None], bstats["chi"]])
    return {k: v.astype(jnp.float64) for k, v in out.items()}


@functools.partial(jax.jit, static_argnames=("arch", "act", "depth", "width", "dtype", "sampler",
                                             "segment", "impl"))
def _networks(block, *, arch, act, depth, width, dtype, sampler, segment, impl):
    """Raw statistics of a block of networks: ``block = (hyper, key data)`` with one leading network
    axis (the per-point function of :func:`meanfield.parallel.map_points`). ``impl``: the PRNG
    implementation of typed keys (None for raw uint32 keys)."""
    hp, key_data = block
    keys = key_data if impl is None else jax.random.wrap_key_data(key_data, impl=impl)
    one = functools.partial(_network, arch=arch, act=act, depth=depth, width=width, dtype=dtype,
                            sampler=sampler, segment=segment)
    return jax.vmap(one)(hp, keys)


# ------------------------------------------------------------------------------------------ public
@in_float64
def networks(spec: Spec, width: int, samples: int, key, sampler: str = "fast", dtype="float32", *,
             memory_bytes: int = DEFAULT_MEMORY_BYTES, segment: int | None = None,
             progress: bool = False, mesh=None) -> Trajectory:
    """The measured trajectory of every sampled network: fields of shape ``spec.shape + (samples, L + 1)``.

    Arguments as for :func:`simulate`. Each network's fields are its own empirical values (``e`` from its
    own p, p' and gamma; log twins are logs of its values; ``log_R`` has shape ``spec.shape + (samples,)``),
    for histograms and two-sample tests; :func:`simulate` averages them.
    """
    if not isinstance(spec, Spec):
        raise ValueError(f"spec must be a meanfield.Spec, got {type(spec).__name__}")
    width, samples, sampler, dt = check_args(width, samples, sampler, dtype)
    key = _check_key(key)
    memory_bytes = _check_int("memory_bytes", memory_bytes, 1)
    if segment is not None:
        segment = _check_int("segment", segment, 1)

    shape = spec.shape
    n_grid = math.prod(shape)
    n_net = n_grid * samples
    # network index = grid_index * samples + sample_index; grid points share the sample keys
    hp = Hyper(*(np.repeat(np.reshape(v, (n_grid,)), samples) for v in spec.hyper()))
    sample_keys = jax.random.split(key, samples)
    typed = jnp.issubdtype(sample_keys.dtype, jax.dtypes.prng_key)
    key_data = np.asarray(jax.random.key_data(sample_keys) if typed else sample_keys)
    key_data = key_data[np.tile(np.arange(samples), n_grid)]
    block = spec.block
    block.shapes(width)  # a ValueError naming the width field where a layer would have no units
    block.growth_units(width)
    segment, chunk = plan(sampler, block, width, spec.depth, dt.itemsize, n_net, memory_bytes, segment)
    static = {"arch": block, "act": spec.act, "depth": spec.depth, "width": width, "dtype": dt,
              "sampler": sampler, "segment": segment, "impl": jax.random.key_impl(key) if typed else None}
    raw = map_points(_networks, (hp, key_data), static=static, chunk=chunk, mesh=mesh,
                     progress="simulate" if progress else None)
    raw = {k: v.reshape(shape + (samples, spec.depth + 1)) for k, v in raw.items()}
    return _per_network(raw)


def _per_network(raw: dict) -> Trajectory:
    """Trajectory fields of each network from its raw statistics: a parameter's gradient quantity is the
    mean square of the gradient at its output (bias), times that of its input (dense: rank one)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = {k: raw[k] for k in ("p", "q", "gamma", "lam", "s", "mu", "chi")}
        out["e"] = raw["gamma"] / np.sqrt(raw["p"] * raw["p2"])
        for name in GRADIENT_FIELDS:
            if "g_" + name not in raw:
                out["chi_" + name] = np.full_like(raw["p"], np.nan)
            elif "in_" + name in raw:
                out["chi_" + name] = raw["g_" + name] * raw["in_" + name]
            else:
                out["chi_" + name] = raw["g_" + name]
        for k in ("chi", "p", "s"):
            out["log_" + k] = np.log(out[k])
        out["log_R"] = out["log_chi"][..., 0] - out["log_chi"][..., -1]
    return Trajectory(**out)


def summarize(per_network: Trajectory) -> tuple[Trajectory, Trajectory]:
    """(mean, stderr) over the samples axis of :func:`networks`' result (the axis before the layer axis).

    Plain fields: sample mean and standard error (ddof = 1). Log twins: the log of the mean
    (``log_p = log mean p``, not the mean of logs, so that it estimates the theory's log p) with the
    delta-method stderr(p) / mean(p); ``log_R = log mean(chi^(0) / chi^(L))`` likewise.
    """
    pn = per_network
    n = int(np.shape(pn.p)[-2])
    mean, se = {}, {}
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for field in Trajectory._fields:
            if field.startswith("log_"):
                continue
            v = np.asarray(getattr(pn, field))
            mean[field] = np.mean(v, -2)
            se[field] = np.std(v, -2, ddof=1) / math.sqrt(n)
        for k in ("chi", "p", "s"):
            mean["log_" + k] = np.log(mean[k])
            se["log_" + k] = se[k] / mean[k]
        log_r = np.asarray(pn.log_R)
        top = np.max(log_r, -1, keepdims=True)
        ratio = np.exp(log_r - top)  # R / max R: the mean of R without overflow
        m_r = np.mean(ratio, -1)
        mean["log_R"] = np.log(m_r) + top[..., 0]
        se["log_R"] = np.std(ratio, -1, ddof=1) / math.sqrt(n) / m_r
    return Trajectory(**mean), Trajectory(**se)


def simulate(spec: Spec, width: int, samples: int, key, sampler: str = "fast", dtype="float32", *,
             memory_bytes: int = DEFAULT_MEMORY_BYTES, segment: int | None = None, progress: bool = False,
             mesh=None) -> tuple[Trajectory, Trajectory]:
    """Sample ``samples`` networks of width ``width`` per grid point of ``spec``; per-layer mean and stderr.

    Args:
      spec: the network (an array-valued spec is a grid; all grid points share the same random draws,
        so differences across the grid are measured with common random numbers).
      width: N >= 3.
      samples: independent networks per grid point, >= 2.
      key: a JAX PRNG key; the same key gives the same numbers (for either sampler, the inputs and the
        +-1 output gradient come from the same sub-keys).
      sampler: ``"fast"`` (exact O(N) per layer, see the module docstring) or ``"dense"`` (N x N matrices).
      dtype: ``"float32"`` or ``"float64"`` (or the numpy/jax dtype). ReLU networks grow like B^l: deep
        ones need float64, and a simulation is only meaningful while p and chi stay in range.
      memory_bytes: memory target of one compiled chunk of networks.
      segment: checkpoint the forward state every ``segment`` layers and recompute in the backward pass
        (default: chosen from ``memory_bytes``; ``segment >= depth`` keeps the whole tape). Results do
        not depend on it beyond rounding.
      progress: show a progress bar over the compiled chunks of networks on stderr (the numbers are
        the same with or without it).
      mesh: devices (a list, or a one-axis :class:`~jax.sharding.Mesh`) to shard the networks over;
        default every device of every process (:mod:`meanfield.parallel`). The numbers do not
        depend on it: every network has its own key.

    Returns:
      ``(mean, stderr)``: two :class:`Trajectory` values with shape ``spec.shape + (L + 1,)`` (``log_R``:
      ``spec.shape``), as computed by :func:`summarize`. NaN where the theory is undefined.
    """
    return summarize(networks(spec, width, samples, key, sampler, dtype, memory_bytes=memory_bytes,
                              segment=segment, progress=progress, mesh=mesh))


def compare(theory: Trajectory, mean: Trajectory, stderr: Trajectory) -> dict:
    """Per-layer discrepancy of a simulation from a theory trajectory, for every field and ``log_R``.

    Returns ``{field: {"rel_err": (sim - theory) / |theory|, "z": (sim - theory) / stderr}}`` with numpy
    arrays of the trajectories' shape. NaN where the theory (or the simulation) is undefined; where the
    stderr is 0 (chi^(L) = 1 exactly), z is 0 for exact agreement and +-inf otherwise.
    """
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for field in FIELDS + ("log_R",):
            th = np.asarray(getattr(theory, field), np.float64)
            sim = np.asarray(getattr(mean, field), np.float64)
            se = np.asarray(getattr(stderr, field), np.float64)
            diff = sim - th
            z = np.where(diff == 0, 0.0, diff / se)
            out[field] = {"rel_err": diff / np.abs(th), "z": np.where(np.isnan(diff), np.nan, z)}
    return out


def plot_comparison(ax, l, theory_values, sim_mean, sim_stderr, label: str = "", **kwargs):
    """Theory as a line, simulation as points with error bars, in one colour, on a matplotlib Axes.

    Extra keyword arguments go to both artists (e.g. ``color``). Returns ``(line, errorbar_container)``.
    """
    import matplotlib  # noqa: F401  (lazy: the engine itself never needs matplotlib)

    l = np.asarray(l)
    (line,) = ax.plot(l, np.asarray(theory_values), "-", label=f"{label} theory".strip(), **kwargs)
    kwargs.setdefault("color", line.get_color())
    bars = ax.errorbar(l, np.asarray(sim_mean), yerr=np.asarray(sim_stderr), fmt="o", ms=3, capsize=2,
                       label=f"{label} simulation".strip(), **kwargs)
    return line, bars
