"""The mean-field theory's predictors of trained accuracy, evaluated at the cells of a sweep.

tanh: the gradient explosion log R = log(chi^(0) / chi^(L)); ReLU and alpha-ReLU: the metric
expressivity log s^(L); for every activation log p^(L), whose float32 overflow (log p^(L) above
log(float32 max) = 88.72) is where activations stop being representable. One theory call at the
largest depth gives every depth: the chi factors and s^(l), p^(l) of layer l do not depend on the
layers above it (with a depth-dependent branch scale, ``1/sqrt(L)`` or ``1/L``, each depth L is read
from a network at its own kappa). The data's own input statistics p0, gamma0 start the recursion.
"""

from __future__ import annotations

import numpy as np

from ..spec import DEPTH_SCALES, NEUTRAL, Spec, branch_scale_at

#: log of the largest float32: beyond it p^(L) = <x^2> (and the squared activations) overflow.
LOG_F32_MAX = float(np.log(np.finfo(np.float32).max))
PREDICTORS = {"tanh": "log_R", "relu": "log_s", "alpha_relu": "log_s"}
#: The initialization variances and alpha: the axes of a sweep the theory sees.
THEORY_AXES = ("alpha", "sw2", "sv2", "sb2", "sa2", "sg2", "gate_bias")
#: Grid points per theory call when each depth has its own branch scale (bounds the memory of a call).
_POINTS_PER_CALL = 2048


def theory_at(arch: str, act: str, points: dict, max_depth: int, p0: float, gamma0: float,
              branch_scale=1.0, variants: dict | None = None) -> dict:
    """Predictors for every depth 1..max_depth at each point.

    Args:
      points: arrays (n,) of ``alpha, sw2, sv2, sb2, sa2`` and, optionally, ``sg2, gate_bias`` (default:
        their neutral values, 1 and 0).
      branch_scale: kappa of the residual branches, a number or ``1/sqrt(L)`` / ``1/L`` (resolved at
        each depth L; see :class:`~meanfield.train.config.SweepConfig`).
      variants: the block's width, normalization and decays (``SweepConfig.variants()``; None: none).
    Returns:
      dict of arrays (n, max_depth + 1), index L = the value for a depth-L network: ``log_R``,
      ``log_s``, ``log_p``.
    """
    from ..theory import trajectory

    max_depth = int(max_depth)

    def predictors(kappa):
        spec = Spec(arch=arch, act=act, depth=max_depth, p0=p0, gamma0=gamma0, branch_scale=kappa,
                    **{a: np.asarray(points[a] if a in points else NEUTRAL[a], np.float64) for a in THEORY_AXES},
                    **(variants or {}))
        traj = trajectory(spec)
        log_chi = np.asarray(traj.log_chi)
        return {"log_R": log_chi[..., :1] - log_chi, "log_s": np.asarray(traj.log_s),
                "log_p": np.asarray(traj.log_p)}

    if not isinstance(branch_scale, str) or branch_scale.replace(" ", "") not in DEPTH_SCALES:
        return predictors(branch_scale)
    # kappa depends on L: a grid of (depths, points) per call, every call of the same shape (one
    # compilation); depth L's column is read from the networks at kappa(L)
    n = len(np.asarray(points["sw2"]))
    per_call = max(1, min(max_depth, _POINTS_PER_CALL // max(n, 1)))
    out = None
    for start in range(1, max_depth + 1, per_call):
        depths = np.minimum(np.arange(start, start + per_call), max_depth)
        kappa = np.array([branch_scale_at(branch_scale, int(L)) for L in depths])
        th = predictors(kappa[:, None])  # (per_call, n, max_depth + 1)
        if out is None:
            out = {k: v[0].copy() for k, v in th.items()}  # column 0 (no layer) does not depend on kappa
        for k, v in th.items():
            out[k][:, depths] = v[np.arange(per_call), :, depths].T
    return out


def readout_scale(arch: str, act: str, points: dict, depths, p0: float, gamma0: float,
                  branch_scale=1.0, variants: dict | None = None) -> np.ndarray:
    """1 / sqrt(p^(L)) of the theory at each point (n,) and its depth ``depths`` (n,): the factor of the
    mean-field readout, which gives logits of order 1 at initialization whatever the depth. Where p^(L)
    is beyond float32 (the network overflows anyway) the factor is the smallest positive float32.
    ``branch_scale`` and ``variants`` as for :func:`theory_at`."""
    depths = np.asarray(depths, np.int64)
    if len(np.unique(depths)) == 1:  # one depth (a sweep's group): kappa is a number, one theory call
        branch_scale = branch_scale_at(branch_scale, int(depths[0]))
    log_p = theory_at(arch, act, points, int(depths.max()), p0, gamma0, branch_scale, variants)["log_p"]
    log_p_l = log_p[np.arange(len(depths)), depths]
    tiny = float(np.finfo(np.float32).tiny)
    return np.maximum(np.exp(-0.5 * np.minimum(log_p_l, 2 * LOG_F32_MAX)), tiny)
