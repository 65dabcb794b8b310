"""An independent, straightforward implementation of docs/theory.md, sections 3 and 4, in numpy and scipy.

It reads the block definitions of :mod:`meanfield.blocks` (data only) and interprets them on its own, in
the plain domain (p, gamma, mu, s) rather than the engine's log domain. Every transform is an adaptive ``scipy.integrate.quad`` (nested for W) evaluated per layer in a Python
loop: slow, but sharing no code with the JAX engine beyond the formulas of docs/theory.md. Tests use it as
the referee and ``experiments/bench_theory.py`` as the speed baseline.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

from . import blocks

_EPS = 1e-13


def _breaks(lo: float, hi: float, anchor: float = 0.0) -> list[float]:
    """Break points at anchor and anchor +- 2^k (k = -3..20) inside (lo, hi): every scale gets a panel."""
    pts = [anchor] + [anchor + s * 2.0**k for k in range(-3, 21) for s in (-1, 1)]
    return sorted(p for p in pts if lo < p < hi)


def _quad(f, lo, hi, anchor=0.0):
    pts = _breaks(lo, hi, anchor)
    return integrate.quad(f, lo, hi, points=pts or None, epsabs=0.0, epsrel=_EPS, limit=2000)[0]


def normal_expectation(g, q: float, mean: float = 0.0) -> float:
    """E[g(x)], x ~ N(mean, q), by adaptive quadrature in x with break points around 0."""
    if q <= 0.0:
        return float(g(mean))
    s = math.sqrt(q)
    dens = lambda x: math.exp(-0.5 * ((x - mean) / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    return _quad(lambda x: g(x) * dens(x), mean - 12 * s, mean + 12 * s)


def _phi_fns(act: str, alpha: float):
    if act == "tanh":
        return math.tanh, lambda x: 1.0 / math.cosh(min(abs(x), 300.0)) ** 2
    if act == "erf":
        return math.erf, lambda x: 2.0 / math.sqrt(math.pi) * math.exp(-x * x)
    if act == "relu":
        return (lambda x: max(x, 0.0)), (lambda x: 1.0 if x > 0 else 0.0)
    if act == "alpha_relu":
        return (lambda x: x**alpha if x > 0 else 0.0), (lambda x: alpha * x ** (alpha - 1) if x > 0 else 0.0)
    raise ValueError(act)


def _homogeneous(act, alpha):
    """Degree of positive homogeneity of phi (E[f(phi)] at variance q is q^deg times its value at 1)."""
    return {"relu": 1.0, "alpha_relu": alpha}.get(act)


def V(act, q, alpha=1.0):
    phi, _ = _phi_fns(act, alpha)
    return normal_expectation(lambda x: phi(x) ** 2, q)


def Vp(act, q, alpha=1.0):
    _, dphi = _phi_fns(act, alpha)
    if act == "alpha_relu":
        # integrable singularity x^(2 alpha - 2) at 0: substitute x = t^2 / ... via quad's algebraic weight
        s = math.sqrt(q)
        f = lambda x: alpha**2 * math.exp(-0.5 * (x / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
        return integrate.quad(f, 0, 12 * s, weight="alg", wvar=(2 * alpha - 2, 0), epsabs=0, epsrel=_EPS,
                              limit=2000)[0]
    return normal_expectation(lambda x: dphi(x) ** 2, q)


def M(act, q, alpha=1.0):
    phi, _ = _phi_fns(act, alpha)
    return normal_expectation(phi, q)


def W(act, q, lam, alpha=1.0):
    """E[phi(x) phi(y)], (x, y) ~ N(0, [[q, lam], [lam, q]]): x outer, y | x inner, both adaptive."""
    phi, _ = _phi_fns(act, alpha)
    c = max(-1.0, min(1.0, lam / q))
    s = math.sqrt(q)
    sig = s * math.sqrt(max(1.0 - c * c, 0.0))

    def inner(x):
        if sig == 0.0:
            return phi(c * x)
        return normal_expectation(phi, sig * sig, mean=c * x)

    dens = lambda x: math.exp(-0.5 * (x / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    return _quad(lambda x: phi(x) * inner(x) * dens(x), -12 * s, 12 * s)


def _phi_diff(act: str, alpha: float):
    """phi(x) - phi(x - z), written so that small z loses no digits."""
    if act == "tanh":
        def sech(x):
            return 0.0 if abs(x) > 700 else 1.0 / math.cosh(x)
        return lambda x, z: math.sinh(z) * sech(x) * sech(x - z)
    if act in ("relu", "alpha_relu"):
        a = 1.0 if act == "relu" else alpha

        def diff(x, z):
            y = x - z
            if x > 0 and y > 0:
                return -(x**a) * math.expm1(a * math.log1p(-z / x))
            return (x**a if x > 0 else 0.0) - (y**a if y > 0 else 0.0)
        return diff
    if act == "erf":
        nodes, weights = np.polynomial.legendre.leggauss(20)

        def diff(x, z):
            if abs(z) > 1e-2:
                return math.erf(x) - math.erf(x - z)
            t = x - z / 2 + z / 2 * nodes  # (2/sqrt(pi)) int_{x-z}^{x} exp(-t^2) dt
            return z / 2 * float(np.sum(weights * np.exp(-t * t))) * 2 / math.sqrt(math.pi)
        return diff
    raise ValueError(act)


def half_sq_diff(act, q, delta, alpha=1.0):
    """(1/2) E[(phi(x) - phi(y))^2] = V - W at correlation c = 1 - delta, without cancellation near c = 1."""
    diff = _phi_diff(act, alpha)
    delta = min(max(delta, 0.0), 2.0)
    s = math.sqrt(q)
    sig = s * math.sqrt(delta * (2.0 - delta))

    def inner(x):
        if sig == 0.0:
            return diff(x, delta * x) ** 2
        dens = lambda w: math.exp(-0.5 * w * w) / math.sqrt(2 * math.pi)  # noqa: E731
        return _quad(lambda w: diff(x, delta * x - sig * w) ** 2 * dens(w), -12.0, 12.0, anchor=0.0)

    dens = lambda x: math.exp(-0.5 * (x / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    return 0.5 * _quad(lambda x: inner(x) * dens(x), -12 * s, 12 * s)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _sigmoid_diff(x: float, y: float) -> float:
    """sigmoid(x + y) - sigmoid(x - y) = sinh(y) / (2 cosh((x + y)/2) cosh((x - y)/2)), without cancellation."""
    ay = abs(y)
    num = math.copysign(1.0, y) * -math.expm1(-2.0 * ay) * math.exp(-max(abs(x) - ay, 0.0))
    return num / ((1.0 + math.exp(-abs(x + y))) * (1.0 + math.exp(-abs(x - y))))


def gate_moments(c: float, v: float, half_diff_var: float) -> dict:
    """Moments of T = sigmoid(g) for (g, g') ~ N(c, v) each with Var((g - g') / 2) = ``half_diff_var``:
    t1 = E[T], u1 = E[1 - T], t2 = E[T^2], u2 = E[(1 - T)^2], tm = E[T (1 - T)], s2 = E[sigmoid'(g)^2]
    (one-dimensional), and with g, g' = x + y, x - y (x ~ N(c, v - b^2), y ~ N(0, b^2), b^2 =
    ``half_diff_var``) tt = E[T T'], uu = E[(1 - T)(1 - T')], tu = E[T (1 - T')], dd = E[(T - T')^2]."""
    dsig = lambda g: math.exp(-abs(g)) / (1.0 + math.exp(-abs(g))) ** 2  # noqa: E731
    out = {k: normal_expectation(f, v, mean=c) for k, f in (
        ("t1", _sigmoid), ("u1", lambda g: _sigmoid(-g)), ("t2", lambda g: _sigmoid(g) ** 2),
        ("u2", lambda g: _sigmoid(-g) ** 2), ("tm", dsig), ("s2", lambda g: dsig(g) ** 2))}
    b2 = max(half_diff_var, 0.0)
    a2 = max(v - b2, 0.0)

    def pair(f):
        def inner(x):
            if b2 == 0.0:
                return f(x, 0.0)
            b = math.sqrt(b2)
            dens = lambda y: 2.0 * math.exp(-0.5 * (y / b) ** 2) / (b * math.sqrt(2 * math.pi))  # noqa: E731
            return _quad(lambda y: 0.5 * (f(x, y) + f(x, -y)) * dens(y), 0.0, 12.0 * b, anchor=abs(x))
        if a2 == 0.0:
            return inner(c)
        return normal_expectation(inner, a2, mean=c)

    out["tt"] = pair(lambda x, y: _sigmoid(x + y) * _sigmoid(x - y))
    out["uu"] = pair(lambda x, y: _sigmoid(-x - y) * _sigmoid(-x + y))
    out["tu"] = pair(lambda x, y: _sigmoid(x + y) * _sigmoid(-x + y))
    out["dd"] = pair(lambda x, y: _sigmoid_diff(x, y) ** 2)
    return out


def _at_unit_variance(fn, power):
    """Evaluate a transform of a positively homogeneous phi at q = 1 and rescale by q^power(alpha)."""
    def wrapped(act, q, *args):
        alpha = args[-1] if args else 1.0
        deg = _homogeneous(act, alpha)
        if deg is None or q <= 0:
            return fn(act, q, *args)
        if fn is W:  # W(act, q, lam, alpha): the correlation lam / q is scale free
            lam = args[0]
            return q ** power(deg) * fn(act, 1.0, lam / q, *args[1:])
        return q ** power(deg) * fn(act, 1.0, *args)
    return wrapped


# Adaptive quadrature in x at variance 1e12 meets scipy's absolute floors; ReLU and alpha-ReLU need none.
V_ = _at_unit_variance(V, lambda a: a)
Vp_ = _at_unit_variance(Vp, lambda a: a - 1.0)
M_ = _at_unit_variance(M, lambda a: a / 2.0)
W_ = _at_unit_variance(W, lambda a: a)
half_sq_diff_ = _at_unit_variance(half_sq_diff, lambda a: a)


def _forward(prims, sig, hv, act, alpha, probe, layer=None, width=1.0):
    """Push (p, gamma, mu, s) through ``prims``: (sig, backward records), as in meanfield.blocks but in
    the plain domain and with the transforms above. ``layer``: the layer index (a growing stream's
    widths); ``width``: the input's width relative to the stream's input width N0."""
    recs = []
    # width: relative to the stream's; W^T sums var / fan_in over fan_out units
    for prim in prims:
        p, g, mu, s = sig
        if isinstance(prim, blocks.Dense):
            s2 = hv[prim.var]
            recs.append(("dense", prim.name, s2 * prim.ratio() / width, p))
            width = prim.ratio()
            probe["dense"] = True
            sig = (s2 * p, s2 * g, 0.0, s2 * s)
        elif isinstance(prim, blocks.Bias):
            recs.append(("bias", prim.name))
            sig = (p + hv[prim.var], g + hv[prim.var], mu, s)
        elif isinstance(prim, blocks.Act):
            if mu != 0.0:
                raise NotImplementedError("an activation of a signal with a non-zero mean")
            q, lam = p, g
            # s is tracked on its own through V - W = (1/2) E[(phi(x) - phi(y))^2]: 2 (p - gamma) cancels
            # when e -> 1
            dsq = half_sq_diff_(act, q, s / 2 / q if q > 0 else 0.0, alpha)
            if probe.get("dense") and "q" not in probe:
                probe.update(q=q, lambda_=lam)
            recs.append(("act", Vp_(act, q, alpha)))
            sig = (V_(act, q, alpha), W_(act, q, lam, alpha), M_(act, q, alpha), 2 * dsq)
        elif isinstance(prim, blocks.Norm):
            var = p - mu * mu  # the coordinates' variance; the two inputs' centred covariance is g - mu^2
            recs.append(("norm", 1.0 / var))
            sig = (1.0, (g - mu * mu) / var, 0.0, s / var)
        elif isinstance(prim, blocks.Gate):
            # x <- T b + (1 - T) x, T = sigmoid(g), g = U x + c ~ N(c, S p), independent of b and x
            (bp, bg, bmu, bs), branch = _forward(prim.branch, sig, hv, act, alpha, probe)
            S = hv[prim.gate.var]
            m = gate_moments(hv[prim.bias.var], S * p, S * s / 4.0)
            y = bp - 2.0 * bmu * mu + p  # E[(b - x)^2]
            recs.append(("gate", branch, m["t2"], m["u2"], S * m["s2"] * y))
            sig = (m["t2"] * bp + m["u2"] * p + 2.0 * m["tm"] * bmu * mu,
                   m["tt"] * bg + m["uu"] * g + 2.0 * m["tu"] * bmu * mu,
                   m["t1"] * bmu + m["u1"] * mu,
                   m["tt"] * bs + m["dd"] * y + m["uu"] * s)
        elif isinstance(prim, blocks.Residual):
            (bp, bg, bmu, bs), branch = _forward(prim.branch, sig, hv, act, alpha, probe)
            k = 1.0 if prim.scale is None else hv[prim.scale]
            recs.append(("residual", branch, k * k))
            sig = (p + k * k * bp + 2 * k * mu * bmu, g + k * k * bg + 2 * k * mu * bmu, mu + k * bmu, s + k * k * bs)
        elif isinstance(prim, blocks.Concat):
            # N_l p_l = N_(l-1) p_(l-1) + G V: every second moment and the mean weighted by the widths
            k = [x for x in prim.branch if isinstance(x, blocks.Dense)][-1].ratio()
            n_in = 1.0 + (layer - 1) * k
            (bp, bg, bmu, bs), branch = _forward(prim.branch, sig, hv, act, alpha, probe, layer, n_in)
            a, w = n_in / (n_in + k), k / (n_in + k)
            recs.append(("residual", branch, 1.0))
            sig = (a * p + w * bp, a * g + w * bg, a * mu + w * bmu, a * s + w * bs)
        else:
            raise TypeError(f"unknown primitive {prim!r}")
    return sig, recs


def _backward(recs, g, gains):
    """chi at the input of ``recs`` per unit chi at their output ``g``; fills the parameters' gains."""
    for rec in reversed(recs):
        if rec[0] == "dense":
            gains[rec[1]] = g * rec[3]
            g = g * rec[2]
        elif rec[0] == "bias":
            gains[rec[1]] = g
        elif rec[0] in ("act", "norm"):
            g = g * rec[1]
        elif rec[0] == "gate":  # (1 - T) g to the input, T g to the branch, sigmoid' (b - x) g through U^T
            _, branch, t2, u2, gate_gain = rec
            g = u2 * g + _backward(branch, t2 * g, gains) + gate_gain * g
        else:  # residual: the branch sees kappa g, so chi gains kappa^2 times its factor
            g = g + _backward(rec[1], rec[2] * g, gains)
    return g


