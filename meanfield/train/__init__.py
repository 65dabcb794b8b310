"""MNIST training sweeps (issue #5): data, the residual MLP, the vmapped grid trainer, sweeps, heatmaps.

    data      MNIST from the packaged zarr store or the user's idx / npz files; scaling; subsets
    model     embedding, L residual blocks (lax.scan over stacked parameters), softmax readout
    trainer   one jitted program trains a grid of variance settings and seeds (vmap, sharded)
    sweep     grids, groups by depth, results.csv / config.json, resume, progress
    heatmap   accuracy heatmaps with the theory's predictors, ridge fit, rank correlation
"""

from .data import MNIST, DataError, load_mnist, subset
from .model import INIT_PRESETS, Variances, apply, init_params
from .sweep import COLUMNS, SweepConfig, SweepError, parse_list, read_results, run_sweep
from .trainer import GridResult, TrainConfig, train_grid, train_sequential

__all__ = [
    "MNIST", "DataError", "load_mnist", "subset",
    "INIT_PRESETS", "Variances", "apply", "init_params",
    "COLUMNS", "SweepConfig", "SweepError", "parse_list", "read_results", "run_sweep",
    "GridResult", "TrainConfig", "train_grid", "train_sequential",
]
