"""Cross-species integration (scVI / SysVI) and its quality metrics."""

from __future__ import annotations

from .._lazy import lazy_getattr

_NAMES = {
    "scvi": "._scvi",
    "metrics": "._metrics",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__() -> list[str]:
    return __all__
