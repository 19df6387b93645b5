"""Plots; none writes into the AnnData.

Most draw what mk.tl / mk.integrate wrote (obsm, obs, uns) and compute only what drawing
needs: histograms of pseudotime (``pseudotime_density``), 2-D densities
(``reference_map``). ``e2f_heatmap`` draws ``mk.tl.e2f_clusters``' result, or takes a
samples x genes table and z-scores and clusters it itself.
"""

from __future__ import annotations

from .._lazy import lazy_getattr

_NAMES = {
    "embedding": "._embedding",
    "pool": "._pool",
    "qc": "._qc",
    "pseudotime_density": "._maturation",
    "score_trends": "._score_trends",
    "e2f_heatmap": "._gsea",
    "associations": "._associations",
    "gsea": "._enrichment",
    "da_neighbourhoods": "._milo",
    "reference_map": "._map",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__() -> list[str]:
    return __all__
