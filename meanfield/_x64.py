"""Float64 scoped to one call: the engines' public entry points run inside :func:`float64`.

The theory engine is exact to ~1e-10 only in float64 (docs/architecture.md, "Numerics"), but a library
must not switch a user's whole process to 64-bit: ``jax_enable_x64`` stays as the user set it outside
these calls, and results leave them as numpy arrays, so their dtype does not depend on it.
"""

from __future__ import annotations

import contextlib
import functools


def float64() -> contextlib.AbstractContextManager:
    """A context in which JAX computes in float64 (``jax.enable_x64``; ``jax.experimental`` before 0.8)."""
    import jax

    scoped = getattr(jax, "enable_x64", None)
    if scoped is not None:
        return scoped(True)
    from jax.experimental import enable_x64

    return enable_x64()


def in_float64(fn):
    """Decorator: run ``fn`` inside :func:`float64`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with float64():
            return fn(*args, **kwargs)

    return wrapper
