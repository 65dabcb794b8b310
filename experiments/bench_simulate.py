"""Benchmark of the simulation engine (meanfield.simulate): prints figures, asserts nothing.

    python experiments/bench_simulate.py            # full run (the width-1e6, depth-1000 network takes minutes)
    python experiments/bench_simulate.py --quick    # the same figures with a width-1e5, depth-100 big network

Every ratio is against a baseline measured in the same run on this machine:

1. network-layers per second of the dense and the fast sampler (tanh FRN, N = 1024, depth 100, two inputs,
   forward + backward), and their ratio (target: fast >= 100x dense);
2. the fast sampler's time against the bare time of ``jax.random.normal`` for the same count of Gaussian
   numbers (8 N per layer: W and V on the two inputs, b, a, and one fresh vector each for W^T and V^T in
   the backward pass) -- the limit of exact sampling here (target: within 2x);
3. the dense sampler's achieved fraction of this machine's matmul throughput, measured with ``jnp.dot`` on
   the same shapes (per layer: (2, N) x (N, N) twice forward, (N,) x (N, N) twice backward);
4. the wall time of a width-1e6, depth-1000 tanh FRN with two inputs, forward + backward, float32; the
   backward tape does not fit in memory there, so the sampler checkpoints and recomputes (14 N numbers per
   layer instead of 8 N).
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import meanfield as mf
from meanfield.simulate import _networks, plan
from meanfield.spec import Hyper

SPEC = dict(arch="frn", act="tanh", sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5)
F32 = np.dtype("float32")


def compiled_sampler(spec: mf.Spec, width: int, n_net: int, sampler: str, memory_bytes: int = 1 << 30):
    """The compiled program of ``n_net`` networks (no per-sample summary), its inputs, and the plan."""
    hp = Hyper(*(np.repeat(np.reshape(v, (1,)), n_net) for v in spec.hyper()))
    keys = jax.random.split(jax.random.key(0), n_net)
    block = (hp, jax.random.key_data(keys))
    segment, _ = plan(sampler, spec.arch, width, spec.depth, F32.itemsize, n_net, memory_bytes)
    kw = dict(arch=spec.arch, act=spec.act, depth=spec.depth, width=width, dtype=F32, sampler=sampler,
              segment=segment, impl=jax.random.key_impl(keys))
    t0 = time.perf_counter()
    program = _networks.lower(block, **kw).compile()
    return program, (block,), segment, time.perf_counter() - t0


def best_time(fn, *args, repeats: int = 3) -> float:
    return interleaved({"f": (fn, args)}, repeats)["f"]


def interleaved(programs: dict, repeats: int = 5) -> dict:
    """Best-of-``repeats`` wall time of each ``name: (fn, args)``, the programs taking turns, so that the
    load of a shared machine hits every program alike (ratios stay meaningful when absolute times drift)."""
    for fn, args in programs.values():
        jax.block_until_ready(fn(*args))  # warm: first-touch allocations
    best = {name: math.inf for name in programs}
    for _ in range(repeats):
        for name, (fn, args) in programs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def once(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def bare_normal_programs(n_net: int, depth: int, width: int, rows_fwd: int, rows_bwd: int) -> dict:
    """jax.random.normal alone for the fast sampler's count: one call, and per-layer calls of its shapes."""
    count = n_net * depth * (rows_fwd + rows_bwd) * width
    one_call = jax.jit(lambda k: jax.random.normal(k, (count,), jnp.float32))

    @jax.jit
    def per_layer(k):
        def body(acc, kk):
            a = jax.random.normal(kk[0], (n_net, rows_fwd, width), jnp.float32)
            b = jax.random.normal(kk[1], (n_net, rows_bwd, width), jnp.float32)
            # consume every number (a partial use lets XLA skip generating the rest), store none
            return acc + a.sum() + b.sum(), None

        return jax.lax.scan(body, jnp.float32(0), jax.random.split(k, (depth, 2)))[0]

    key = jax.random.key(1)
    return {"bare, one call": (one_call, (key,)), "bare, per-layer calls": (per_layer, (key,))}


