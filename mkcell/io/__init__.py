"""Reading files (h5ad, 10x) and the checksummed data registry."""

from __future__ import annotations

from .._lazy import lazy_getattr

_NAMES = {
    "read": "._read",
    "load": "._registry",
    "list_datasets": "._registry",
    "registry_entry": "._registry",
    "fetch": "._fetch",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__() -> list[str]:
    return __all__
