"""Piecewise-polynomial tables of the Gaussian transforms, for activations without a closed form.

A transform computed by quadrature (tanh, ``custom(phi)``) costs thousands of evaluations of phi; a
closed form costs a few. A table built once per activation from the exact rules and evaluated as a
short polynomial costs about what a closed form does, at every batch size including one. Tables are
built on first use, kept on disk (:func:`cache_dir`) under a hash of the activation and of the rules'
version, and checked against the exact rules whenever they are built.

Coordinates: u = log q on [u_lo, u_hi], in patches of width ~2 carrying a Chebyshev interpolant of
degree ``degree - 1`` per axis (stored as powers of the local coordinate, see :func:`_monomial_matrix`).
Tabulated:

* 1D in u: log V, log V' and, for activations that are not odd, M / sqrt(V) (bounded by 1).
* 2D, in pieces over the correlation c = 1 - delta, all in one coefficient array:

  - ``near`` (delta <= 1/2): g = log((1 - rho) / delta) in (u, log delta). The table holds 1 - rho
    itself, relative to delta, so there is no cancellation however small delta is. As q delta -> 0,
    g tends to log(q V'/V) (Price's theorem) with corrections O(q delta), so log delta is clipped at
    -u - 34, below which g is constant to ~1e-14. Saturating phi turn 1 - rho from linear in delta
    into sqrt(delta) around q delta ~ 1 (the kink of width 1/sqrt(q)): smooth in log delta.
  - ``mid`` (|c| < 1/2): rho / c in (u, (2c)^2) for odd phi (rho is odd in c: relative precision as
    c -> 0, and W(q, 0) = 0 exactly); rho in (u, c) otherwise.
  - ``far`` (c <= -1/2, phi not odd): rho in (u, log(1 + c)), clipped like ``near``. For odd phi,
    rho(-c) = -rho(c) serves instead.

Outside [u_lo, u_hi] the exact rules answer: the transforms switch the whole batch to them, with
``lax.cond``, when one of its points is outside. An engine that checks the range of q itself can use
the transforms without that switch (``exact=None``), see :func:`_guarded`.

Error control: after a build every patch is compared with the exact rules at random points between
its nodes, through the same evaluation the transforms use; the largest differences are stored with the
table (:attr:`Tables.errors`). A table that differs by more than :data:`TOLERANCE` is not used: the
activation keeps its exact rules, with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._x64 import float64

#: Bump when the layout, the pieces or the way tables are fitted change: it is part of the cache key.
TABLE_VERSION = 1
#: Largest accepted difference between a table and its exact rules (relative, or absolute in logs).
TOLERANCE = 1e-10
#: Environment variable naming the cache directory (an empty value turns the disk cache off).
CACHE_ENV = "MEANFIELD_CACHE_DIR"

_SPLIT = 0.5  # near: delta <= _SPLIT; mid: |c| < 1 - _SPLIT; far: 1 + c <= _SPLIT
_CLIP = 34.0  # log delta is clipped at -u - _CLIP (q delta <= 1.7e-15: g is constant to ~1e-14 below)
_PATCH = 2.0  # target patch width in u and in log delta


def cache_dir() -> Path | None:
    """Directory of the on-disk table cache, or None when turned off.

    ``$MEANFIELD_CACHE_DIR`` if set (empty: no disk cache), else ``$XDG_CACHE_HOME/meanfield``, else
    ``~/.cache/meanfield``. A directory that cannot be written only costs a rebuild per process.
    """
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return Path(env).expanduser() if env else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "meanfield"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the patches are: u in [u_lo, u_hi]; ``degree`` Chebyshev coefficients per axis."""

    u_lo: float
    u_hi: float
    odd: bool
    degree: int = 16

    @property
    def n_u(self) -> int:
        return max(1, math.ceil((self.u_hi - self.u_lo) / _PATCH - 1e-9))

    @property
    def h_u(self) -> float:
        return (self.u_hi - self.u_lo) / self.n_u

    @property
    def w_lo(self) -> float:
        return -self.u_hi - _CLIP

    @property
    def n_w(self) -> int:
        return math.ceil((math.log(_SPLIT) - self.w_lo) / _PATCH - 1e-9)

    @property
    def h_w(self) -> float:
        return (math.log(_SPLIT) - self.w_lo) / self.n_w

    @property
    def n_mid(self) -> int:
        return 1 if self.odd else 2

    @property
    def n_cols(self) -> int:
        """Column patches per u-patch: near, mid and (phi not odd) far."""
        return self.n_w + self.n_mid + (0 if self.odd else self.n_w)

    def describe(self) -> str:
        return f"v{TABLE_VERSION} u[{self.u_lo!r},{self.u_hi!r}] odd={self.odd} n={self.degree}"


