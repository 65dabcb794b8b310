"""The common result type of the theory engine and the simulator: per-layer mean-field quantities.

Every field is an array whose last axis is the layer index l = 0..L (length L + 1), with any leading
batch axes of a swept spec in front; ``log_R`` has only the batch axes. Undefined entries (q and lambda
at l = 0, the parameter gradients at l = 0, chi_a / chi_v for networks without a / V) are NaN. Where a
value overflows float64 it is +inf and its log twin (``log_p``, ``log_s``, ``log_chi``) carries it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Quantity names in output order. ``lam`` is lambda (a Python keyword); JSON/CSV output uses "lambda".
FIELDS = (
    "p", "q", "gamma", "lam", "e", "s", "mu",
    "chi", "log_chi", "chi_a", "chi_b", "chi_w", "chi_v",
    "log_p", "log_s",
)


class Trajectory(NamedTuple):
    """Per-layer quantities of docs/theory.md, section 2 (a pytree; stack, slice and vmap it freely)."""

    p: object
    q: object
    gamma: object
    lam: object
    e: object
    s: object
    mu: object
    chi: object
    log_chi: object
    chi_a: object
    chi_b: object
    chi_w: object
    chi_v: object
    log_p: object
    log_s: object
    log_R: object

    @property
    def depth(self) -> int:
        return int(np.shape(self.p)[-1]) - 1

    def to_numpy(self) -> "Trajectory":
        return Trajectory(*(np.asarray(v) for v in self))

    def at(self, index) -> "Trajectory":
        """The trajectory of one grid point: ``traj.at((i, j))`` indexes the leading batch axes."""
        return Trajectory(*(np.asarray(v)[index] for v in self))

    def as_dict(self) -> dict:
        """Plain dict with the public names (``lambda`` instead of ``lam``)."""
        out = {("lambda" if k == "lam" else k): np.asarray(v) for k, v in self._asdict().items()}
        return out


def json_name(field: str) -> str:
    return "lambda" if field == "lam" else field
