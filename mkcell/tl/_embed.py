"""2-D embeddings for figures (computed here so that plots only read keys)."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from .. import _keys as K
from .._graph import EXACT_MAX_CELLS, neighbors
from .._settings import MkcellError
from .._utils import log_write


def umap(
    adata: AnnData,
    *,
    use_rep: str = K.LATENT,
    n_neighbors: int = 15,
    seed: int = 0,
    key_added: str = K.UMAP,
    copy: bool = False,
) -> AnnData | None:
    """UMAP of ``obsm[use_rep]`` into ``obsm[key_added]`` (for :func:`mkcell.pl.embedding`).

    Reuses the kNN graph in ``obsp['mk_connectivities']`` (from :func:`mkcell.tl.annotate`)
    when it was built with the same ``use_rep``, ``n_neighbors`` and ``seed``; else builds
    and keeps it there. ``copy=True`` returns a changed copy instead of writing into
    ``adata``.

    The layout starts from UMAP's spectral embedding of the graph up to
    :data:`mkcell._graph.EXACT_MAX_CELLS` cells; above, from the first two principal
    components of ``obsm[use_rep]`` (scaled as UMAP scales its own start), because the
    spectral start's eigensolver took over 5 minutes and most of the stage's memory at
    1M cells.
    """
    import scanpy as sc

    if use_rep not in adata.obsm:
        msg = f"no `adata.obsm[{use_rep!r}]`; run mk.integrate.scvi(adata) first"
        raise MkcellError(msg)
    adata = adata.copy() if copy else adata
    g = neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors, seed=seed)
    init = "spectral" if adata.n_obs <= EXACT_MAX_CELLS else _pca_start(g.obsm["rep"])
    sc.tl.umap(g, random_state=seed, init_pos=init)
    adata.obsm[key_added] = g.obsm["X_umap"].astype(np.float32)
    log_write("obsm", key_added)
    return adata if copy else None


def _pca_start(X: np.ndarray) -> np.ndarray:
    """The first two principal components of ``X``, scaled to a span of 10 (UMAP's start)."""
    Xc = X - X.mean(0)
    _, _, vt = np.linalg.svd(Xc[:: max(1, len(Xc) // 100_000)], full_matrices=False)
    pcs = Xc @ vt[:2].T
    return (10 * pcs / np.abs(pcs).max()).astype(np.float32)