@dataclasses.dataclass(frozen=True, eq=False)
class Tables:
    """Coefficients of one activation's tables and the errors measured when they were built."""

    layout: Layout
    one_d: np.ndarray  # (n_u, degree, channels): coefficients of powers of the local coordinate
    two_d: np.ndarray  # (n_u * n_cols, degree, degree): the same, powers of the column's coordinate
    #                    first and of u second; patches never used are 0
    errors: dict  # piece -> largest difference against the exact rules
    build_seconds: float = 0.0
    source: str = "built"  # "built" or the cache file it was read from


@dataclasses.dataclass(frozen=True)
class ExactRules:
    """The rules a table is built from (vectorized over arrays of u = log q, float64)."""

    log_V: Callable  # u -> log V
    log_Vp: Callable  # u -> log V'
    corr: Callable  # (u, c) -> rho
    decorr: Callable  # (u, delta) -> 1 - rho, without cancellation near delta = 0
    M_over_sqrt_V: Callable | None = None  # u -> M / sqrt(V); None for odd phi


# ------------------------------------------------------------------------------------ Chebyshev pieces
def _nodes(n: int) -> np.ndarray:
    """Chebyshev points of the first kind on [-1, 1] (interior: no endpoint singularities are sampled)."""
    return np.cos(np.pi * (np.arange(n) + 0.5) / n)[::-1]


def _fit_matrix(n: int) -> np.ndarray:
    """Values at :func:`_nodes` -> Chebyshev coefficients (a discrete cosine transform)."""
    k = np.arange(n)[:, None]
    theta = np.pi * (np.arange(n)[::-1] + 0.5) / n
    m = 2.0 / n * np.cos(k * theta[None, :])
    m[0] /= 2.0
    return m


def _monomial_matrix(n: int) -> np.ndarray:
    """Chebyshev coefficients -> coefficients of 1, t, .., t^(n-1) (column k: T_k in powers of t).

    Tables are evaluated by Horner's rule: no transcendental functions and a chain XLA fuses well (the
    Chebyshev recurrence and Clenshaw's rule refer to two earlier terms, which XLA's fusion recomputes
    along every path, and cos(k arccos t) costs ~10 ns per term). The conversion loses little here:
    the coefficients decay faster than the (1 + sqrt 2)^k growth of T_k's, and the built tables are
    checked through this very evaluation.
    """
    m = np.zeros((n, n))
    for k in range(n):
        m[: k + 1, k] = np.polynomial.chebyshev.cheb2poly(np.eye(n)[k])
    return m


def _horner(coef, t):
    """sum_k coef[:, k, ...] t^k for a batch: coef (B, n, ...), t (B,)."""
    t = t.reshape(t.shape + (1,) * (coef.ndim - 2))
    acc = coef[:, -1]
    for k in range(coef.shape[1] - 2, -1, -1):
        acc = acc * t + coef[:, k]
    return acc


def _locate(x, count: int):
    """Patch index and local coordinate in [-1, 1] of x in units of patch widths from the first edge."""
    i = jnp.clip(jnp.floor(x), 0, count - 1)
    return i.astype(jnp.int32), 2.0 * (x - i) - 1.0


