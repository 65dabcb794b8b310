"""Residual blocks composed from primitives: one definition serves the theory, both samplers and the model.

A block is a tuple of primitives applied to the residual stream x (width N):

``Dense(name, var, width)``
    x <- W x with W_ij ~ N(0, var / fan_in) (``var`` names a variance field: ``sw2``, ``sv2``); the
    output has the stream's width N, or ``width`` N for a width field (``bottleneck``: an inner width).
``Bias(name, var)``
    x <- x + b with b_i ~ N(0, var).
``Act()``
    x <- phi(x), the network's activation.
``Norm()``
    x <- (x - mean(x)) / std(x), the layer normalization over the N coordinates (no affine parameters:
    they are 1 and 0 at initialization). ``--norm layer`` puts one at the start of every residual branch.
``Residual(branch, scale)``
    x <- x + kappa branch(x), ``branch`` a tuple of primitives, ``scale`` the field of kappa
    (``branch_scale``; None: kappa = 1).
``Concat(branch)``
    x <- concat(x, branch(x)): the branch's output joins the stream as new coordinates (dense
    connectivity), so the stream grows by the branch's width every layer (see :class:`Concat`).
``Gate(branch)``
    x <- T * branch(x) + (1 - T) * x with the gate T = sigmoid(U x + c) elementwise: U_ij ~ N(0, S / N)
    (parameter ``u``, variance field ``sg2``) and c_i = c, a constant at initialization (parameter ``c``,
    field ``gate_bias``; a :class:`Const`). The gate's moments are :mod:`meanfield.gate`'s.

From one definition this module derives

* the mean-field map (:func:`theory_step`): the theory's state ``(log p, d = 1 - e, m = mu / sqrt p)``
  pushed through one block, with the per-layer log chi factor and the log gains of the parameter
  gradients (docs/theory.md, section 3);
* the two samplers' layer steps (:func:`fast_layers`, :func:`dense_layers`; see :mod:`meanfield.simulate`
  for the conditional law that lets every dense primitive meet only two forward columns and one backward
  vector);
* the trainable model's parameters and forward pass (:func:`init_block_params`, :func:`apply_block`).

Inside a block the theory follows a signal by its second moments relative to the block input's p:
``r = p_sig / p``, ``k = (p_sig - gamma_sig) / p`` (half the squared distance of the two inputs' signals)
and ``n = mu_sig / sqrt p``. A dense primitive scales r and k, a bias adds to r only, so the correlation
distance 1 - c = k / r reaching an activation keeps full relative precision as c -> 1 (no 1 - c is ever
formed by subtraction); the residual sum updates log p with ``log1p`` and d as a sum of non-negative terms.
The mean-field limit of every map is the textbook one: a dense layer's output is a centred Gaussian
independent of its input coordinates, so only the means of the stream and of a non-odd activation meet
in a residual sum (the mean-tracking term of the reduced residual network).

Parameters are named; ``chi_a, chi_b, chi_w, chi_v`` of a :class:`~meanfield.trajectory.Trajectory`
report the parameters named ``a, b, w, v``. This module imports jax only when an engine runs, so that
the registry (names, fields, memory rows) serves the jax-free validation in :mod:`meanfield.spec` and
:mod:`meanfield._plan`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

#: The fields of a :class:`Trajectory` that report parameter gradients, by parameter name.
GRADIENT_FIELDS = ("a", "b", "w", "v")
#: Width fields (a dense layer's output width as a multiple r of the stream's (input) width N) and their
#: defaults: ``bottleneck``'s inner width, ``growth``'s new units per layer (k of N0 = the densenet's
#: input width). A width is static: it sets the samplers' and the model's shapes, so a new value
#: compiles anew. At width N a layer has round(r N) units (half up), at least 1.
WIDTHS = {"bottleneck": 0.25, "growth": 0.25}
#: What each width field measures, and its symbol (for messages and help texts).
WIDTH_MEANING = {"bottleneck": ("the inner width over N", "r"),
                 "growth": ("the new units per layer over the input width N0", "k")}
#: The normalizations ``Spec.norm`` may name: each puts its primitive at the start of every residual branch.
NORMS = ("layer",)
#: The decay exponent of each variance: at layer l the variance is var l^-decay (l = 1..L).
DECAYS = {"sw2": "decay_w", "sv2": "decay_v", "sb2": "decay_b", "sa2": "decay_a"}


# ------------------------------------------------------------------------------------------ primitives
@dataclasses.dataclass(frozen=True)
class Dense:
    """x <- W x, W_ij ~ N(0, var / fan_in); ``name`` is the parameter, ``var`` the variance field.

    ``width``: the output's width relative to the stream's, None for the stream's own, a field of
    :data:`WIDTHS` in a registered block, the ratio r itself once resolved (:meth:`Block.at`).
    """

    name: str
    var: str
    width: object = None
    field: str | None = None  # the width field a resolved width came from (for messages)

    def ratio(self) -> float:
        """The output width relative to the stream's (r; 1 for None)."""
        if self.width is None:
            return 1.0
        if isinstance(self.width, str):
            return float(WIDTHS[self.width])
        return float(self.width)


@dataclasses.dataclass(frozen=True)
class Bias:
    """x <- x + b, b_i ~ N(0, var)."""

    name: str
    var: str


@dataclasses.dataclass(frozen=True)
class Act:
    """x <- phi(x)."""


@dataclasses.dataclass(frozen=True)
class Norm:
    """x <- (x - mean_i x_i) / std_i(x_i) (layer normalization, std with divisor N, no affine)."""


@dataclasses.dataclass(frozen=True)
class Residual:
    """x <- x + kappa branch(x), kappa the value of field ``scale`` (None: 1)."""

    branch: tuple
    scale: str | None = None


@dataclasses.dataclass(frozen=True)
class Concat:
    """x <- concat(x, branch(x)): the branch's output joins the stream as new coordinates.

    The stream grows by the branch's width every layer: with input width N0 and G = round(k N0) new
    units (k the width field of the branch's dense layers, relative to N0), layer l's input has
    N_(l-1) = N0 + (l - 1) G coordinates, and a dense primitive that reads the stream has fan-in
    N_(l-1) (its variance is var / N_(l-1)). The branch must start with that dense primitive (the
    only one that reads the whole stream), and a block with a Concat has it as its only top-level
    primitive. The engines work at the final width N_L with the coordinates beyond N_(l-1) zero.
    """

    branch: tuple


@dataclasses.dataclass(frozen=True)
class Const:
    """A parameter vector c_i = the value of field ``var`` (not drawn: every unit starts at that number)."""

    name: str
    var: str


@dataclasses.dataclass(frozen=True)
class Gate:
    """x <- T * branch(x) + (1 - T) * x, T = sigmoid(U x + c): ``gate`` the dense U of the gate's input,
    ``bias`` its constant c (a :class:`Const`)."""

    branch: tuple
    gate: Dense = Dense("u", "sg2")
    bias: Const = Const("c", "gate_bias")


