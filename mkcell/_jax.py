"""Keep JAX's global 64-bit switch as each library needs it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def jax_x64(enabled: bool) -> Iterator[None]:
    """Set ``jax_enable_x64`` for the block and restore the previous value after.

    ``import pertpy`` switches JAX to 64-bit globally, which breaks scib-metrics'
    LISI / k-means (``while_loop`` dtype errors); scib-metrics needs ``False``.
    """
    try:
        import jax
    except ImportError:  # no JAX: nothing to set
        yield
        return
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)