def _columns(layout: Layout, u, c, delta):
    """Column patch, local coordinate and piece (near, far) of each point (see the module docstring).

    For odd phi the caller passes |c| and 1 - |c|: the table holds c >= 0 only.
    """
    lo = layout
    near = delta <= _SPLIT
    # near (and far): log delta, clipped at -u - _CLIP where the piece is constant
    w_floor = -u - _CLIP
    w_near = jnp.maximum(jnp.log(jnp.maximum(delta, 1e-300)), w_floor)
    j_near, t_near = _locate((w_near - lo.w_lo) / lo.h_w, lo.n_w)
    if lo.odd:
        t_mid = 2.0 * jnp.minimum((2.0 * c) ** 2, 1.0) - 1.0
        return jnp.where(near, j_near, lo.n_w), jnp.where(near, t_near, t_mid), near, jnp.zeros_like(near)
    far = 1.0 + c <= _SPLIT
    j_mid, t_mid = _locate((jnp.clip(c, -0.5, 0.5) + 0.5) / 0.5, 2)
    w_far = jnp.maximum(jnp.log(jnp.maximum(1.0 + c, 1e-300)), w_floor)
    j_far, t_far = _locate((w_far - lo.w_lo) / lo.h_w, lo.n_w)
    j = jnp.where(near, j_near, jnp.where(far, j_far + lo.n_w + 2, j_mid + lo.n_w))
    t = jnp.where(near, t_near, jnp.where(far, t_far, t_mid))
    return j, t, near, far


def _eval_two_d(tables: Tables, u, c, delta):
    """The tabulated quantity of each point's piece and the piece, for points inside [u_lo, u_hi]."""
    lo = tables.layout
    i, tu = _locate((u - lo.u_lo) / lo.h_u, lo.n_u)
    j, tv, near, far = _columns(lo, u, c, delta)
    coef = jnp.asarray(tables.two_d)[i * lo.n_cols + j]  # (B, n, n): powers of tv, then of tu
    val = _horner(_horner(coef, tv), tu)
    return val, near, far


def _eval_one_d(tables: Tables, u):
    lo = tables.layout
    i, t = _locate((u - lo.u_lo) / lo.h_u, lo.n_u)
    return _horner(jnp.asarray(tables.one_d)[i], t)


# --------------------------------------------------------------------------------------- the transforms
def _rho_pieces(tables: Tables, u, c, delta):
    """(rho, 1 - rho) from the tables; c = 1 - delta, both given (each is exact where it is used)."""
    if tables.layout.odd:
        a = jnp.abs(c)
        da = jnp.where(c < 0, 1.0 - a, delta)  # 1 - |c|
        val, near, _ = _eval_two_d(tables, u, a, da)
        side = da * jnp.exp(val)  # 1 - rho(|c|)
        rho_abs = jnp.where(near, 1.0 - side, a * val)
        rho = jnp.where(c < 0, -rho_abs, rho_abs)
        # rho(c) / c = val is even in c: 1 - c val holds on both sides of the middle piece
        omr = jnp.where(near, jnp.where(c < 0, 2.0 - side, side), 1.0 - c * val)
        return rho, omr
    val, near, far = _eval_two_d(tables, u, c, delta)
    side = delta * jnp.exp(val)
    return jnp.where(near, 1.0 - side, val), jnp.where(near, side, 1.0 - val)


def _flat(*xs):
    xs = jnp.broadcast_arrays(*xs)
    return xs[0].shape, [x.ravel() for x in xs]


def _inside(tables: Tables, u):
    return (u >= tables.layout.u_lo) & (u <= tables.layout.u_hi)


def _guarded(tables: Tables, u, table_fn, exact_fn):
    """table_fn where u is in range; exact_fn (None: no check) for the batch when some point is outside.

    Why the check can be left to the caller: inside a ``lax.scan`` over layers the conditional costs
    0.1-0.2 us per layer on CPU, more than the lookup, and it keeps XLA:CPU from compiling the loop into
    a single kernel where it could otherwise (when ``xla_cpu_small_while_loop_byte_threshold`` is
    raised, see the README). The theory engine runs without it and checks the range of q afterwards.
    """
    val = table_fn(jnp.clip(u, tables.layout.u_lo, tables.layout.u_hi))
    if exact_fn is None:
        return val
    inside = _inside(tables, u)
    return jax.lax.cond(jnp.all(inside), lambda: val, lambda: jnp.where(inside, val, exact_fn(u)))


def log_V(tables: Tables, exact: ExactRules | None, u):
    """log V(q) at u = log q; ``exact`` answers outside the table (None: the caller checks the range)."""
    shape, (u,) = _flat(u)
    out = _guarded(tables, u, lambda v: _eval_one_d(tables, v)[:, 0], exact and exact.log_V)
    return out.reshape(shape)