def trajectory(arch, act, depth, sw2, sv2, sb2, sa2, alpha=1.0, p0=1.0, gamma0=0.5, branch_scale=1.0,
               decay=None, sg2=1.0, gate_bias=0.0):
    """docs/theory.md, section 3 recursions of block ``arch`` (:mod:`meanfield.blocks`), layer by layer,
    with the transforms above (no log domain). Variances the block does not use are ignored; ``decay``
    maps a variance to its exponent (layer l uses var * l ** -exponent).

    Returns a dict of numpy arrays of length depth + 1 (NaN where undefined) and the scalar ``log_R``.
    """
    block = blocks.get_block(arch)
    hv = dict(sw2=sw2, sv2=sv2, sb2=sb2, sa2=sa2, branch_scale=branch_scale, sg2=sg2, gate_bias=gate_bias)
    nan = float("nan")
    L = depth
    out = {k: np.full(L + 1, nan) for k in ("p", "q", "gamma", "lambda", "e", "s", "mu",
                                            "chi", "chi_a", "chi_b", "chi_w", "chi_v")}
    sig = (p0, gamma0, 0.0, 2.0 * (p0 - gamma0))
    out["p"][0], out["gamma"][0], out["mu"][0], out["s"][0] = sig
    layers = [None]
    for l in range(1, L + 1):
        probe = {}
        hv_l = {k: v * l ** -(decay or {}).get(k, 0.0) for k, v in hv.items()}
        sig, recs = _forward(block.body, sig, hv_l, act, alpha, probe, l)
        out["q"][l], out["lambda"][l] = probe["q"], probe["lambda_"]
        out["p"][l], out["gamma"][l], out["mu"][l], out["s"][l] = sig
        layers.append(recs)
    out["e"] = out["gamma"] / out["p"]
    chi = np.ones(L + 1)
    log_r = 0.0
    for l in range(L, 0, -1):
        gains = {}
        factor = _backward(layers[l], 1.0, gains)
        chi[l - 1] = chi[l] * factor
        log_r += math.log(factor)
        for name in blocks.GRADIENT_FIELDS:
            if name in gains:
                out["chi_" + name][l] = chi[l] * gains[name]
    out["chi"] = chi
    out["log_R"] = log_r
    return out


def relu_kernel(c):
    """Arc-cosine kernel E[relu(u) relu(u')] for unit variances and correlation c (Cho & Saul)."""
    return (math.sqrt(max(1 - c * c, 0.0)) + (math.pi - math.acos(c)) * c) / (2 * math.pi)


def c_alpha(alpha):
    return 2 ** (alpha - 1) * special.gamma(alpha + 0.5) / math.sqrt(math.pi)
