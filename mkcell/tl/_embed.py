"""2-D embeddings for figures (computed here so that plots only read keys)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._graph import EXACT_MAX_CELLS, neighbors
from .._settings import MkcellError, logger
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

    The layout starts from UMAP's spectral embedding of the graph (the two smallest
    non-trivial eigenvectors of its normalised Laplacian) up to
    :data:`mkcell._graph.EXACT_MAX_CELLS` cells, solved with LOBPCG (:func:`_spectral_start`)
    rather than UMAP's Lanczos solver, which keeps sqrt(cells) vectors (0.7 GB and 42 s at
    200k cells; LOBPCG: 0.03 GB and 13 s, the same vectors). Above, the start is the first
    two principal components of ``obsm[use_rep]`` (scaled as UMAP scales its own start):
    at 1M cells the spectral start took over 5 minutes.
    """
    import scanpy as sc

    if use_rep not in adata.obsm:
        msg = f"no `adata.obsm[{use_rep!r}]`; run mk.integrate.scvi(adata) first"
        raise MkcellError(msg)
    adata = adata.copy() if copy else adata
    g = neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors, seed=seed)
    if adata.n_obs <= EXACT_MAX_CELLS:
        init = _spectral_start(g.obsp["connectivities"], seed)
    else:
        init = _pca_start(g.obsm["rep"])
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


def _spectral_start(conn: sp.spmatrix, seed: int) -> np.ndarray | str:
    """UMAP's spectral start of a connected graph, by LOBPCG, scaled as UMAP scales it.

    UMAP first drops the graph's weakest edges (below the largest weight over its number
    of epochs: 200 above 10,000 cells, else 500), as done here. A graph in several
    pieces, or a solve that does not converge, gets ``"spectral"``: UMAP's own start.
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import lobpcg

    n = conn.shape[0]
    graph = sp.csr_matrix(conn, dtype=np.float64, copy=True)
    graph.data[graph.data < graph.data.max() / (200 if n > 10_000 else 500)] = 0.0
    graph.eliminate_zeros()
    if n < 10 or connected_components(graph, directed=False)[0] > 1:
        return "spectral"
    sqrt_deg = np.sqrt(np.asarray(graph.sum(0)).ravel())
    inv = sp.diags(1.0 / sqrt_deg)
    laplacian = sp.identity(n, format="csr") - inv @ graph @ inv
    start = np.random.default_rng(seed).normal(size=(n, 3))
    start[:, 0] = sqrt_deg / np.linalg.norm(sqrt_deg)  # the trivial eigenvector, exactly
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"(?ms).*not reaching the requested tolerance")
        try:
            values, vectors = lobpcg(laplacian, start, largest=False, tol=1e-4, maxiter=5 * n)
        except (UserWarning, np.linalg.LinAlgError):
            logger.info("the LOBPCG spectral start did not converge: UMAP's own start is used")
            return "spectral"
    layout = vectors[:, np.argsort(values)[1:3]]
    return (10.0 * layout / np.abs(layout).max()).astype(np.float32)
