"""The trained network: embedding 784 -> N, L residual blocks, linear softmax readout.

Blocks follow THEORY.md section 1 with the variances of a :class:`~meanfield.spec.Spec`::

    h = W x + b;   x <- V phi(h) + x + a   (frn)   |   x <- phi(h) + x   (rrn)   |   x <- phi(h)   (ff)

    W_ij ~ N(0, sw2/N),  V_ij ~ N(0, sv2/N),  b_i ~ N(0, sb2),  a_i ~ N(0, sa2)

Block parameters are stacked along a leading depth axis and applied with ``lax.scan``. The embedding
(784 -> N) has weights N(0, 1/784) and zero bias, so standardized inputs start the residual stream at
p0 ~ 1; the readout (N -> 10) has weights N(0, 1/N) and zero bias. Neither depends on the preset.

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

N_IN = 784
N_OUT = 10

#: Initialization presets of ``--init``. ``spec`` uses the variances given on the command line.
#: ``he``: W and V with 2 / fan_in (He et al. 2015), i.e. sw2 = sv2 = 2, zero biases (sb2 = sa2 = 0).
#: ``xavier``: W and V with 2 / (fan_in + fan_out) = 1 / N for the square N x N maps, i.e. sw2 = sv2 = 1,
#: zero biases. The embedding and readout are the same in every preset.
INIT_PRESETS = {
    "he": {"sw2": 2.0, "sv2": 2.0, "sb2": 0.0, "sa2": 0.0},
    "xavier": {"sw2": 1.0, "sv2": 1.0, "sb2": 0.0, "sa2": 0.0},
}


class Variances(NamedTuple):
    """Per-network numbers the model needs: the four variances (init) and alpha (forward pass)."""

    sw2: object
    sv2: object
    sb2: object
    sa2: object
    alpha: object


def init_params(key, var: Variances, *, arch: str, width: int, depth: int, dtype=jnp.float32) -> dict:
    """Parameters of one network: ``embed_w, embed_b, blocks{w, b[, v, a]}, out_w, out_b``."""
    k_emb, k_w, k_b, k_v, k_a, k_out = jax.random.split(key, 6)
    n = width
    normal = lambda k, shape: jax.random.normal(k, shape, dtype)  # noqa: E731
    scale = lambda s2, fan: jnp.sqrt(jnp.asarray(s2, dtype) / fan)  # noqa: E731
    blocks = {
        "w": scale(var.sw2, n) * normal(k_w, (depth, n, n)),
        "b": scale(var.sb2, 1.0) * normal(k_b, (depth, n)),
    }
    if arch == "frn":
        blocks["v"] = scale(var.sv2, n) * normal(k_v, (depth, n, n))
        blocks["a"] = scale(var.sa2, 1.0) * normal(k_a, (depth, n))
    return {
        "embed_w": normal(k_emb, (N_IN, n)) / math.sqrt(N_IN),
        "embed_b": jnp.zeros((n,), dtype),
        "blocks": blocks,
        "out_w": normal(k_out, (n, N_OUT)) / math.sqrt(n),
        "out_b": jnp.zeros((N_OUT,), dtype),
    }


def residual_stream(params: dict, alpha, x, *, arch: str, act: Activation):
    """x^(L) (batch, N): the embedding of x (batch, 784) through the L blocks."""
    alpha = jnp.asarray(alpha, x.dtype)

    def block(h_in, p):
        h = h_in @ p["w"] + p["b"]
        z = act.phi(h, alpha)
        if arch == "frn":
            out = z @ p["v"] + h_in + p["a"]
        elif arch == "rrn":
            out = z + h_in
        else:
            out = z
        return out, None

    x0 = x @ params["embed_w"] + params["embed_b"]
    xl, _ = jax.lax.scan(block, x0, params["blocks"])
    return xl


def apply(params: dict, alpha, x, *, arch: str, act: Activation):
    """Logits (batch, 10) of one network for inputs x (batch, 784)."""
    xl = residual_stream(params, alpha, x, arch=arch, act=act)
    return xl @ params["out_w"] + params["out_b"]


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy; non-finite logits give a non-finite loss (the divergence signal)."""
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    return jnp.mean(logz - picked)
