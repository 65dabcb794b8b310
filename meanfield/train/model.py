"""The trained network: embedding 784 -> N, L residual blocks, linear softmax readout.

Blocks are the definitions of :mod:`meanfield.blocks` (docs/theory.md, section 1), for example::

    h = W x + b;   x <- V phi(h) + x + a   (frn)   |   x <- phi(h) + x   (rrn)   |   x <- phi(h)   (ff)
    x <- concat(x, phi(h))   (densenet: the stream grows from N to N_L = N + L G; the readout reads N_L)

    W_ij ~ N(0, sw2/N),  V_ij ~ N(0, sv2/N),  b_i ~ N(0, sb2),  a_i ~ N(0, sa2)

Block parameters are stacked along a leading depth axis and applied with ``lax.scan``. The embedding
(784 -> N) has weights N(0, 1/784) and zero bias, so standardized inputs start the residual stream at
p0 ~ 1; the readout (N -> 10) has weights N(0, 1/N) and zero bias and acts on out_scale * x^(L)
(out_scale = 1: the plain linear readout, whose logits grow like sqrt(p^(L)) with depth). Neither depends on the preset.

Every function here handles one network; the trainer vmaps them over a grid. The random draws depend
only on the key, and the variances scale them, so networks that share a seed share their standard
normal draws (common random numbers across a variance grid).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..activations import Activation
from ..blocks import apply_block, get_block, init_block_params
from .config import INIT_PRESETS  # noqa: F401  (the presets belong to the model; defined without jax)

N_IN = 784
N_OUT = 10

class NetworkSettings(NamedTuple):
    """The numbers that may differ between the networks of one compiled grid (scalars for one network,
    arrays with a leading grid axis for a grid).

    ``sw2, sv2, sb2, sa2``: initialization variances; ``alpha``: the alpha-ReLU exponent (1 otherwise);
    ``lr``: the learning rate (None: the :class:`~meanfield.train.trainer.TrainConfig`'s); ``out_scale``:
    the factor applied to x^(L) before the readout (1: a plain linear readout; 1/sqrt(p^(L)) of the
    mean-field theory: the ``meanfield`` readout of the sweeps, logits of order 1 at any depth);
    ``branch_scale``: kappa of a residual block, x <- x + kappa branch(x) (1: the plain block);
    ``decay_w, decay_v, decay_b, decay_a``: variance decay exponents (layer l's variances sw2 l^-decay_w,
    ...; 0: constant variances); ``survival``: stochastic depth's survival probability s (1: none). In
    training each layer keeps its branch with probability s, one draw per layer per step; evaluation
    uses every branch scaled by s, its expectation (Huang et al. 2016); ``sg2, gate_bias``: a gated
    block's S (U_ij ~ N(0, S/N)) and the value c every unit of its trainable gate bias starts at (1 and 0
    where the block has no gate: unused).
    """

    sw2: object
    sv2: object
    sb2: object
    sa2: object
    alpha: object = 1.0
    lr: object = None
    out_scale: object = 1.0
    branch_scale: object = 1.0
    decay_w: object = 0.0
    decay_v: object = 0.0
    decay_b: object = 0.0
    decay_a: object = 0.0
    survival: object = 1.0
    sg2: object = 1.0
    gate_bias: object = 0.0


class _Scales(NamedTuple):
    branch_scale: object


def init_params(key, var: NetworkSettings, *, arch, width: int, depth: int, dtype=jnp.float32) -> dict:
    """Parameters of one network: ``embed_w, embed_b, blocks{...}, out_w, out_b`` (``blocks``: the block's
    parameters by name, e.g. ``w, b, v, a`` for the frn)."""
    block = get_block(arch)
    order = [name for name, _ in block.key_order]
    k_emb, *k_params, k_out = jax.random.split(key, 2 + len(order))
    n = width
    n_top = block.width_at(n, depth)  # the readout's input: x^(L), of width N_L where the stream grows
    normal = lambda k, shape: jax.random.normal(k, shape, dtype)  # noqa: E731
    blocks = init_block_params(block, dict(zip(order, k_params)), var, width=n, depth=depth, dtype=dtype)
    return {
        "embed_w": normal(k_emb, (N_IN, n)) / math.sqrt(N_IN),
        "embed_b": jnp.zeros((n,), dtype),
        "blocks": blocks,
        "out_w": normal(k_out, (n_top, N_OUT)) / math.sqrt(n_top),
        "out_b": jnp.zeros((N_OUT,), dtype),
    }


def residual_stream(params: dict, alpha, x, *, arch: str, act: Activation, branch_scale=None, layer_scale=None):
    """x^(L) (batch, N): the embedding of x (batch, 784) through the L blocks (``branch_scale``: kappa of
    the residual branches, None: 1; ``layer_scale``: a further factor of each layer's branch scale, a
    number or an array (L,), e.g. the stochastic-depth draws; None: 1). A growing stream (``densenet``,
    no residual branch) starts as the embedding (width N0 = N) padded with zeros to the final width
    N_L = N + L G, and layer l writes its G units after the first N_(l-1) coordinates: x^(L) has width
    N_L."""
    alpha = jnp.asarray(alpha, x.dtype)
    block = get_block(arch)
    depth = jax.tree_util.tree_leaves(params["blocks"])[0].shape[0]
    x0 = x @ params["embed_w"] + params["embed_b"]
    if block.grows:
        n0 = params["embed_w"].shape[1]
        x0 = jnp.pad(x0, ((0, 0), (0, block.width_at(n0, depth) - n0)))

        def grow(h_in, layer):
            p, start = layer
            return apply_block(block, act, p, alpha, h_in, None, start), None

        xl, _ = jax.lax.scan(grow, x0, (params["blocks"], block.width_at(n0, jnp.arange(depth))))
        return xl
    if layer_scale is None:
        per_layer = None if branch_scale is None else jnp.full((depth,), branch_scale, x.dtype)
    else:
        kappa = 1.0 if branch_scale is None else branch_scale
        per_layer = jnp.broadcast_to(jnp.asarray(kappa * layer_scale, x.dtype), (depth,))

    def step(h_in, xs):
        p, kap = xs
        return apply_block(block, act, p, alpha, h_in, None if kap is None else _Scales(kap)), None

    xl, _ = jax.lax.scan(step, x0, (params["blocks"], per_layer))
    return xl


def apply(params: dict, alpha, x, *, arch: str, act: Activation, out_scale=1.0, branch_scale=None,
          layer_scale=None):
    """Logits (batch, 10) of one network for inputs x (batch, 784); ``out_scale`` multiplies x^(L)
    before the readout, ``branch_scale`` and ``layer_scale`` the residual branches (see
    :func:`residual_stream` and :class:`NetworkSettings`)."""
    xl = residual_stream(params, alpha, x, arch=arch, act=act, branch_scale=branch_scale, layer_scale=layer_scale)
    return (xl * jnp.asarray(out_scale, xl.dtype)) @ params["out_w"] + params["out_b"]


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy; non-finite logits give a non-finite loss (the divergence signal)."""
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    return jnp.mean(logz - picked)
