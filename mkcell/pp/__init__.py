"""Preprocessing: ortholog mapping, species concatenation, feature selection."""

from __future__ import annotations

from .._lazy import lazy_getattr

_NAMES = {
    "map_orthologs": "._orthologs",
    "concat_species": "._concat",
    "highly_variable_genes": "._hvg",
    "cycle_scores": "._cycle",
    "qc": "._qc",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__() -> list[str]:
    return __all__