def log_Vp(tables: Tables, exact: ExactRules | None, u):
    shape, (u,) = _flat(u)
    out = _guarded(tables, u, lambda v: _eval_one_d(tables, v)[:, 1], exact and exact.log_Vp)
    return out.reshape(shape)


def M_over_sqrt_V(tables: Tables, exact: ExactRules | None, u):
    shape, (u,) = _flat(u)
    out = _guarded(tables, u, lambda v: _eval_one_d(tables, v)[:, 2], exact and exact.M_over_sqrt_V)
    return out.reshape(shape)


def corr(tables: Tables, exact: ExactRules | None, u, c):
    shape, (u, c) = _flat(u, jnp.clip(c, -1.0, 1.0))
    out = _guarded(tables, u, lambda v: _rho_pieces(tables, v, c, 1.0 - c)[0],
                   exact and (lambda v: exact.corr(v, c)))
    return out.reshape(shape)


def one_minus_corr(tables: Tables, exact: ExactRules | None, u, delta):
    shape, (u, delta) = _flat(u, jnp.clip(delta, 0.0, 2.0))
    out = _guarded(tables, u, lambda v: _rho_pieces(tables, v, 1.0 - delta, delta)[1],
                   exact and (lambda v: exact.decorr(v, delta)))
    return out.reshape(shape)


# ------------------------------------------------------------------------------------------------ build
def _in_chunks(fn, *args, chunk: int = 1 << 14) -> np.ndarray:
    """fn over flat float64 arrays in fixed-size chunks (one compilation, bounded memory)."""
    n = args[0].size
    out = np.empty(n)
    for start in range(0, n, chunk):
        part = [a[start:start + chunk] for a in args]
        pad = chunk - part[0].size if n > chunk else 0
        if pad:
            part = [np.concatenate([a, np.repeat(a[-1:], pad)]) for a in part]
        out[start:start + chunk] = np.asarray(fn(*part))[: chunk - pad if pad else None]
    return out


def _near_patches(layout: Layout):
    """(i, j) of the near (and far) patches that some point above the clip line falls in."""
    i, j = np.meshgrid(np.arange(layout.n_u), np.arange(layout.n_w), indexing="ij")
    u_top = layout.u_lo + (i + 1) * layout.h_u
    w_top = layout.w_lo + (j + 1) * layout.h_w
    keep = w_top >= -u_top - _CLIP - 1e-9
    return i[keep], j[keep]


def build(layout: Layout, exact: ExactRules, seed: int = 0) -> Tables:
    """Fit every patch at its Chebyshev nodes, then measure the error at random points between them."""
    t0 = time.perf_counter()
    n = layout.degree
    x = _nodes(n)
    fit = _fit_matrix(n)
    f_u = jax.jit(lambda u: jnp.stack([exact.log_V(u), exact.log_Vp(u)]
                                      + ([] if exact.M_over_sqrt_V is None else [exact.M_over_sqrt_V(u)]), -1))
    f_corr = jax.jit(exact.corr)
    f_decorr = jax.jit(exact.decorr)

    u_nodes = layout.u_lo + layout.h_u * (np.arange(layout.n_u)[:, None] + 0.5 * (x + 1.0))  # (n_u, n)
    vals_1d = np.asarray(f_u(jnp.asarray(u_nodes.ravel()))).reshape(layout.n_u, n, -1)
    one_d = np.einsum("ka,iac->ikc", fit, vals_1d)

    two_d = np.zeros((layout.n_u, layout.n_cols, n, n))
    pi, pj = _near_patches(layout)
    uu = np.broadcast_to(u_nodes[pi][:, :, None], (pi.size, n, n))
    ww = np.broadcast_to((layout.w_lo + layout.h_w * (pj[:, None] + 0.5 * (x + 1.0)))[:, None, :], uu.shape)
    omr = _in_chunks(f_decorr, uu.ravel(), np.exp(ww.ravel())).reshape(uu.shape)
    two_d[pi, pj] = np.einsum("ka,pab,lb->pkl", fit, np.log(omr) - ww, fit)
    if not layout.odd:
        rho = _in_chunks(f_corr, uu.ravel(), np.expm1(ww.ravel())).reshape(uu.shape)  # c = -1 + e^w'
        two_d[pi, pj + layout.n_w + 2] = np.einsum("ka,pab,lb->pkl", fit, rho, fit)
    um = np.broadcast_to(u_nodes[:, :, None], (layout.n_u, n, n))
    if layout.odd:
        cm = np.broadcast_to(0.5 * np.sqrt(0.5 * (x + 1.0))[None, None, :], um.shape)
        rho = _in_chunks(f_corr, um.ravel(), cm.ravel()).reshape(um.shape)
        two_d[:, layout.n_w] = np.einsum("ka,pab,lb->pkl", fit, rho / cm, fit)
    else:
        for half in (0, 1):
            cm = np.broadcast_to((-0.5 + 0.5 * (half + 0.5 * (x + 1.0)))[None, None, :], um.shape)
            rho = _in_chunks(f_corr, um.ravel(), cm.ravel()).reshape(um.shape)
            two_d[:, layout.n_w + half] = np.einsum("ka,pab,lb->pkl", fit, rho, fit)
    mono = _monomial_matrix(n)
    one_d = np.einsum("ak,ikc->iac", mono, one_d)
    two_d = np.einsum("ak,pqkl,bl->pqba", mono, two_d, mono)
    tables = Tables(layout, one_d, two_d.reshape(layout.n_u * layout.n_cols, n, n), {})
    errors = _measure(tables, exact, f_u, f_corr, f_decorr, np.random.default_rng(seed))
    return dataclasses.replace(tables, errors=errors, build_seconds=time.perf_counter() - t0)


