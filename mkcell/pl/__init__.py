"""Plots; they read keys written by mk.tl / mk.integrate and never compute."""

from __future__ import annotations

from .._lazy import lazy_getattr

_NAMES = {
    "embedding": "._embedding",
    "pool": "._pool",
    "pseudotime_density": "._maturation",
    "score_trends": "._score_trends",
    "e2f_heatmap": "._gsea",
    "da_neighbourhoods": "._milo",
    "reference_map": "._map",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__() -> list[str]:
    return __all__
