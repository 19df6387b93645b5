"""One kNN graph builder for every step that needs one, and the latent graph kept in ``obsp``.

:func:`neighbors` builds the kNN graph of the integrated space once and keeps it in
``adata.obsp['mk_connectivities']`` / ``['mk_distances']`` with a scanpy-style record in
``adata.uns['mk_neighbors']`` (``connectivities_key``, ``distances_key``, ``params``,
``n_obs`` and a checksum of the representation), so annotation, UMAP and the other steps
whose parameters agree reuse it; a re-integrated representation or other cells rebuild it.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from . import _keys as K
from ._settings import logger
from ._utils import log_write

#: Up to this many cells the kNN search is exact (a scikit-learn k-d tree); above it,
#: approximate (pynndescent, scanpy's default). Measured on 2 cores: exact 13 s at 100k
#: cells of an scVI latent space (recall 1), but over 10 min at 1M; pynndescent 21 s at
#: 100k with recall 0.9999 against the exact neighbours, and about n^1.1 beyond.
EXACT_MAX_CELLS = 200_000


def knn_graph(X: np.ndarray, n_neighbors: int = 15, seed: int = 0) -> AnnData:
    """A bare AnnData holding the scanpy kNN graph (UMAP connectivities) of the rows of ``X``.

    Neighbours are exact (a scikit-learn k-d tree) up to :data:`EXACT_MAX_CELLS` rows and
    approximate above (pynndescent, seeded), searched on every core the process may use
    (its CPU affinity: Slurm's allocation on a cluster). Sparse connectivities and
    distances in ``obsp``, in scanpy's convention: ``distances`` holds each cell's
    ``n_neighbors - 1`` nearest other cells.
    """
    import scanpy as sc
    from sklearn.neighbors import KNeighborsTransformer

    g = AnnData(obs=pd.DataFrame(index=pd.RangeIndex(X.shape[0]).astype(str)))
    g.obsm["rep"] = np.asarray(X, dtype=np.float32)
    k = int(min(n_neighbors, X.shape[0] - 1))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if X.shape[0] <= EXACT_MAX_CELLS:
        search = KNeighborsTransformer(
            n_neighbors=k, algorithm="kd_tree", metric="euclidean", n_jobs=cores
        )
        sc.pp.neighbors(g, use_rep="rep", transformer=search, random_state=seed)
    else:
        with _scanpy_jobs(cores):
            sc.pp.neighbors(
                g, n_neighbors=k, use_rep="rep", transformer="pynndescent", random_state=seed
            )
    g.obsp["distances"] = _nearest_others(g.obsp["distances"], k - 1)
    return g


@contextlib.contextmanager
def _scanpy_jobs(n: int) -> Iterator[None]:
    """Set scanpy's ``settings.n_jobs`` to ``n`` inside the block (its pynndescent reads it)."""
    import scanpy as sc

    before = sc.settings.n_jobs
    sc.settings.n_jobs = n
    try:
        yield
    finally:
        sc.settings.n_jobs = before


def _nearest_others(D: sp.spmatrix, m: int) -> sp.csr_matrix:
    """Each row's ``m`` nearest entries other than the cell itself (scanpy's distances)."""
    D = sp.coo_matrix(D)
    other = D.row != D.col
    row, col, dist = D.row[other], D.col[other], D.data[other]
    order = np.lexsort((dist, row))
    row, col, dist = row[order], col[order], dist[order]
    starts = np.searchsorted(row, np.arange(D.shape[0]))
    keep = (np.arange(row.size) - starts[row]) < m
    return sp.csr_matrix((dist[keep], (row[keep], col[keep])), shape=D.shape)


def knn_query(
    reference: np.ndarray, query: np.ndarray, n_neighbors: int = 15, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest reference rows of each query row (the search of :func:`knn_graph`).

    Parameters
    ----------
    reference, query
        Rows to search in and rows to search for.
    n_neighbors
        Neighbours per query row (at most the reference's rows).
    exclude_self
        ``query`` is ``reference``: leave each row out of its own neighbours.

    Returns
    -------
    ``(distances, indices)``, each ``n_query x k``, nearest first.
    """
    from sklearn.neighbors import NearestNeighbors

    ref = np.asarray(reference, dtype=np.float32)
    k = int(min(n_neighbors, ref.shape[0] - int(exclude_self)))
    nn = NearestNeighbors(n_neighbors=k + int(exclude_self)).fit(ref)
    dist, idx = nn.kneighbors(np.asarray(query, dtype=np.float32))
    if exclude_self:
        dist, idx = dist[:, 1:], idx[:, 1:]
    return dist, idx


def rep_checksum(X: np.ndarray) -> str:
    """Shape and CRC-32 of a representation as float32 (one pass; changes when any value does)."""
    a = np.ascontiguousarray(X, dtype=np.float32)
    return f"{a.shape[0]}x{a.shape[1] if a.ndim > 1 else 1}:{zlib.crc32(a.view(np.uint8)):08x}"


def _bare(X: np.ndarray, conn: sp.spmatrix, dist: sp.spmatrix, params: dict) -> AnnData:
    """The AnnData :func:`knn_graph` returns, from a stored graph (no neighbour search).

    The matrices are copies (small: about ``k`` entries per cell), so that no later step
    can alter the stored graph.
    """
    g = AnnData(obs=pd.DataFrame(index=pd.RangeIndex(X.shape[0]).astype(str)))
    g.obsm["rep"] = np.asarray(X, dtype=np.float32)
    g.obsp["connectivities"], g.obsp["distances"] = conn.copy(), dist.copy()
    g.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {**params, "use_rep": "rep"},
    }
    return g


def _stored_params(n_obs: int, use_rep: str, n_neighbors: int, seed: int) -> dict:
    k = int(min(n_neighbors, n_obs - 1))
    return {
        "n_neighbors": k,
        "method": "umap",
        "random_state": seed,
        "metric": "euclidean",
        "use_rep": use_rep,
    }


#: Parameters that must agree for the stored graph to serve a call.
_AGREE = ("n_neighbors", "use_rep", "method", "random_state")


def _mismatch(
    adata: AnnData, checksum: str, n_obs: int, want: dict, keys: tuple[str, ...] = _AGREE
) -> str | None:
    """Why the stored graph cannot serve these rows with ``want`` (None: it can)."""
    rec = adata.uns.get(K.NEIGHBORS)
    if not isinstance(rec, dict) or not {K.CONNECTIVITIES, K.DISTANCES} <= set(adata.obsp):
        return "no stored graph"
    params = rec.get("params", {})
    for key in keys:
        if str(params.get(key)) != str(want[key]):
            return f"{key}={want[key]!r}, the stored graph has {params.get(key)!r}"
    if int(rec.get("n_obs", -1)) != n_obs:
        return f"{n_obs} cells, the stored graph has {rec.get('n_obs')}"
    if str(rec.get("rep_checksum")) != checksum:
        return "other coordinates than the stored graph's (a changed or corrected representation)"
    return None


def neighbors(
    adata: AnnData,
    X: np.ndarray | None = None,
    *,
    use_rep: str = K.LATENT,
    n_neighbors: int = 15,
    seed: int = 0,
    store: bool = True,
) -> AnnData:
    """The kNN graph of ``obsm[use_rep]`` (:func:`knn_graph`), reused from ``obsp`` when it agrees.

    The stored graph serves a call when ``n_neighbors`` (capped at the cells - 1),
    ``use_rep``, ``seed``, the number of cells and the coordinates (:func:`rep_checksum`)
    all agree; otherwise a graph is built (and said so in a debug log).

    Parameters
    ----------
    adata
        Cells with ``obsm[use_rep]``.
    X
        The rows to connect when they may differ from ``obsm[use_rep]`` (a corrected copy):
        the stored graph serves them only when they hold the same values.
    use_rep, n_neighbors, seed
        As :func:`knn_graph`.
    store
        Keep a newly built graph of ``obsm[use_rep]`` itself in ``obsp['mk_connectivities']``
        / ``['mk_distances']`` and ``uns['mk_neighbors']``, replacing a stale one.

    Returns
    -------
    A bare AnnData with the graph in ``obsp`` (as :func:`knn_graph`).
    """
    rep = np.asarray(adata.obsm[use_rep])
    X = rep if X is None else np.asarray(X)
    checksum = rep_checksum(X)
    want = _stored_params(X.shape[0], use_rep, n_neighbors, seed)
    why = _mismatch(adata, checksum, X.shape[0], want)
    if why is None:
        logger.debug("reusing the kNN graph `adata.obsp[%r]`", K.CONNECTIVITIES)
        params = {k: v for k, v in want.items() if k != "use_rep"}
        return _bare(X, adata.obsp[K.CONNECTIVITIES], adata.obsp[K.DISTANCES], params)
    g = knn_graph(X, n_neighbors, seed)
    is_rep = X is rep or (X.shape == rep.shape and checksum == rep_checksum(rep))
    if store and is_rep:
        logger.debug("built the kNN graph of `adata.obsm[%r]` (%s)", use_rep, why)
        _store(adata, g, want, checksum)
    else:
        logger.debug("built a separate kNN graph, not the stored one (%s)", why)
    return g


def stored_distances(
    adata: AnnData, use_rep: str, n_neighbors: int, *, what: str
) -> sp.csr_matrix | None:
    """The stored graph's kNN distances when it was built on ``obsm[use_rep]`` with ``n_neighbors``.

    For steps that need exact neighbours of all cells but no connectivities (Milo, the
    integration metrics). Each row holds the ``n_neighbors - 1`` nearest other cells
    (scanpy's convention). ``None``, with the reason in a debug log, when the graph does
    not agree; ``what`` names the step in that log.
    """
    rep = np.asarray(adata.obsm[use_rep])
    want = _stored_params(rep.shape[0], use_rep, n_neighbors, 0)
    why = _mismatch(adata, rep_checksum(rep), rep.shape[0], want, ("n_neighbors", "use_rep"))
    if why is not None:
        logger.debug("%s builds its own kNN graph (%s)", what, why)
        return None
    logger.debug("%s reuses the kNN distances `adata.obsp[%r]`", what, K.DISTANCES)
    return sp.csr_matrix(adata.obsp[K.DISTANCES], copy=True)


def _store(adata: AnnData, g: AnnData, params: dict, checksum: str) -> None:
    adata.obsp[K.CONNECTIVITIES] = g.obsp["connectivities"]
    adata.obsp[K.DISTANCES] = g.obsp["distances"]
    adata.uns[K.NEIGHBORS] = {
        "connectivities_key": K.CONNECTIVITIES,
        "distances_key": K.DISTANCES,
        "params": params,
        "n_obs": int(g.n_obs),
        "rep_checksum": checksum,
    }
    for key in (K.CONNECTIVITIES, K.DISTANCES):
        log_write("obsp", key)
    log_write("uns", K.NEIGHBORS)
