"""What defines a sweep, without jax: training settings, the grid of a sweep, and their validation.

Kept free of jax (numpy only) so that the command line checks every flag in a fraction of a second,
before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from ..blocks import WIDTHS, get_block
from ..spec import ARCHS, DEPTH_SCALES, NEUTRAL, Spec, branch_scale_at, unused_variances

#: Initialization presets of ``--init``. ``spec`` uses the variances given on the command line.
#: ``he``: W and V with 2 / fan_in (He et al. 2015), i.e. sw2 = sv2 = 2, zero biases (sb2 = sa2 = 0).
#: ``xavier``: W and V with 2 / (fan_in + fan_out) = 1 / N for the square N x N maps, i.e. sw2 = sv2 = 1,
#: zero biases. The embedding and readout are the same in every preset.
INIT_PRESETS = {
    "he": {"sw2": 2.0, "sv2": 2.0, "sb2": 0.0, "sa2": 0.0},
    "xavier": {"sw2": 1.0, "sv2": 1.0, "sb2": 0.0, "sa2": 0.0},
}


#: The columns of results.csv. The gate's sg2 and gate_bias come last: they were added after the others, so
#: an older file's columns are the first :data:`COLUMNS_WITHOUT_GATE` and its rows read with their neutral
#: values (sg2 = 1, gate_bias = 0; :data:`~meanfield.spec.NEUTRAL`).
COLUMNS = ("arch", "act", "readout", "alpha", "sw2", "sv2", "sb2", "sa2", "lr", "depth", "width", "seed",
           "epochs", "train_acc", "val_acc", "test_acc", "test_loss", "diverged", "seconds", "sg2", "gate_bias")
GATE_COLUMNS = ("sg2", "gate_bias")
COLUMNS_WITHOUT_GATE = COLUMNS[:-len(GATE_COLUMNS)]
VALUE_AXES = ("alpha", "sw2", "sv2", "sb2", "sa2", "sg2", "gate_bias", "lr")
#: The learning rates every cell is trained at unless a sweep names others: half-decades around the
#: rate at which SGD with momentum 0.9 trains a shallow residual MLP of width 64 on MNIST.
DEFAULT_LRS = (1e-3, 10**-2.5, 1e-2)
#: Bootstrap replicates (seeds resampled within every cell) of the analysis' 95% intervals.
BOOTSTRAP = 1000
#: ``linear``: logits = W_out x^(L) + b_out; ``meanfield``: logits = W_out x^(L) / sqrt(p^(L)) + b_out
#: with p^(L) from the theory (:func:`~meanfield.train.predictors.readout_scale`).
READOUTS = ("linear", "meanfield")

OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters shared by every network of a grid.

    The learning rate is not here: each network carries its own
    (:class:`~meanfield.train.model.NetworkSettings`), so that one compiled grid trains a cell at every
    learning rate of a sweep's fixed set (:mod:`meanfield.train.sweep`).

    Args:
      width: N, the width of the residual stream.
      epochs: passes over the training set.
      batch: minibatch size (the last incomplete batch of each epoch is dropped).
      momentum: heavy-ball momentum of SGD (0 for plain SGD; ignored by adam).
      optimizer: ``sgd`` or ``adam``.
      eval_batch: examples per forward pass during evaluation (memory only; results do not depend on it).
    """

    width: int = 128
    epochs: int = 10
    batch: int = 128
    momentum: float = 0.9
    optimizer: str = "sgd"
    eval_batch: int = 1000

    def __post_init__(self):
        for name in ("width", "epochs", "batch", "eval_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (np.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")


class SweepError(ValueError):
    """A sweep cannot start or resume (bad grid, conflicting output directory)."""


