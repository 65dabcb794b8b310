"""Benchmark of meanfield.parallel: the simulation engine on D devices against 1, work per device constant.

    python experiments/bench_parallel.py                # 4 devices (forced host devices on a CPU)
    python experiments/bench_parallel.py --devices 2

Both runs are in this process and take turns (best of ``--repeats``): 1 device samples ``--nets``
networks, D devices sample D x ``--nets`` networks (tanh FRN, width ``--width``, depth ``--depth``,
forward + backward, float32). Printed: both wall times, the weak-scaling efficiency t_1 / t_D (1.0 is
perfect) and the throughput ratio D t_1 / t_D. On a CPU the D devices are forced host devices that share
the machine's cores, so the throughput ratio is bounded by the number of cores; on D GPUs or TPU chips
it is bounded by D.
"""

from __future__ import annotations

import argparse
import math
import os
import time


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=4, help="devices to shard over (default 4)")
    parser.add_argument("--nets", type=int, default=8, help="networks per device, at least 2 (default 8)")
    parser.add_argument("--width", type=int, default=1024, help="width N (default 1024)")
    parser.add_argument("--depth", type=int, default=50, help="depth L (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    args = parser.parse_args(argv)
    for name, low in (("devices", 1), ("nets", 2), ("width", 1), ("depth", 1), ("repeats", 1)):
        if getattr(args, name) < low:  # the simulator's standard errors need 2 networks per call
            parser.error(f"--{name} must be an integer >= {low}, got {getattr(args, name)}")
    flag = f"--xla_force_host_platform_device_count={args.devices}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}"

    import jax

    import meanfield as mf

    devices = jax.devices()
    if len(devices) < args.devices:
        parser.error(f"--devices {args.devices}: only {len(devices)} {devices[0].platform} devices are visible")
    spec = mf.Spec("frn", "tanh", args.depth, sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5)
    key = jax.random.key(0)
    runs = {1: devices[:1], args.devices: devices[:args.devices]}

    def run(d):
        return mf.simulate.networks(spec, args.width, d * args.nets, key, mesh=runs[d])

    for d in runs:  # compile and warm
        run(d)
    best = {d: math.inf for d in runs}
    for _ in range(args.repeats):
        for d in runs:
            t0 = time.perf_counter()
            run(d)
            best[d] = min(best[d], time.perf_counter() - t0)
    t1, td = best[1], best[args.devices]
    print(f"{devices[0].platform} ({devices[0].device_kind}), {os.cpu_count()} cores, jax {jax.__version__}; "
          f"tanh FRN, width {args.width}, depth {args.depth}, fast sampler, forward + backward, float32")
    print(f"1 device : {args.nets:5d} networks in {t1:.3f} s")
    print(f"{args.devices} devices: {args.devices * args.nets:5d} networks in {td:.3f} s")
    print(f"weak-scaling efficiency t_1 / t_{args.devices} = {t1 / td:.2f}; throughput ratio "
          f"{args.devices} t_1 / t_{args.devices} = {args.devices * t1 / td:.2f}")


if __name__ == "__main__":
    main()