def dense_matmul_time(width: int, depth: int) -> float:
    """The dense sampler's matrix products alone (fixed matrices, no random numbers), jnp.dot, same shapes."""
    k1, k2 = jax.random.split(jax.random.key(2))
    w = jax.random.normal(k1, (width, width), jnp.float32) / math.sqrt(width)
    v = jax.random.normal(k2, (width, width), jnp.float32) / math.sqrt(width)
    x0 = jnp.ones((2, width), jnp.float32)

    @jax.jit
    def run(w, v, x0):
        def fwd(x, _):
            h = jnp.dot(x, w.T)
            return jnp.dot(jnp.tanh(h), v.T) + x, h[0]

        x, hs = jax.lax.scan(fwd, x0, None, length=depth)

        def bwd(g, h):
            delta = jnp.dot(g, v) * (1.0 - jnp.tanh(h) ** 2)
            return g + jnp.dot(delta, w), None

        g, _ = jax.lax.scan(bwd, x[0], hs, reverse=True)
        return g

    return best_time(run, w, v, x0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="big network of width 1e5 and depth 100 instead")
    parser.add_argument("--fast-nets", type=int, default=32, help="networks per fast-sampler call (default 32)")
    args = parser.parse_args(argv)

    n, depth = 1024, 100
    spec = mf.Spec(depth=depth, **SPEC)
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}, float32, tanh FRN, 2 inputs")
    print(f"\n== N = {n}, depth {depth}, forward + backward ==")

    fast, fast_args, seg, c_fast = compiled_sampler(spec, n, args.fast_nets, "fast")
    programs = {"fast": (fast, fast_args), **bare_normal_programs(args.fast_nets, depth, n, 6, 2)}
    times = interleaved(programs)
    t_fast = times.pop("fast")
    t_bare = min(times.values())
    dense, dense_args, _, c_dense = compiled_sampler(spec, n, 1, "dense")
    t_dense = once(dense, *dense_args)
    rate_fast = args.fast_nets * depth / t_fast
    rate_dense = depth / t_dense
    print(f"fast sampler : {rate_fast:12.1f} network-layers/s  ({args.fast_nets} networks in {t_fast:.3f} s; "
          f"compile {c_fast:.1f} s)")
    print(f"dense sampler: {rate_dense:12.1f} network-layers/s  (1 network in {t_dense:.2f} s; "
          f"compile {c_dense:.1f} s)")
    print(f"fast / dense : {rate_fast / rate_dense:12.0f} x   (target >= 100 x)")

    count = args.fast_nets * depth * 8 * n
    print(f"\nbare jax.random.normal, {count / 1e6:.1f} M numbers (8 N per network-layer): "
          + ", ".join(f"{name[6:]} {t:.3f} s" for name, t in times.items())
          + f" ({count / t_bare / 1e6:.1f} M/s at best)")
    print(f"fast sampler / bare random numbers: {t_fast / t_bare:.2f} x   (target <= 2 x; best of 5, interleaved)")

    t_dot = dense_matmul_time(n, depth)
    flops = 12.0 * n * n * depth
    dense_draws = 4.0 * n * n * depth
    print(f"\njnp.dot, the dense sampler's products alone: {t_dot:.3f} s ({flops / t_dot / 1e9:.2f} GFLOP/s)")
    print(f"dense sampler: {flops / t_dense / 1e9:.3f} GFLOP/s = {t_dot / t_dense:.1%} of matmul throughput; "
          f"it draws {dense_draws / 1e6:.0f} M Gaussians (4 N^2 per layer), "
          f"{dense_draws / (count / t_bare):.2f} s at the bare rate: random-number bound")

    big_n, big_depth = (10**5, 100) if args.quick else (10**6, 1000)
    big = mf.Spec(depth=big_depth, **SPEC)
    program, big_args, seg, c_big = compiled_sampler(big, big_n, 1, "fast")
    mode = "whole tape" if seg >= big_depth else f"checkpoint every {seg} layers, recompute"
    print(f"\n== tanh FRN, width {big_n:.0e}, depth {big_depth}, 2 inputs, forward + backward, float32 ==")
    print(f"plan: {mode}; compile {c_big:.1f} s")
    probe = 20  # layers of bare random numbers at this width, to get this shape's rate
    bare_big = min(interleaved(bare_normal_programs(1, probe, big_n, 6, 2), repeats=2).values())
    rate = probe * 8 * big_n / bare_big
    t_big = once(program, *big_args)
    drawn = (8 if seg >= big_depth else 14) * big_n * big_depth
    print(f"wall time: {t_big:.1f} s  ({t_big / big_depth * 1e3:.1f} ms per layer)")
    print(f"bare jax.random.normal at this width: {rate / 1e6:.1f} M/s; for the {drawn / 1e9:.1f} G numbers it "
          f"draws: {drawn / rate:.1f} s ({t_big / (drawn / rate):.2f} x); for the 8 N per layer a network "
          f"needs: {8 * big_n * big_depth / rate:.1f} s ({t_big / (8 * big_n * big_depth / rate):.2f} x)")


if __name__ == "__main__":
    main()