def parse_list(text: str, name: str, *, integer: bool = False) -> tuple:
    """``a:b:n`` (n evenly spaced values from a to b inclusive) or a comma list ``x1,x2,...``.

    Depth lists (``integer=True``) must give integers; ``a:b:n`` values are rounded to the nearest
    integer and duplicates dropped.
    """
    text = str(text).strip()
    kind = "integer" if integer else "number"
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise SweepError(f"--{name} {text!r}: a range is a:b:n (start:stop:count)")
            a, b = float(parts[0]), float(parts[1])
            try:
                n = int(parts[2])
            except ValueError:
                raise SweepError(f"--{name} {text!r}: the count n in a:b:n must be an integer >= 1, "
                                 f"got {parts[2]!r}") from None
            if n < 1:
                raise SweepError(f"--{name} {text!r}: the count n in a:b:n must be >= 1, got {n}")
            if not (math.isfinite(a) and math.isfinite(b)):
                raise SweepError(f"--{name} {text!r}: a and b must be finite")
            if b < a:
                raise SweepError(f"--{name} {text!r}: a:b:n needs a <= b")
            if n == 1 and a != b:
                raise SweepError(f"--{name} {text!r}: a single value (n = 1) needs a == b")
            values = [float(v) for v in np.linspace(a, b, n)]
        else:
            values = [float(v) for v in text.split(",") if v.strip() != ""]
            if not values:
                raise SweepError(f"--{name} is empty")
    except ValueError as err:
        if isinstance(err, SweepError):
            raise
        raise SweepError(f"--{name} {text!r}: expected a:b:n or a comma list of {kind}s") from None
    if not all(math.isfinite(v) for v in values):
        raise SweepError(f"--{name} {text!r}: values must be finite")
    if integer:
        if ":" not in text and any(v != round(v) for v in values):
            raise SweepError(f"--{name} {text!r}: values must be integers")
        values = list(dict.fromkeys(int(round(v)) for v in values))
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep's results (written to ``config.json``).

    Args:
      arch, act: a block of :mod:`meanfield.blocks` (``frn``, ``rrn``, ``ff``, ``preact``, ``basic``,
        ``bottleneck``, ``densenet``);
        ``tanh``, ``relu`` or ``alpha_relu``.
      alpha, sw2, sv2, sb2, sa2: value lists (tuples of floats).
      sg2, gate_bias: value lists of a gated block's S and c (``highway``; 1 and 0 for other blocks).
      lr: learning rates (every cell is trained at each).
      readout: ``linear`` or ``meanfield`` (:data:`READOUTS`).
      depth: depths L (tuple of ints).
      seeds: number of seeds per setting (seeds 0..seeds-1).
      train: the training hyperparameters.
      train_subset, test_subset: deterministic subset sizes (None: whole split).
      val_subset: training examples held out for selecting the learning rate (disjoint from the
        training subset; 0: none, then no selection is possible).
      data: None for the packaged MNIST, else the user's path.
      init: ``spec`` (the lists above), ``he`` or ``xavier`` (the preset's variances; see
        :data:`~meanfield.train.model.INIT_PRESETS`).
      zip: names of value axes paired elementwise (equal lengths) instead of crossed.
      branch_scale: kappa of the residual branches, x <- x + kappa branch(x): a number >= 0, or
        ``"1/sqrt(L)"`` / ``"1/L"`` (kappa = L^-1/2 / L^-1 at each depth L of the sweep); 1 for a block
        without a residual branch. One value per sweep (config.json; results.csv has no column for it).
      bottleneck, norm, growth, decay_w, decay_v, decay_b, decay_a, survival: the block's inner width,
        pre-LayerNorm, growth (``densenet``), variance decay exponents and stochastic depth's survival
        probability, as for
        :class:`~meanfield.spec.Spec`; one value each per sweep, like ``branch_scale`` (:meth:`variants`).
    """

    arch: str
    act: str
    depth: tuple
    sw2: tuple = (1.0,)
    sv2: tuple = (1.0,)
    sb2: tuple = (0.0,)
    sa2: tuple = (0.0,)
    sg2: tuple = (1.0,)
    gate_bias: tuple = (0.0,)
    alpha: tuple = (1.0,)
    lr: tuple = DEFAULT_LRS
    readout: str = "linear"
    seeds: int = 1
    train: TrainConfig = TrainConfig()
    train_subset: int | None = None
    test_subset: int | None = None
    val_subset: int = 5000
    data: str | None = None
    init: str = "spec"
    zip: tuple = ()
    branch_scale: object = 1.0
    bottleneck: float | None = None
    norm: str | None = None
    growth: float | None = None
    decay_w: float = 0.0
    decay_v: float = 0.0
    decay_b: float = 0.0
    decay_a: float = 0.0
    survival: float = 1.0

    def variants(self) -> dict:
        """The :class:`~meanfield.spec.Spec` fields of the block's variant: widths, normalization, decays,
        survival."""
        return {k: getattr(self, k) for k in (*WIDTHS, "norm", "decay_w", "decay_v", "decay_b", "decay_a",
                                              "survival")}

    def __post_init__(self):
        kappa = self.branch_scale
        if isinstance(kappa, str):  # a number given as text becomes the number; 1/sqrt(L), 1/L lose spaces
            text = kappa.replace(" ", "")
            object.__setattr__(self, "branch_scale", text if text in DEPTH_SCALES else branch_scale_at(text, 1))
        elif isinstance(kappa, (int, float, np.integer, np.floating)) and not isinstance(kappa, bool):
            object.__setattr__(self, "branch_scale", float(kappa))
        else:
            raise SweepError(f"branch_scale must be a number >= 0 or one of {', '.join(DEPTH_SCALES)}, "
                             f"got {kappa!r}")

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["train"] = dataclasses.asdict(self.train)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @staticmethod
    def from_json(obj: dict) -> "SweepConfig":
        obj = dict(obj)
        obj["train"] = TrainConfig(**obj["train"])
        for k in ("depth", "sw2", "sv2", "sb2", "sa2", "sg2", "gate_bias", "alpha", "lr", "zip"):
            if k in obj:  # a field added since the file was written keeps its default
                obj[k] = tuple(obj[k])
        return SweepConfig(**obj)


def effective(cfg: SweepConfig) -> SweepConfig:
    """The sweep as trained: preset variances applied, unused axes (the variances the block does not use,
    such as V and a of an rrn, and alpha of a non-alpha activation) fixed to the values the network uses
    (:data:`~meanfield.spec.NEUTRAL`: sv2 = 1, sa2 = 0, alpha = 1), and an unset width at its default."""
    changes = {}
    if cfg.init != "spec":
        changes.update({k: (v,) for k, v in INIT_PRESETS[cfg.init].items()})
    changes.update({k: (NEUTRAL[k],) for k in unused_variances(cfg.arch) if k in VALUE_AXES})
    if cfg.act != "alpha_relu":
        changes["alpha"] = (1.0,)
    widths = get_block(cfg.arch).widths if cfg.arch in ARCHS else ()
    changes.update({k: v for k, v in WIDTHS.items() if k in widths and getattr(cfg, k) is None})
    zipped = tuple(a for a in cfg.zip if a not in changes)
    return dataclasses.replace(cfg, zip=zipped if len(zipped) > 1 else (), **changes)


def validate(cfg: SweepConfig) -> None:
    """Every check that can fail before compilation; raises SweepError or ValueError naming the field."""
    if cfg.arch not in ARCHS:
        raise SweepError(f"arch must be one of {', '.join(ARCHS)}, got {cfg.arch!r}")
    if cfg.act not in ("tanh", "relu", "alpha_relu"):
        raise SweepError(f"act must be tanh, relu or alpha_relu, got {cfg.act!r}")
    if cfg.readout not in READOUTS:
        raise SweepError(f"readout must be one of {', '.join(READOUTS)}, got {cfg.readout!r}")
    if not cfg.lr or not all(math.isfinite(v) and v > 0 for v in cfg.lr):
        raise SweepError(f"lr must be finite numbers > 0, got {list(cfg.lr)}")
    if cfg.init not in ("spec", *INIT_PRESETS):
        raise SweepError(f"init must be one of spec, {', '.join(INIT_PRESETS)}; got {cfg.init!r}")
    if isinstance(cfg.seeds, bool) or not isinstance(cfg.seeds, int) or cfg.seeds < 1:
        raise SweepError(f"seeds must be an integer >= 1, got {cfg.seeds!r}")
    for name in ("train_subset", "test_subset"):
        value = getattr(cfg, name)
        limit = 60_000 if name == "train_subset" else 10_000
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit):
            raise SweepError(f"{name.replace('_', '-')} must be an integer in [1, {limit}], got {value!r}")
    v = cfg.val_subset
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 60_000:
        raise SweepError(f"val-subset must be an integer in [0, 59999], got {v!r}")
    if cfg.train_subset is not None and cfg.train_subset + v > 60_000:
        raise SweepError(f"train-subset + val-subset must be <= 60000 (disjoint training and validation "
                         f"examples), got {cfg.train_subset} + {v}")
    if cfg.train_subset is not None and cfg.train.batch > cfg.train_subset:
        raise SweepError(f"batch ({cfg.train.batch}) must be <= train-subset ({cfg.train_subset})")
    unknown = [a for a in cfg.zip if a not in VALUE_AXES]
    if unknown:
        raise SweepError(f"zip names unknown axes {unknown}; choose from {', '.join(VALUE_AXES)}")
    lengths = {a: len(getattr(cfg, a)) for a in cfg.zip}
    if len(set(lengths.values())) > 1:
        raise SweepError(f"zipped lists must have equal lengths, got {lengths}")
    for d in cfg.depth:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise SweepError(f"depth must be integers >= 1, got {d!r}")
    if isinstance(cfg.branch_scale, str) and "branch_scale" in unused_variances(cfg.arch):
        raise SweepError(f"branch_scale applies to residual blocks only: leave it at 1 for arch {cfg.arch}, "
                         f"got {cfg.branch_scale!r}")
    eff = effective(cfg)
    # Spec validates the variances, alpha, the branch scale at every depth and the block's variant (with
    # the field name and allowed range)
    spec = Spec(arch=eff.arch, act=eff.act, depth=1, sw2=np.array(eff.sw2), sv2=np.array(eff.sv2)[:, None],
                sb2=np.array(eff.sb2)[:, None, None], sa2=np.array(eff.sa2)[:, None, None, None],
                alpha=np.array(eff.alpha)[:, None, None, None, None],
                branch_scale=np.reshape([branch_scale_at(eff.branch_scale, d) for d in eff.depth], (-1,) + (1,) * 5),
                sg2=np.reshape(eff.sg2, (-1,) + (1,) * 6), gate_bias=np.reshape(eff.gate_bias, (-1,) + (1,) * 7),
                **eff.variants())
    spec.block.shapes(cfg.train.width)  # every layer of a bottleneck or densenet has units at this width


def settings(cfg: SweepConfig) -> list[dict]:
    """The variance settings of an (effective) sweep: a list of dicts over :data:`VALUE_AXES`."""
    free = [a for a in VALUE_AXES if a not in cfg.zip]
    factors = [[{a: v} for v in getattr(cfg, a)] for a in free]
    if cfg.zip:
        factors.append([dict(zip(cfg.zip, vals)) for vals in zip(*(getattr(cfg, a) for a in cfg.zip))])
    out = []
    for combo in itertools.product(*factors):
        merged = {}
        for part in combo:
            merged.update(part)
        out.append({a: float(merged[a]) for a in VALUE_AXES})
    return out


def cell_value(row: dict, column: str) -> float:
    """A number of a results.csv row; a gate column the row lacks (a file from before them) is neutral."""
    value = row.get(column)
    if column in GATE_COLUMNS and value in (None, ""):
        return NEUTRAL[column]
    return float(value)


def network_key(row: dict) -> tuple:
    """Identity of one network in results.csv (after the string round trip)."""
    return (tuple(cell_value(row, a) for a in VALUE_AXES), int(row["depth"]), int(row["seed"]))


