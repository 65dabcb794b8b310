"""MNIST training sweeps: data, the residual MLP, the vmapped grid trainer, sweeps, analysis, figures.

    config     training settings and sweep grids, validated without jax
    data       MNIST from the packaged zarr store or the user's idx / npz files; scaling; subsets
    model      embedding, L residual blocks (lax.scan over stacked parameters), softmax readout
    trainer    one jitted program trains a grid of networks (vmap, sharded over devices)
    sweep      grids, groups by depth, results.csv / config.json, resume, lock, progress
    predictors the theory's predictors (log R, log s^(L), log p^(L)) at the cells of a sweep
    analysis   learning-rate selection, rank correlations, ridge fits, bootstrap intervals
    heatmap    the figures of a sweep

Submodules are imported on first use (PEP 562), so ``import meanfield.train`` does not start jax.
"""

import importlib

_EXPORTS = {
    "MNIST": "data", "DataError": "data", "load_mnist": "data", "subset": "data",
    "INIT_PRESETS": "config", "COLUMNS": "config", "SweepConfig": "config", "SweepError": "config",
    "TrainConfig": "config", "parse_list": "config",
    "NetworkSettings": "model", "apply": "model", "init_params": "model",
    "read_results": "sweep", "results_frame": "sweep", "run_sweep": "sweep",
    "GridResult": "trainer", "train_grid": "trainer", "train_sequential": "trainer",
    "analyze": "analysis", "write_summary": "analysis", "write_figures": "heatmap",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