def _measure(tables: Tables, exact: ExactRules, f_u, f_corr, f_decorr, rng) -> dict:
    """Largest differences against the exact rules at random points: 4 per 1D patch, 2 per 2D patch."""
    lo = tables.layout
    u = lo.u_lo + lo.h_u * (np.repeat(np.arange(lo.n_u), 4) + rng.random(4 * lo.n_u))
    got = np.asarray(jax.jit(lambda v: _eval_one_d(tables, v))(jnp.asarray(u)))
    want = np.asarray(f_u(jnp.asarray(u)))
    errors = {"log_V": float(np.max(np.abs(got[:, 0] - want[:, 0]))),
              "log_Vp": float(np.max(np.abs(got[:, 1] - want[:, 1])))}
    if not lo.odd:
        errors["M/sqrt(V)"] = float(np.max(np.abs(got[:, 2] - want[:, 2])))
    pieces = jax.jit(lambda v, c, d: _rho_pieces(tables, v, c, d))
    # near: delta = e^w with w above the clip line
    pi, pj = _near_patches(lo)
    pi, pj = np.repeat(pi, 2), np.repeat(pj, 2)
    u = lo.u_lo + lo.h_u * (pi + rng.random(pi.size))
    w = np.maximum(lo.w_lo + lo.h_w * (pj + rng.random(pj.size)), -u - _CLIP)
    delta = np.exp(w)
    omr_t = np.asarray(pieces(u, 1.0 - delta, delta)[1])
    omr_e = _in_chunks(f_decorr, u, delta)
    errors["near: 1 - rho"] = float(np.max(np.abs(omr_t / omr_e - 1.0)))
    # mid: |c| < 1/2
    u = lo.u_lo + lo.h_u * (np.repeat(np.arange(lo.n_u), 8) + rng.random(8 * lo.n_u))
    c = rng.uniform(-0.5, 0.5, u.size)
    rho_t = np.asarray(pieces(u, c, 1.0 - c)[0])
    rho_e = _in_chunks(f_corr, u, c)
    if lo.odd:
        errors["mid: rho"] = float(np.max(np.abs(rho_t / rho_e - 1.0)))
    else:
        errors["mid: rho"] = float(np.max(np.abs(rho_t - rho_e)))
        u = lo.u_lo + lo.h_u * (pi + rng.random(pi.size))
        c = -1.0 + np.exp(np.maximum(lo.w_lo + lo.h_w * (pj + rng.random(pj.size)), -u - _CLIP))
        errors["far: rho"] = float(np.max(np.abs(np.asarray(pieces(u, c, 1.0 - c)[0]) - _in_chunks(f_corr, u, c))))
    return errors


