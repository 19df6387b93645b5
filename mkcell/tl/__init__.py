"""Tools: states, trajectory, cell-cycle and gene-set scores, progenitor pool, reference mapping."""

from __future__ import annotations

from .._lazy import lazy_getattr

_NAMES = {
    "annotate": "._annotate",
    "read_labels": "._labels",
    "read_label_map": "._labels",
    "umap": "._embed",
    "trajectory": "._trajectory",
    "score": "._score",
    "score_trends": "._score_trends",
    "compare_scores": "._compare",
    "gsea": "._gsea",
    "pseudobulk": "._gsea",
    "pseudobulk_de": "._compare",
    "progenitor_pool": "._pool",
    "map_to_reference": "._map",
    "pool_vs_reference": "._map",
    "load_reference": "._reference",
    "write_reference": "._reference",
    "maturation_shift": "._maturation",
    "composition": "._composition",
    "associate": "._associate",
    "e2f_clusters": "._e2f_clusters",
    "da_neighbourhoods": "._milo",
    "endomitosis": "._endomitosis",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__() -> list[str]:
    return __all__