@dataclasses.dataclass(frozen=True)
class Block:
    """A named block: ``body``, a tuple of primitives, and a one-line ``doc``.

    ``draws_like``: another block whose parameter order (and kinds) this one takes its random keys in,
    so that a seed draws the same numbers for both (the reduced residual and feedforward networks draw
    like the full residual network they reduce to). Default: the block's own parameters in forward order.
    """

    name: str
    body: tuple
    doc: str = ""
    draws_like: "Block | None" = None

    def __post_init__(self):
        names = [name for name, _ in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"block {self.name}: parameter names must be unique, got {names}")
        if self.draws_like is not None:
            theirs = dict(self.draws_like.key_order)
            clash = [n for n, p in self.params if n not in theirs or type(theirs[n]) is not type(p)]
            if clash:
                raise ValueError(f"block {self.name}: parameters {clash} have no like-kinded place in "
                                 f"block {self.draws_like.name}")
        concats = [p for p in _walk(self.body) if isinstance(p, Concat)]
        if concats:
            top = self.body[0] if len(self.body) == 1 else None
            if not isinstance(top, Concat) or len(concats) != 1:
                raise ValueError(f"block {self.name}: a Concat must be the block's only top-level primitive")
            if not top.branch or not isinstance(top.branch[0], Dense):
                raise ValueError(f"block {self.name}: a Concat's branch must start with a Dense (the only "
                                 "primitive that reads the whole, growing stream)")
            if any(isinstance(p, Residual) for p in _walk(top.branch)):
                raise ValueError(f"block {self.name}: a Concat's branch cannot hold a residual sum")

    def primitives(self) -> tuple:
        """All primitives in forward order (branches expanded; a gate as its U and c, its branch, then
        the gate itself: the mix)."""
        return tuple(_flatten(self.body))

    @property
    def params(self) -> tuple:
        """(name, primitive) of every parameter, in forward order."""
        return tuple((p.name, p) for p in self.primitives() if isinstance(p, (Dense, Bias, Const)))

    @property
    def key_order(self) -> tuple:
        """(name, primitive) in the order parameters take random keys (see ``draws_like``)."""
        return self.params if self.draws_like is None else self.draws_like.key_order

    @property
    def fields(self) -> frozenset:
        """The hyperparameter fields this block uses: variances (``sw2``, ...), branch scales, and
        ``survival`` where a residual sum at the top level has a branch scale (stochastic depth multiplies
        that scale by each layer's Bernoulli draw: :data:`SURVIVAL`)."""
        scales = {p.scale for p in _residuals(self.body) if p.scale is not None}
        masked = {SURVIVAL} if any(isinstance(p, Residual) and p.scale == _KAPPA for p in self.body) else set()
        return frozenset(p.var for _, p in self.params) | scales | masked

    @property
    def widths(self) -> frozenset:
        """The width fields (:data:`WIDTHS`) this block's dense layers name."""
        return frozenset(p.width for _, p in self.params if isinstance(p, Dense) and isinstance(p.width, str))

    def at(self, values: dict, norm: str | None = None) -> "Block":
        """This block with its width fields replaced by their numbers ``values[field]`` and, for
        ``norm="layer"``, a :class:`Norm` at the start of every residual branch (pre-LayerNorm): the form
        the engines compile, one program per width and normalization (the block itself if nothing changes)."""
        if not self.widths and norm is None:
            return self
        if norm is not None and norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)} (or None), got {norm!r}")

        def fix(prims):
            return tuple(Residual(((Norm(),) if norm else ()) + fix(p.branch), p.scale) if isinstance(p, Residual)
                         else Concat(fix(p.branch)) if isinstance(p, Concat)
                         else dataclasses.replace(p, branch=fix(p.branch)) if isinstance(p, Gate)
                         else dataclasses.replace(p, width=float(values[p.width]), field=p.width)
                         if isinstance(p, Dense) and isinstance(p.width, str) else p for p in prims)

        return dataclasses.replace(self, body=fix(self.body))

    @property
    def grows(self) -> bool:
        """Whether the stream grows every layer (a :class:`Concat`): its width then depends on the layer."""
        return bool(self.body) and isinstance(self.body[0], Concat)

    def growth_units(self, n: int) -> int:
        """G, the coordinates the stream gains per layer at input width ``n`` (0 if it does not grow):
        round(k n) for the Concat's branch of width k n (half up). ValueError where G < 1."""
        if not self.grows:
            return 0
        return self._units(_out_dense(self.body[0].branch), n)

    def width_at(self, n: int, l):
        """The stream's width after ``l`` layers at input width ``n``: N_l = n + l G (n if it does not
        grow). ``l`` may be an array or a traced number."""
        return n if not self.grows else n + l * self.growth_units(n)

    @staticmethod
    def _units(p: "Dense", n: int) -> int:
        """round(r n) units of dense ``p`` of width ratio r at stream width n; ValueError naming the width
        field where that is 0."""
        ratio = p.ratio()
        units = int(math.floor(ratio * n + 0.5))
        if units < 1:
            field = p.width if isinstance(p.width, str) else (p.field or "width")
            sym = WIDTH_MEANING.get(field, ("", "r"))[1]
            raise ValueError(f"{field} {sym} = {ratio:g} at width N = {n} leaves layer {p.name} without units: "
                             f"round({sym} N) must be >= 1 ({sym} >= {0.5 / n:g})")
        return units

    def shapes(self, n: int, depth: int = 0) -> dict:
        """Parameter shapes at stream width ``n``: ``(fan_in, fan_out)`` of a dense, ``(width,)`` of a
        bias. ValueError where a width field leaves a layer without units.

        A growing stream (:attr:`grows`) is taken at its width after ``depth`` layers, N_depth = n +
        depth G: the engines pass the depth L, so that every layer's dense matrix reads the final width
        N_L (its rows beyond the layer's own input width N_(l-1) are zero); ``depth=0`` gives the first
        layer's shapes."""
        out = {}
        stream = self.width_at(n, depth)

        def walk(prims, w):
            for p in prims:
                if isinstance(p, Dense):
                    w_out = n if p.width is None else self._units(p, n)
                    out[p.name] = (w, w_out)
                    w = w_out
                elif isinstance(p, Bias):
                    out[p.name] = (w,)
                elif isinstance(p, (Residual, Gate)):
                    if isinstance(p, Gate):
                        out[p.gate.name], out[p.bias.name] = (w, w), (w,)
                    if walk(p.branch, w) != w:
                        raise ValueError(f"block {self.name}: a residual or gated branch must end at the "
                                         "stream's width")
                elif isinstance(p, Concat):
                    walk(p.branch, w)
            return w

        walk(self.body, stream)
        return out

    @property
    def residual(self) -> bool:
        """Whether the block adds its input back (a residual sum at its top level): False for ``ff``."""
        return any(isinstance(p, Residual) for p in self.body)

    @property
    def centred(self) -> bool:
        """Whether the stream's mean stays exactly 0 for every activation, odd or not (a dense layer ends
        each branch, as in ``frn``); False where a non-odd activation's mean reaches the stream (``rrn``,
        ``ff``: the mean-tracking networks)."""
        return _centred_output(self.body, False, True)

    def tape_rows(self, sampler: str, n: int | None = None, depth: int | None = None) -> int:
        """Vectors of the stream's length a sampler keeps per layer for the backward pass: the fast
        sampler a basis (input width) and two Gaussian rows (output width) per dense primitive, both
        phi'(h) (fast) or h (dense) per activation, and both samplers T and branch(x) - x per gate; rows
        of another width count as that width over the stream's, rounded up. A growing stream
        (:attr:`grows`) is kept at its final width N_L (``n`` the input width and ``depth`` L are then
        needed): its rows are of length N_L and a branch of G units counts G / N_L."""
        unit = 1.0
        if self.grows:
            if n is None or depth is None:
                raise ValueError(f"block {self.name}: the memory rows of a growing stream need the width "
                                 "and the depth")
            unit = self.width_at(n, depth) / n  # N_L in units of n: ratios relative to n become rows of N_L
        rows, w = 0.0, 1.0
        for p in self.primitives():
            if isinstance(p, Dense):
                rows += 2 * (w + p.ratio() / unit) if sampler == "fast" else 0.0
                w = p.ratio() / unit
            elif isinstance(p, (Act, Norm)):
                rows += w
            elif isinstance(p, Gate):
                rows += 2 * w
        return int(math.ceil(rows - 1e-9))

    def row_width(self, n: int, depth: int) -> int:
        """The length of the samplers' vectors: the stream's width, its final width N_L if it grows."""
        return self.width_at(n, depth)

    def matrix_rows(self, n: int, depth: int) -> int:
        """Rows of :meth:`row_width` length that the largest dense matrix fills (the dense sampler's
        transient): N for an N x N matrix, G for a growing stream's G x N_L."""
        sizes = [s[0] * s[1] for s in self.shapes(n, depth).values() if len(s) == 2]
        return -(-max(sizes) // self.row_width(n, depth)) if sizes else n

    def dense_key_slots(self) -> tuple[tuple, tuple]:
        """(matrix names, bias names) in key order: the dense sampler's per-layer key layout."""
        order = self.key_order
        return (tuple(n for n, p in order if isinstance(p, Dense)),
                tuple(n for n, p in order if isinstance(p, Bias)))


def _flatten(prims):
    for p in prims:
        if isinstance(p, (Residual, Concat)):
            yield from _flatten(p.branch)
        elif isinstance(p, Gate):
            yield p.gate
            yield p.bias
            yield from _flatten(p.branch)
            yield p
        else:
            yield p


def _walk(prims):
    """Every primitive, branches included and the branching primitives themselves."""
    for p in prims:
        yield p
        if isinstance(p, (Residual, Concat, Gate)):
            yield from _walk(p.branch)


def _out_dense(branch) -> "Dense":
    return [p for p in branch if isinstance(p, Dense)][-1]


def _out_ratio(branch) -> float:
    """The width of a branch's output relative to the stream's input width n (its last dense's)."""
    return _out_dense(branch).ratio()


def _residuals(prims):
    for p in prims:
        if isinstance(p, Residual):
            yield p
        if isinstance(p, (Residual, Gate)):
            yield from _residuals(p.branch)


def _centred_output(prims, odd: bool, centred_in: bool) -> bool:
    """Whether the output mean is exactly 0 (over the weights' law) given a centred input or not."""
    centred = centred_in
    for p in prims:
        if isinstance(p, (Dense, Norm)):
            centred = True
        elif isinstance(p, Act):
            centred = centred and odd
        elif isinstance(p, (Residual, Concat, Gate)):  # the output mixes the input and the branch
            centred = centred and _centred_output(p.branch, odd, centred)
    return centred


# ------------------------------------------------------------------------------------------ registry
_KAPPA = "branch_scale"
#: The field of stochastic depth's survival probability s. The engines draw xi_l ~ Bernoulli(s) once per
#: layer per network and multiply the layer's branch scale by it (:func:`masked`); the theory takes the
#: expectation over the masks (:mod:`meanfield.stochastic_depth`).
SURVIVAL = "survival"
_FRN_BRANCH = (Dense("w", "sw2"), Bias("b", "sb2"), Act(), Dense("v", "sv2"), Bias("a", "sa2"))
FRN = Block("frn", (Residual(_FRN_BRANCH, _KAPPA),), "full residual: x <- x + kappa (V phi(W x + b) + a)")

#: The registered blocks by name. Every block's theory is the N -> infinity limit; at width N a block
#: whose stream stays centred (``frn``, ``preact``, ``basic``) or carries no mean (odd activations) is off
#: by a relative O(L/N). The mean-tracking ``rrn`` with a non-odd activation is the exception: its common
#: mean direction leaks into x - x' and the backward pass: the relative error of s is about
#: 0.3 / (N (1 - e)), growing 1.45x a layer, and chi^(0)'s grows alike. Median over 32 ReLU rrn networks
#: (sw2 = 1, sb2 = 0.5), first depth off by more than 10%: s^(l) from l = 8, 12, 15, 19 and chi^(0) from
#: L = 10, 10, 15, 20 at N = 128, 512, 2048, 8192; at N = 512, L = 50 both are about 1.5e5 times the theory
#: (``python experiments/finite_width_limits.py``; README, limits of the infinite-width theory). The ReLU
#: ``highway`` tracks its mean too, with the same kind of error where 1 - e is small (docs/blocks.md).
BLOCKS = {
    "frn": FRN,
    "rrn": Block("rrn", (Residual(_FRN_BRANCH[:3], _KAPPA),), "reduced residual: x <- x + kappa phi(W x + b)",
                 FRN),
    "ff": Block("ff", _FRN_BRANCH[:3], "feedforward: x <- phi(W x + b)", FRN),
    "preact": Block("preact", (Residual((Act(),) + _FRN_BRANCH, _KAPPA),),
                    "pre-activation residual: x <- x + kappa (V phi(W phi(x) + b) + a)"),
    "basic": Block("basic", (Residual(_FRN_BRANCH[:3] + (Dense("w2", "sw2"), Bias("b2", "sb2")) + _FRN_BRANCH[2:],
                                      _KAPPA),),
                   "two-layer branch: x <- x + kappa (V phi(W2 phi(W x + b) + b2) + a)"),
    "bottleneck": Block("bottleneck", (Residual((Dense("w", "sw2", "bottleneck"), Bias("b", "sb2"), Act(),
                                                 Dense("w2", "sw2", "bottleneck"), Bias("b2", "sb2"))
                                                + _FRN_BRANCH[2:], _KAPPA),),
                        "basic with inner width r N (--bottleneck r, default 1/4): "
                        "x <- x + kappa (V phi(W2 phi(W x + b) + b2) + a), W: N -> rN, W2: rN -> rN, V: rN -> N"),
    "densenet": Block("densenet", (Concat((Dense("w", "sw2", "growth"), Bias("b", "sb2"), Act())),),
                      "dense connectivity: x <- concat(x, phi(W x + b)), k N0 new units a layer "
                      "(--growth k, default 1/4), so N_l = N0 (1 + l k)"),
    # the reduced residual's branch, gated (Srivastava et al. 2015)
    "highway": Block("highway", (Gate(_FRN_BRANCH[:3]),),
                     "highway: x <- T phi(W x + b) + (1 - T) x, T = sigmoid(U x + c), U ~ N(0, sg2/N), "
                     "c_i = gate_bias"),
}
#: The built-in blocks' names (the command line's --arch choices).
ARCHS = tuple(BLOCKS)


def get_block(arch) -> Block:
    """The :class:`Block` registered as ``arch`` (or ``arch`` itself if it is a Block)."""
    if isinstance(arch, Block):
        return arch
    try:
        return BLOCKS[arch]
    except (KeyError, TypeError):
        raise ValueError(f"arch must be one of {', '.join(BLOCKS)}; got {arch!r}") from None


def at_layer(h, l):
    """``h`` (a NamedTuple of hyperparameters) with the variances of layer ``l`` >= 1: each variance of
    :data:`DECAYS` times l^-decay (a decay field that ``h`` lacks counts as 0). Exact for decay 0: the
    factor exp(-0 log l) is 1, so the plain block's numbers are kept bit for bit."""
    import jax.numpy as jnp

    log_l = jnp.log(l)
    return h._replace(**{v: getattr(h, v) * jnp.exp(-getattr(h, d, 0.0) * log_l)
                         for v, d in DECAYS.items() if hasattr(h, v)})


def masked(h, xi):
    """``h`` with the branch scale of one layer multiplied by its stochastic-depth draw ``xi`` (1: kept,
    0: the layer is the identity). Exact for xi = 1: kappa * 1 is kappa."""
    return h._replace(**{_KAPPA: getattr(h, _KAPPA) * xi})


# ------------------------------------------------------------------------------------------ theory
class _Sig(NamedTuple):
    """A signal's second moments relative to the block input's p (see the module docstring).

    ``n`` is None where the mean is exactly 0; ``log`` is log p_sig where it is known without the round
    trip through r; ``inc`` is set after a residual sum, where r = 1 + inc and inc carries the digits.
    """

    r: object
    k: object
    n: object = None
    log: object = None
    inc: object = None


class _Ctx(NamedTuple):
    act: object
    h: object  # Hyper of (B,) arrays
    log_p: object  # the block input's log p
    p_inv: object
    layer: object = None  # the layer index l >= 1 (needed by a growing stream only)


def _log_of(sig: _Sig, ctx: _Ctx):
    import jax.numpy as jnp

    return sig.log if sig.log is not None else ctx.log_p + jnp.log(sig.r)


def _mf(prims, sig: _Sig, ctx: _Ctx, probe: dict, width=1.0):
    """Push ``sig`` through ``prims``: (sig, backward records in forward order).

    ``width``: the input's width relative to the width dense primitives measure their ratios in (the
    input width N0): 1 but for a growing stream, whose layer l reads N_(l-1) / N0 = 1 + (l - 1) k.

    Records: ``("dense", name, log s2, log p of the input)``, ``("bias", name)``, ``("act", log V'(q))``,
    ``("norm", -log of the centred variance)``,
    ``("residual", records of the branch, log kappa^2 or None)``; a dense record's log s2 includes
    log(fan_out / fan_in) where the widths differ (the chi gain of W^T). ``probe`` receives log q and c at the
    first activation that follows a dense primitive (the preactivation h = W x + b), and ``acts`` the
    log q of every activation (for the table range check of tabulated activations).
    """
    import jax.numpy as jnp

    act, h = ctx.act, ctx.h
    recs = []
    # width: the signal's width relative to the stream's (a branch starts on the stream)
    for p in prims:
        if isinstance(p, Dense):
            s2 = getattr(h, p.var)
            # chi per unit: var / fan_in summed over fan_out units, var times the ratio of the widths
            if not isinstance(width, float):  # a growing stream's width, a number of the layer
                log_gain = jnp.log(s2) + (math.log(p.ratio()) - jnp.log(width))
            elif p.ratio() == width:
                log_gain = jnp.log(s2)
            else:
                log_gain = jnp.log(s2) + math.log(p.ratio() / width)
            width = p.ratio()
            recs.append(("dense", p.name, log_gain, _log_of(sig, ctx)))
            probe["dense"] = True
            sig = _Sig(s2 * sig.r, s2 * sig.k)
        elif isinstance(p, Bias):
            recs.append(("bias", p.name))
            sig = _Sig(sig.r + getattr(h, p.var) * ctx.p_inv, sig.k, sig.n)
        elif isinstance(p, Act):
            if sig.n is not None:
                raise NotImplementedError("an activation of a signal with a non-zero mean (no transform for it)")
            r = sig.r
            log_q = _log_of(sig, ctx)
            safe_r = jnp.where(r > 0, r, 1.0)
            delta = jnp.where(r > 0, sig.k / safe_r, 0.0)  # 1 - c, c = lambda / q
            lV = act.log_V(log_q, h.alpha)
            omr = act.one_minus_corr(log_q, delta, h.alpha)  # 1 - rho(c)
            v_over_p = jnp.exp(lV - ctx.log_p)
            n = None if act.odd else act.M_scaled(log_q, 0.5 * ctx.log_p, h.alpha)
            if probe.get("dense") and "log_q" not in probe:
                probe.update(log_q=log_q, c=1.0 - delta)
            probe.setdefault("acts", []).append(log_q)
            recs.append(("act", act.log_Vp(log_q, h.alpha)))
            sig = _Sig(v_over_p, v_over_p * omr, n, lV)
        elif isinstance(p, Norm):
            # centred second moments over the coordinates: p - mu^2 and gamma - mu mu', per unit of p
            var = sig.r if sig.n is None else sig.r - sig.n * sig.n
            log_var = ctx.log_p + jnp.log(var)
            recs.append(("norm", -log_var))  # J^T g = (g - mean g - y (y . g) / N) / std: chi / var
            sig = _Sig(ctx.p_inv, sig.k / var * ctx.p_inv, None, jnp.zeros_like(ctx.log_p))
        elif isinstance(p, Residual):
            if sig.inc is not None or not (isinstance(sig.r, float) and sig.r == 1.0):
                raise NotImplementedError("a residual sum must act on the block's input")
            b, branch = _mf(p.branch, sig, ctx, probe)
            log_k2 = None
            if p.scale is not None:
                kap = getattr(h, p.scale)
                kap2 = kap * kap
                log_k2 = jnp.log(kap2)
                b = _Sig(kap2 * b.r, kap2 * b.k, None if b.n is None else kap * b.n)
            # the branch is independent of the stream's coordinates but for the means
            inc = b.r if (b.n is None or sig.n is None) else b.r + 2.0 * sig.n * b.n
            n = sig.n if b.n is None else (b.n if sig.n is None else sig.n + b.n)
            recs.append(("residual", branch, log_k2))
            sig = _Sig(1.0 + inc, b.k + sig.k, n, None, inc)
        elif isinstance(p, Concat):
            if ctx.layer is None:
                raise ValueError("a growing stream (Concat) needs the layer index: theory_step(..., l=l)")
            # N_(l-1) and N_l over N0; the new coordinates are a fraction w = k / (1 + l k) of the output,
            # the old ones a = 1 - w, and they are independent but for the means
            k = _out_ratio(p.branch)
            n_in = 1.0 + (ctx.layer - 1.0) * k
            n_out = n_in + k
            a, w = n_in / n_out, k / n_out
            b, branch = _mf(p.branch, sig, ctx, probe, n_in)
            inc = w * (b.r - 1.0)  # p_l / p_(l-1) - 1, for log1p
            means = [x for x in (None if sig.n is None else a * sig.n, None if b.n is None else w * b.n)
                     if x is not None]
            n = None if not means else sum(means[1:], means[0])
            recs.append(("residual", branch, None))  # chi^(l-1) = chi^(l) (1 + the branch's gain)
            # r and k as sums of non-negative terms: d_l = (a d p + w V (1 - rho)) / p_l exactly
            sig = _Sig(a + w * b.r, a * sig.k + w * b.k, n, None, inc)
        elif isinstance(p, Gate):
            if sig.inc is not None or not (isinstance(sig.r, float) and sig.r == 1.0):
                raise NotImplementedError("a gate must act on the block's input")
            b, branch = _mf(p.branch, sig, ctx, probe)
            sig, rec = _gate(sig, b, getattr(h, p.gate.var), getattr(h, p.bias.var), ctx)
            recs.append(("gate", branch) + rec)
        else:
            raise TypeError(f"unknown primitive {p!r}")
    return sig, recs


def _gate(x: _Sig, b: _Sig, s2, c, ctx: _Ctx):
    """The mean-field map of x <- T b + (1 - T) x (docs/blocks.md, highway), relative to p = p_x.

    The gate g = U x + c is N(c, S p) per coordinate, g and g' correlated as x and x' (1 - d), and
    independent of the branch b and of x. With t2 = E[T^2], u2 = E[(1 - T)^2], tm = E[T (1 - T)] (so
    E[T] = t2 + tm, E[1 - T] = u2 + tm), D = E[(T - T')^2] and Y = E[(b - x)^2] / p:

        r   = t2 b.r + u2 + 2 tm n_b n_x
        inc = r - 1 = t2 b.r + 2 tm n_b n_x - (t2 + 2 tm)
        k   = (t2 - D/2) b.k + (D/2) Y + (u2 - D/2) x.k        (half the squared distance)
        n   = (t2 + tm) n_b + (u2 + tm) n_x

    k is a sum of non-negative terms (t2 - D/2 = E[T T'] and u2 - D/2 = E[(1 - T)(1 - T')] are >= 0),
    with D from :func:`meanfield.gate.diff_sq`, exact in relative terms as d -> 0. Returns the output
    signal and the record (log t2, log u2, log of the gate's chi gain S E[sigmoid'(g)^2] Y p).
    """
    import jax.numpy as jnp

    from . import gate

    # S p, evaluated at most at e^690, where the gate is a step to all digits: beyond it E[sigmoid'(g)^2]
    # falls like (S p)^-1/2 exactly (a flat density over the sigmoid's transition)
    log_v = jnp.log(s2) + ctx.log_p
    excess = jnp.maximum(log_v - 690.0, 0.0)
    v = jnp.exp(log_v - excess)
    t2, u2, tm, sp2 = gate.moments(c, v)
    dsq = gate.diff_sq(c, v, x.k)
    zero = jnp.zeros_like(ctx.log_p)
    n_b = zero if b.n is None else b.n
    n_x = zero if x.n is None else x.n
    nn = n_b * n_x
    r = t2 * b.r + u2 + 2.0 * tm * nn
    inc = t2 * b.r + 2.0 * tm * nn - (t2 + 2.0 * tm)
    half = 0.5 * dsq
    y = (b.r - n_b * n_b) + (1.0 - n_x * n_x) + (n_b - n_x) ** 2  # E[(b - x)^2] / p, as three variances
    k = (t2 - half) * b.k + half * y + (u2 - half) * x.k
    n = None if (b.n is None and x.n is None) else (t2 + tm) * n_b + (u2 + tm) * n_x
    log_gain = log_v + jnp.log(sp2) - 0.5 * excess + jnp.log(y)
    return _Sig(r, k, n, None, inc), (jnp.log(t2), jnp.log(u2), log_gain)


def _backward(recs, g, gains: dict):
    """Log chi gain at the input of ``recs`` given ``g`` at their output; fills ``gains[name]``."""
    import jax.numpy as jnp

    for rec in reversed(recs):
        kind = rec[0]
        if kind == "dense":
            _, name, log_s2, log_in = rec
            gains[name] = g + log_in
            g = g + log_s2
        elif kind == "bias":
            gains[rec[1]] = g
        elif kind in ("act", "norm"):
            g = g + rec[1]
        elif kind == "gate":  # chi_in = chi_out (u2 + t2 branch gain + S E[sigmoid'^2] E[(b - x)^2])
            _, branch, log_t2, log_u2, log_gate = rec
            g_branch = _backward(branch, g + log_t2, gains)
            g = g + jnp.logaddexp(jnp.logaddexp(log_u2, g_branch - g), log_gate)
        else:  # residual: chi_in = chi_out (1 + branch gain), the cross term averaging to 0
            g_branch = g if rec[2] is None else g + rec[2]
            g = g + jnp.log1p(jnp.exp(_backward(rec[1], g_branch, gains) - g))
    return g


def theory_step(block: Block, act, h, state, l=None):
    """One block of the mean-field recursion for a batch of grid points.

    ``state = (log p, d, m)`` (arrays of shape (B,)); ``l``: the layer index (1..L), needed where the
    block's stream grows (:attr:`Block.grows`: the weights of old and new coordinates depend on it). Returns the new state and a dict with ``log_q`` and
    ``c`` (at the first preactivation h = W x + b: q and lambda / q), ``log_q_acts`` (the log q of every
    activation, stacked), ``log_growth`` (log p_l / p_(l-1), from ``log1p`` after a residual sum: exact
    even where p_l - p_(l-1) is below p's last digit), ``log_factor`` (log chi^(l-1) / chi^(l))
    and ``gains`` ``{name: log g}`` such that the gradient quantity of parameter ``name`` is
    chi^(l) exp(log g) (for a dense parameter, log g includes log p of its input: chi_w = chi_b p).
    """
    import jax.numpy as jnp

    log_p, d, m = state
    centred = _centred_output(block.body, act.odd, True)
    ctx = _Ctx(act, h, log_p, jnp.exp(-log_p), l)
    probe: dict = {}
    sig, recs = _mf(block.body, _Sig(1.0, d, None if centred else m, log_p), ctx, probe)
    if sig.inc is not None:  # ended on a residual sum, a concatenation or a gate: p_out = p_in r = p_in (1 + inc)
        # log1p(inc) keeps the digits of a small change of p; after a gate p may also shrink below half,
        # where r itself, a sum of non-negative terms, is the precise one
        log_growth = jnp.log1p(sig.inc)
        if isinstance(block.body[-1], Gate):
            log_growth = jnp.where(sig.inc > -0.5, log_growth, jnp.log(jnp.maximum(sig.r, 1e-300)))
        log_p_new = log_p + log_growth
        d_new = sig.k / sig.r
        m_new = jnp.zeros_like(m) if sig.n is None else sig.n / jnp.sqrt(sig.r)
    else:
        log_p_new = _log_of(sig, ctx)
        log_growth = log_p_new - log_p
        safe_r = jnp.where(sig.r > 0, sig.r, 1.0)
        d_new = jnp.where(sig.r > 0, sig.k / safe_r, 0.0)
        m_new = jnp.zeros_like(m) if sig.n is None else sig.n * jnp.exp(0.5 * (log_p - log_p_new))
    gains: dict = {}
    zero = jnp.zeros_like(log_p)
    log_factor = _backward(recs, zero, gains)
    return (log_p_new, d_new, m_new), dict(log_q=probe["log_q"], c=probe["c"], log_factor=log_factor,
                                           gains=gains, log_q_acts=jnp.stack(probe["acts"]),
                                           log_growth=log_growth)


# ------------------------------------------------------------------------------------------ samplers
def _basis(pair, rtol):
    """Orthonormal rows (q0, q1) spanning the two rows of ``pair``, and R with a_k = sum_j R_jk q_j.

    Built from a0 = x + x', a1 = x - x' (modified Gram-Schmidt). A direction whose norm is below
    ``rtol`` times the pair's Frobenius norm gets q = 0: it is dropped from the conditioning.
    """
    import jax.numpy as jnp

    a0 = pair[0] + pair[1]
    a1 = pair[0] - pair[1]
    n00 = jnp.dot(a0, a0)
    scale2 = n00 + jnp.dot(a1, a1)
    thresh2 = rtol * rtol * scale2
    keep0 = n00 > thresh2
    r00 = jnp.sqrt(n00)
    q0 = jnp.where(keep0, a0 / jnp.where(keep0, r00, 1.0), 0.0)
    r01 = jnp.dot(q0, a1)
    v = a1 - r01 * q0
    n11 = jnp.dot(v, v)
    keep1 = n11 > thresh2
    r11 = jnp.sqrt(n11)
    q1 = jnp.where(keep1, v / jnp.where(keep1, r11, 1.0), 0.0)
    return jnp.stack([q0, q1]), (r00, r01, r11)


def _push_forward(r, z, c):
    """(M x, M x') for a Gaussian matrix M with i.i.d. N(0, c^2) entries, given z_k = M q_k / c.

    M a0 = c r00 z0 and M a1 = c (r01 z0 + r11 z1), and x, x' = (a0 + a1) / 2, (a0 - a1) / 2. Written as
    one 2 x 2 matrix product so that XLA materializes the random rows once instead of regenerating
    them inside each output row's fused loop (which doubled the layer's cost).
    """
    import jax.numpy as jnp

    r00, r01, r11 = r
    mix = (0.5 * c) * jnp.stack([jnp.stack([r00 + r01, r11]), jnp.stack([r00 - r01, -r11])])
    return mix @ z


def _pull_back(q, z, z_fresh, u, c):
    """M^T u drawn from its law given the forward products M q_k = c z_k (see meanfield.simulate)."""
    import jax.numpy as jnp

    u_norm = jnp.sqrt(jnp.dot(u, u))
    coef = z @ u - u_norm * (q @ z_fresh)
    return c * (coef @ q + u_norm * z_fresh)


def _split_trailing_bias(branch):
    """(branch without a final bias, that bias or None): the skip is added before the branch's last bias,
    (V phi + x) + a, the order of the original residual networks' code, so that their numbers are kept."""
    if branch and isinstance(branch[-1], Bias):
        return branch[:-1], branch[-1]
    return branch, None


def _kappa(p: Residual, values):
    """The branch multiplier of residual ``p`` (None: 1, nothing to multiply)."""
    return None if p.scale is None else getattr(values, p.scale)


def _times(kap, x):
    return x if kap is None else kap * x


def _probe(stats: dict, x_pair):
    """q and lambda at the first activation whose input is a preactivation (a dense primitive came before)."""
    import jax.numpy as jnp

    if "q" not in stats and any(k.startswith("in_") for k in stats):
        stats.update(q=_msq(x_pair[0]), lam=jnp.mean(x_pair[0] * x_pair[1]))


def _msq(v):
    import jax.numpy as jnp

    return jnp.mean(v * v)


def _layer_norm(x):
    """(y, 1 / std) of each row of ``x``: y = (x - mean) / std over the last axis (std with divisor N)."""
    import jax.numpy as jnp

    c = x - jnp.mean(x, axis=-1, keepdims=True)
    inv = 1.0 / jnp.sqrt(jnp.mean(c * c, axis=-1, keepdims=True))
    return c * inv, inv


def _layer_norm_back(y, inv, g):
    """J^T g of the layer normalization at output ``y``: (g - mean(g) - y mean(y g)) / std (J symmetric)."""
    import jax.numpy as jnp

    return inv * (g - jnp.mean(g) - y * jnp.mean(y * g))


def _msq_over(v, width):
    """The mean square of ``v`` over ``width`` coordinates (None: all of them); a growing stream's
    vectors are zero beyond their width."""
    import jax.numpy as jnp

    return _msq(v) if width is None else jnp.sum(v * v) / width


class _Stream(NamedTuple):
    """A sampler's view of the stream's widths (see :class:`Concat`): ``widths(l)`` gives layer l's
    input and output widths (N_(l-1), N_l) as traced integers, or (None, None) where the stream keeps
    the width of its vectors; ``readers`` names the dense primitives that read the growing stream
    (their fan-in is N_(l-1)); ``units`` is G."""

    grows: bool
    n: int
    units: int
    readers: frozenset

    def widths(self, l):
        import jax.numpy as jnp

        if not self.grows:
            return None, None
        start = self.n + (jnp.round(l).astype(jnp.int32) - 1) * self.units
        return start, start + self.units


def _stream_readers(block: Block) -> frozenset:
    """The dense primitives that read a growing stream (the first of its Concat's branch)."""
    return frozenset({block.body[0].branch[0].name}) if block.grows else frozenset()


def _stream(block: Block, n: int) -> _Stream:
    return _Stream(block.grows, n, block.growth_units(n), _stream_readers(block))


def _fan_in(stream: _Stream, shapes: dict, name: str, start, dtype):
    """The fan-in of dense ``name``: its matrix's, or N_(l-1) where it reads a growing stream."""
    return start.astype(dtype) if name in stream.readers else shapes[name][0]


def _concat(x, branch, start):
    """The stream ``x`` (rows of the final width) with ``branch`` written at coordinates start.. ."""
    import jax
    import jax.numpy as jnp

    return jax.lax.dynamic_update_slice(x, branch.astype(x.dtype), (jnp.zeros((), start.dtype), start)[-x.ndim:])


def _split_concat(g, units: int, start):
    """(g's new coordinates start..start + units, a mask of the old ones 0..start - 1)."""
    import jax
    import jax.numpy as jnp

    return jax.lax.dynamic_slice(g, (start,), (units,)), jnp.arange(g.shape[-1]) < start


def _mix(pre, branch, x):
    """x <- T branch + (1 - T) x with T = sigmoid(pre), 1 - T = sigmoid(-pre) (no 1 - T by subtraction)."""
    import jax

    return jax.nn.sigmoid(pre) * branch + jax.nn.sigmoid(-pre) * x


def _mix_back(pre, diff, g):
    """The gradient ``g`` at a gate's output sent to (the skip, the branch's output, the gate's
    preactivation): (1 - T) g, T g and sigmoid'(pre) (branch - x) g, with ``diff`` = branch - x."""
    import jax

    t, u = jax.nn.sigmoid(pre), jax.nn.sigmoid(-pre)
    return u * g, t * g, t * u * diff * g


def fast_layers(block: Block, act, n: int, dtype, depth: int = 0):
    """(forward, backward) layer functions of the fast (exact conditional) sampler for one network.

    ``forward(x_pair, keys, hp, l) -> (new pair, stats, tape)`` and ``backward(g, tape, keys, hp, l) ->
    (g_prev, stats)`` with ``keys`` the layer's two keys (forward draws, backward fresh vectors),
    ``hp`` the layer's hyperparameters (:func:`at_layer`) and ``l`` its index (1..L; it sets a
    growing stream's widths). Forward stats: ``q, lam`` at the first activation's input and ``in_NAME``
    (mean square of input 1) per dense parameter; backward stats: ``chi`` and ``g_NAME`` (mean square of
    the gradient at the parameter's output). A layer of another width than N takes the first
    coordinates of rows of the widest layer's length. A growing stream (:class:`Concat`; ``depth``: L)
    is a vector of its final width N_L, zero beyond N_(l-1): the basis of the pair lives on the first
    N_(l-1) coordinates, and so does the fresh backward vector (masked to them), so the conditional law
    is that of the layer's own N_(l-1)-column matrix.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    rtol = 4.0 * math.sqrt(float(np.finfo(dtype).eps))
    prims = block.primitives()
    shapes = block.shapes(n, depth)
    stream = _stream(block, n)
    n_max = max(s[-1] for s in shapes.values()) if shapes else n
    n_fresh = max([n_max] + [s[0] for s in shapes.values() if len(s) == 2])
    n_fwd = sum(2 if isinstance(p, Dense) else 1 if isinstance(p, Bias) else 0 for p in prims)
    n_bwd = sum(isinstance(p, Dense) for p in prims)

    def scales(hp, start):
        return {name: jnp.sqrt(getattr(hp, p.var) / _fan_in(stream, shapes, name, start, dtype))
                if isinstance(p, Dense) else jnp.sqrt(getattr(hp, p.var))
                for name, p in block.params if not isinstance(p, Const)}

    def run(seq, x, draw, row, stats, tapes, scale, hp, start, kap=None):
        for p in seq:
            if isinstance(p, Dense):
                q, r = _basis(x, rtol)
                stats["in_" + p.name] = _msq_over(x[0], start if p.name in stream.readers else None)
                z = draw[row:row + 2, :shapes[p.name][1]]
                tapes.append(dict(q=q, z=z))
                x = _push_forward(r, z, scale[p.name])
                row += 2
            elif isinstance(p, Bias):
                x = x + _times(kap, scale[p.name] * draw[row, :x.shape[-1]])
                row += 1
            elif isinstance(p, Act):
                _probe(stats, x)
                tapes.append(dict(dphi=act.dphi(x[0], hp.alpha)))
                x = act.phi(x, hp.alpha)
            elif isinstance(p, Norm):
                x, inv = _layer_norm(x)
                tapes.append(dict(y=x[0], inv=inv[0]))
            elif isinstance(p, Concat):
                branch, row = run(p.branch, x, draw, row, stats, tapes, scale, hp, start)
                x = _concat(x, branch, start)
            elif isinstance(p, Gate):  # U meets the gate's input pair only, like any dense layer
                u = p.gate.name
                q, r = _basis(x, rtol)
                stats["in_" + u] = _msq(x[0])
                z = draw[row:row + 2, :shapes[u][1]]
                tapes.append(dict(q=q, z=z))
                pre = _push_forward(r, z, scale[u]) + getattr(hp, p.bias.var)
                row += 2
                branch, row = run(p.branch, x, draw, row, stats, tapes, scale, hp, start)
                tapes.append(dict(pre=pre[0], diff=branch[0] - x[0]))
                x = _mix(pre, branch, x)
            else:
                body, bias = _split_trailing_bias(p.branch)
                kap_p = _kappa(p, hp)
                branch, row = run(body, x, draw, row, stats, tapes, scale, hp, start)
                x = _times(kap_p, branch) + x
                if bias is not None:
                    x, row = run((bias,), x, draw, row, stats, tapes, scale, hp, start, kap_p)
        return x, row

    def forward(x_pair, keys, hp, l):
        draw = jax.random.normal(keys[0], (n_fwd, n_max), dtype)
        stats, tapes = {}, []
        start, _ = stream.widths(l)
        new, _ = run(block.body, x_pair, draw, 0, stats, tapes, scales(hp, start), hp, start)
        return new, stats, tapes

    def back(seq, g, tapes, fresh, row, stats, scale, hp, start):
        for p in reversed(seq):
            if isinstance(p, Dense):
                row -= 1
                t = tapes.pop()
                stats["g_" + p.name] = _msq(g)
                z_fresh = fresh[row, :shapes[p.name][0]]
                if p.name in stream.readers:  # the layer's matrix has N_(l-1) columns
                    z_fresh = jnp.where(jnp.arange(z_fresh.shape[-1]) < start, z_fresh, 0.0)
                g = _pull_back(t["q"], t["z"], z_fresh, g, scale[p.name])
            elif isinstance(p, Bias):
                stats["g_" + p.name] = _msq(g)
            elif isinstance(p, Act):
                g = tapes.pop()["dphi"] * g
            elif isinstance(p, Norm):
                t = tapes.pop()
                g = _layer_norm_back(t["y"], t["inv"], g)
            elif isinstance(p, Concat):
                g_new, old = _split_concat(g, stream.units, start)
                g_branch, row = back(p.branch, g_new, tapes, fresh, row, stats, scale, hp, start)
                g = jnp.where(old, g + g_branch, 0.0)
            elif isinstance(p, Gate):
                t = tapes.pop()
                g_skip, g_in, g_pre = _mix_back(t["pre"], t["diff"], g)
                g_branch, row = back(p.branch, g_in, tapes, fresh, row, stats, scale, hp, start)
                row -= 1
                tu = tapes.pop()
                stats["g_" + p.gate.name] = _msq(g_pre)
                g = g_skip + g_branch + _pull_back(tu["q"], tu["z"], fresh[row, :shapes[p.gate.name][0]], g_pre,
                                                   scale[p.gate.name])
            else:
                g_branch, row = back(p.branch, _times(_kappa(p, hp), g), tapes, fresh, row, stats, scale, hp,
                                     start)
                g = g_branch + g
        return g, row

    def backward(g, tape, keys, hp, l):
        fresh = jax.random.normal(keys[1], (n_bwd, n_fresh), dtype)
        start, end = stream.widths(l)
        stats = dict(chi=_msq_over(g, end))
        g_prev, _ = back(block.body, g, list(tape), fresh, n_bwd, stats, scales(hp, start), hp, start)
        return g_prev, stats

    return forward, backward


def dense_layers(block: Block, act, n: int, dtype, depth: int = 0):
    """(forward, backward) layer functions of the dense sampler: real matrices from layer keys.

    ``keys``: one per matrix of ``block.dense_key_slots()``, then one for all bias rows; the backward
    pass redraws the matrices from their keys. Arguments and stats as for :func:`fast_layers`; a
    matrix that reads a growing stream has its columns beyond N_(l-1) set to zero.
    """
    import jax
    import jax.numpy as jnp

    mats, biases = block.dense_key_slots()
    slot = {name: i for i, name in enumerate(mats)}
    bias_row = {name: i for i, name in enumerate(biases)}
    kinds = dict(block.params)
    shapes = block.shapes(n, depth)
    stream = _stream(block, n)
    n_max = max(s[-1] for s in shapes.values()) if shapes else n

    def mat(keys, name, hp, start):
        fan_in, fan_out = shapes[name]
        c = jnp.sqrt(getattr(hp, kinds[name].var) / _fan_in(stream, shapes, name, start, dtype))
        w = c * jax.random.normal(keys[slot[name]], (fan_out, fan_in), dtype)
        return jnp.where(jnp.arange(fan_in) < start, w, 0.0) if name in stream.readers else w

    def run(seq, x, keys, bias_draw, stats, tapes, hp, start, kap=None):
        for p in seq:
            if isinstance(p, Dense):
                stats["in_" + p.name] = _msq_over(x[0], start if p.name in stream.readers else None)
                x = x @ mat(keys, p.name, hp, start).T
            elif isinstance(p, Bias):
                x = x + _times(kap, jnp.sqrt(getattr(hp, p.var)) * bias_draw[bias_row[p.name], :x.shape[-1]])
            elif isinstance(p, Act):
                _probe(stats, x)
                tapes.append(x[0])
                x = act.phi(x, hp.alpha)
            elif isinstance(p, Norm):
                x, inv = _layer_norm(x)
                tapes.append((x[0], inv[0]))
            elif isinstance(p, Concat):
                x = _concat(x, run(p.branch, x, keys, bias_draw, stats, tapes, hp, start), start)
            elif isinstance(p, Gate):
                stats["in_" + p.gate.name] = _msq(x[0])
                pre = x @ mat(keys, p.gate.name, hp, start).T + getattr(hp, p.bias.var)
                branch = run(p.branch, x, keys, bias_draw, stats, tapes, hp, start)
                tapes.append((pre[0], branch[0] - x[0]))
                x = _mix(pre, branch, x)
            else:
                body, bias = _split_trailing_bias(p.branch)
                kap_p = _kappa(p, hp)
                x = _times(kap_p, run(body, x, keys, bias_draw, stats, tapes, hp, start)) + x
                if bias is not None:
                    x = run((bias,), x, keys, bias_draw, stats, tapes, hp, start, kap_p)
        return x

    def forward(x_pair, keys, hp, l):
        bias_draw = jax.random.normal(keys[len(mats)], (len(biases), n_max), dtype)
        stats, tapes = {}, []
        new = run(block.body, x_pair, keys, bias_draw, stats, tapes, hp, stream.widths(l)[0])
        return new, stats, tapes

    def back(seq, g, keys, tapes, stats, hp, start):
        for p in reversed(seq):
            if isinstance(p, Dense):
                stats["g_" + p.name] = _msq(g)
                g = g @ mat(keys, p.name, hp, start)
            elif isinstance(p, Bias):
                stats["g_" + p.name] = _msq(g)
            elif isinstance(p, Act):
                g = act.dphi(tapes.pop(), hp.alpha) * g
            elif isinstance(p, Norm):
                g = _layer_norm_back(*tapes.pop(), g)
            elif isinstance(p, Concat):
                g_new, old = _split_concat(g, stream.units, start)
                g = jnp.where(old, g + back(p.branch, g_new, keys, tapes, stats, hp, start), 0.0)
            elif isinstance(p, Gate):
                g_skip, g_in, g_pre = _mix_back(*tapes.pop(), g)
                stats["g_" + p.gate.name] = _msq(g_pre)
                g = (g_skip + back(p.branch, g_in, keys, tapes, stats, hp, start)
                     + g_pre @ mat(keys, p.gate.name, hp, start))
            else:
                g = back(p.branch, _times(_kappa(p, hp), g), keys, tapes, stats, hp, start) + g
        return g

    def backward(g, tape, keys, hp, l):
        start, end = stream.widths(l)
        stats = dict(chi=_msq_over(g, end))
        return back(block.body, g, keys, list(tape), stats, hp, start), stats

    return forward, backward


def keys_per_layer(block: Block, sampler: str) -> int:
    """Keys a layer takes: fast (forward draws, backward fresh vectors); dense (one per matrix, biases)."""
    return 2 if sampler == "fast" else len(block.dense_key_slots()[0]) + 1


# ------------------------------------------------------------------------------------------ model
def init_block_params(block: Block, keys: dict, var, *, width: int, depth: int, dtype) -> dict:
    """The block's parameters stacked over ``depth``: dense (depth, fan_in, fan_out), bias (depth, width).

    ``keys[name]`` is the key of parameter ``name``; ``var`` has the variance fields as attributes (and
    the decay exponents of :data:`DECAYS`, 0 where absent: layer l's variance is var l^-decay), and the
    value of every :class:`Const` parameter's field (a gate's c: its key is not used).
    Variances scale the same standard normal draws (common random numbers across a variance grid).
    A growing stream (:class:`Concat`) is kept at its final width N_L: the dense matrix that reads it is
    (depth, N_L, G), layer l's scaled by sqrt(var / N_(l-1)) and zero in its rows beyond N_(l-1)
    (:func:`apply_block` keeps them zero).
    """
    import jax
    import jax.numpy as jnp

    shapes = block.shapes(width, depth)
    readers = _stream_readers(block)
    l = jnp.arange(1, depth + 1, dtype=dtype)[:, None, None]
    layer = at_layer(var, l)
    fan_in_l = block.width_at(width, jnp.arange(depth)[:, None, None])  # N_(l-1), l = 1..L
    out = {}
    for name, p in block.params:
        if isinstance(p, Const):  # every unit of every layer at the field's value
            out[name] = jnp.zeros((depth,) + shapes[name], dtype) + jnp.asarray(getattr(var, p.var), dtype)
            continue
        s2 = jnp.asarray(getattr(layer, p.var), dtype)
        if isinstance(p, Dense):
            draw = jax.random.normal(keys[name], (depth,) + shapes[name], dtype)
            if name in readers:
                rows = jnp.arange(shapes[name][0])[None, :, None]
                out[name] = jnp.where(rows < fan_in_l, jnp.sqrt(s2 / fan_in_l.astype(dtype)) * draw, 0.0)
            else:
                out[name] = jnp.sqrt(s2 / shapes[name][0]) * draw
        else:
            out[name] = jnp.sqrt(s2[:, 0]) * jax.random.normal(keys[name], (depth,) + shapes[name], dtype)
    return out


def apply_block(block: Block, act, params: dict, alpha, x, scales=None, start=None):
    """One block on a batch of streams ``x`` (batch, N) with one layer's ``params``; ``scales`` has the
    branch scale fields as attributes (None: every branch scale 1). A growing stream (:class:`Concat`)
    is ``x`` of the final width N_L, zero beyond ``start`` = N_(l-1) (the layer's input width): the
    dense matrix that reads it is masked to its first N_(l-1) rows (so those beyond have no gradient
    and stay zero under training), and the branch's output is written at coordinates N_(l-1)..N_l - 1."""
    import jax.numpy as jnp

    stream_readers = _stream_readers(block)

    def run(seq, x, kap=None):
        for p in seq:
            if isinstance(p, Dense):
                w = params[p.name]
                if p.name in stream_readers:
                    w = jnp.where(jnp.arange(w.shape[0])[:, None] < start, w, 0.0)
                x = x @ w
            elif isinstance(p, Bias):
                x = x + _times(kap, params[p.name])
            elif isinstance(p, Act):
                x = act.phi(x, alpha)
            elif isinstance(p, Norm):
                x = _layer_norm(x)[0]
            elif isinstance(p, Concat):
                x = _concat(x, run(p.branch, x), start)
            elif isinstance(p, Gate):
                x = _mix(x @ params[p.gate.name] + params[p.bias.name], run(p.branch, x), x)
            else:
                body, bias = _split_trailing_bias(p.branch)
                kap_p = None if scales is None else _kappa(p, scales)
                x = _times(kap_p, run(body, x)) + x
                if bias is not None:
                    x = run((bias,), x, kap_p)
        return x

    return run(block.body, x)