# ------------------------------------------------------------------------------------ cache and loading
_MEMO: dict = {}  # full key -> Tables (or None: failed its check), per process
_MEMO_LOCK = threading.RLock()


def _file(name: str, full_key: str) -> Path | None:
    root = cache_dir()
    if root is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "activation"
    return root / f"{safe}-{full_key[:24]}.npz"


def _read(path: Path, layout: Layout, full_key: str) -> Tables | None:
    """The tables stored at ``path`` if they are the ones asked for and intact; else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != full_key:
                return None
            n = layout.degree
            one_d, two_d = z["one_d"], z["two_d"]
            if one_d.shape[:2] != (layout.n_u, n) or two_d.shape != (layout.n_u * layout.n_cols, n, n):
                return None
            if not (np.all(np.isfinite(one_d)) and np.all(np.isfinite(two_d))):
                return None
            errors = dict(zip(z["error_names"].tolist(), z["error_values"].tolist()))
            return Tables(layout, one_d, two_d, errors, float(z["build_seconds"]), str(path))
    except Exception:  # absent, unreadable, truncated or from another layout: rebuild
        return None


def _write(path: Path, tables: Tables, full_key: str) -> None:
    """Store atomically (a reader never sees half a file); an unwritable directory is not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, key=np.array(full_key), one_d=tables.one_d, two_d=tables.two_d,
                         error_names=np.array(list(tables.errors)),
                         error_values=np.array(list(tables.errors.values()), dtype=float),
                         build_seconds=np.array(tables.build_seconds))
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass


def load_or_build(name: str, key: str, layout: Layout, rules: ExactRules) -> Tables | None:
    """The tables of one activation: from this process, from the disk cache, or built (and stored).

    ``key`` names the activation and the version of its exact rules; the layout and
    :data:`TABLE_VERSION` are added to it. Returns None (with a warning) for tables whose measured error
    exceeds :data:`TOLERANCE`.
    """
    full_key = hashlib.sha256(f"{layout.describe()}|{key}".encode()).hexdigest()
    with _MEMO_LOCK:
        if full_key in _MEMO:
            return _MEMO[full_key]
        # built outside any trace that may be running (tables are constants of the compiled programs)
        with jax.ensure_compile_time_eval(), float64():
            path = _file(name, full_key)
            tables = _read(path, layout, full_key) if path is not None else None
            if tables is None:
                tables = build(layout, rules)
                if path is not None:
                    _write(path, tables, full_key)
        worst = max(tables.errors.values())
        if not worst <= TOLERANCE:
            warnings.warn(f"meanfield: the table of {name} differs from its exact rules by {worst:.1e} "
                          f"(> {TOLERANCE:g}); using the exact rules instead (slower)", RuntimeWarning,
                          stacklevel=3)
            tables = None
        _MEMO[full_key] = tables
        return tables


class Lazy:
    """One activation's tables, loaded or built on first use (``get``); None if they failed their check."""

    def __init__(self, name: str, key: Callable[[], str], layout: Layout, rules: ExactRules):
        self.name, self.layout, self.rules = name, layout, rules
        self._key = key
        self._tables: Tables | None = None
        self._done = False

    def get(self) -> Tables | None:
        if not self._done:
            # outside any trace that may be running: the key evaluates phi, the build the exact rules
            with jax.ensure_compile_time_eval(), float64():
                self._tables = load_or_build(self.name, self._key(), self.layout, self.rules)
            self._done = True
        return self._tables

    def covers(self, q) -> bool:
        """Whether every q (NaN entries aside) lies in the table's range; True when there is no table."""
        return bool(np.all(self.covers_rows(np.reshape(q, (1, -1)))))

    def covers_rows(self, q) -> np.ndarray:
        """Per row of ``q`` (n, k): whether its every q (NaN entries aside) lies in the table's range."""
        q = np.asarray(q, dtype=float)
        if self.get() is None:
            return np.ones(q.shape[0], bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.log(q)
        inside = np.isnan(u) | ((u >= self.layout.u_lo) & (u <= self.layout.u_hi))
        return np.all(inside.reshape(q.shape[0], -1), axis=1)

    def __repr__(self):
        state = "not loaded" if not self._done else ("unused" if self._tables is None else self._tables.source)
        return f"Lazy({self.name!r}, {state})"
