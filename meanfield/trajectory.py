"""The common result type of the theory engine and the simulator: per-layer mean-field quantities.

Every field is an array whose last axis is the layer index l = 0..L (length L + 1), with any leading
batch axes of a swept spec in front; ``log_R`` has only the batch axes. Undefined entries (q and lambda
at l = 0, the parameter gradients at l = 0, chi_a / chi_v for networks without a / V) are NaN. Where a
value overflows float64 it is +inf and its log twin (``log_p``, ``log_s``, ``log_chi``) carries it.

:meth:`Trajectory.to_xarray` and :meth:`Trajectory.to_dataframe` label the arrays: one dimension per
grid axis, named after the spec field that varies along it, and ``layer`` (they need the ``tables``
extra: pandas, xarray).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas
    import xarray

    from .spec import Spec

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

    def to_xarray(self, spec: "Spec | None" = None) -> "xarray.Dataset":
        """An ``xarray.Dataset``: one variable per field (public names, ``lambda`` for ``lam``).

        The dims are the grid axes and ``layer`` (coordinate 0..L; ``log_R`` has the grid axes only).
        With the ``spec`` the trajectory was computed from, a grid axis is named after the spec field
        whose values vary along it alone (``sw2=a[:, None], sv2=b[None, :]``, or their meshgrid,
        gives dims ``sw2, sv2``), and that field's values are its coordinate. Other fields varied
        along the same axis become coordinates on it; a field that varies along several axes becomes
        a coordinate over them, and an axis that no field names is ``axis0``, ``axis1``, ... . The
        architecture, activation, depth and the fields with one value go to ``.attrs``.
        Without a spec every grid axis is ``axis<i>`` and there are no grid coordinates.
        Needs the ``tables`` extra (pandas, xarray).
        """
        from ._extras import require

        require("pandas", "tables", "Trajectory.to_xarray")
        xr = require("xarray", "tables", "Trajectory.to_xarray")
        arrays = self.as_dict()
        grid_shape = arrays["log_R"].shape
        dims, coords, attrs = _grid_labels(spec, grid_shape, self.depth)
        coords["layer"] = ("layer", np.arange(self.depth + 1))
        data = {name: (dims if name == "log_R" else dims + ("layer",), value)
                for name, value in arrays.items()}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def to_dataframe(self, spec: "Spec | None" = None) -> "pandas.DataFrame":
        """The long table of :meth:`to_xarray`: one row per grid point and layer, a column per dim,
        coordinate and field (``log_R`` repeated over the layers), ``.attrs`` as the Dataset's."""
        ds = self.to_xarray(spec)
        frame = ds.to_dataframe().reset_index()
        frame.attrs.update(ds.attrs)
        return frame


def json_name(field: str) -> str:
    return "lambda" if field == "lam" else field


def _grid_labels(spec, grid_shape: tuple, depth: int) -> tuple[tuple, dict, dict]:
    """(dim names, coordinates, attrs) of the grid axes of ``spec``, for :meth:`Trajectory.to_xarray`."""
    nd = len(grid_shape)
    if spec is None:
        return tuple(f"axis{i}" for i in range(nd)), {}, {"depth": depth}
    from .blocks import WIDTHS
    from .spec import HYPER_FIELDS

    if tuple(spec.shape) != tuple(grid_shape):
        raise ValueError(f"the trajectory's grid shape {tuple(grid_shape)} is not the spec's "
                         f"{tuple(spec.shape)}: pass the spec it was computed from")
    attrs = {"arch": spec.arch, "act": spec.act.name, "depth": depth}
    attrs.update({k: getattr(spec, k) for k in (*WIDTHS, "norm") if getattr(spec, k) is not None})
    # a gate's S and c are recorded for a block that has a gate (and only there, as the widths)
    fields = tuple(f for f in HYPER_FIELDS if f not in ("sg2", "gate_bias") or f in spec.block.fields)
    values, reach, spans = {}, {}, {}
    for f in fields:
        v = np.asarray(getattr(spec, f), dtype=np.float64)
        values[f] = v.reshape((1,) * (nd - v.ndim) + v.shape)
        reach[f] = range(nd - v.ndim, nd)  # the grid axes the field's own shape covers
        spans[f] = tuple(i for i in range(nd)  # those its values vary along
                         if values[f].shape[i] > 1 and np.any(np.diff(values[f], axis=i) != 0))
    dims, named = [], set()
    for i in range(nd):
        # a field that varies along axis i alone names it (one of length 1: a field that covers it)
        alone = (i,) if grid_shape[i] > 1 else ()
        name = next((f for f in fields if f not in named and i in reach[f] and spans[f] == alone), None)
        dims.append(name or f"axis{i}")
        named.add(name or "")
    coords = {}
    for f in fields:
        if f not in named and not spans[f]:
            attrs[f] = float(values[f].ravel()[0])  # one number, whatever its shape
            continue
        on = (dims.index(f),) if f in named else spans[f]
        full = np.broadcast_to(values[f], grid_shape)
        coords[f] = (tuple(dims[i] for i in on),
                     full[tuple(slice(None) if i in on else 0 for i in range(nd))])
    return tuple(dims), coords, attrs
