"""Reading files (h5ad, 10x, bulk tables, GEO series matrices, samples files) and the data registry."""

from __future__ import annotations

from .._lazy import lazy_getattr

_NAMES = {
    "read": "._read",
    "load": "._registry",
    "list_datasets": "._registry",
    "registry_entry": "._registry",
    "fetch": "._fetch",
    "read_samples": "._samples",
    "join_samples": "._samples",
    "check_design_columns": "._samples",
    "read_bulk": "._bulk",
    "read_geo_series_matrix": "._bulk",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__() -> list[str]:
    return __all__
