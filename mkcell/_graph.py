"""One kNN graph builder for every step that needs one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData


def knn_graph(X: np.ndarray, n_neighbors: int = 15, seed: int = 0) -> AnnData:
    """A bare AnnData holding the scanpy kNN graph (UMAP connectivities) of the rows of ``X``.

    Exact neighbours from scikit-learn (fast in a 10-30 dimensional latent space, no
    pynndescent), sparse connectivities and distances in ``obsp``.
    """
    import scanpy as sc

    g = AnnData(obs=pd.DataFrame(index=pd.RangeIndex(X.shape[0]).astype(str)))
    g.obsm["rep"] = np.asarray(X, dtype=np.float32)
    k = int(min(n_neighbors, X.shape[0] - 1))
    sc.pp.neighbors(g, n_neighbors=k, use_rep="rep", transformer="sklearn", random_state=seed)
    return g


def knn_query(
    reference: np.ndarray, query: np.ndarray, n_neighbors: int = 15, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest reference rows of each query row (the same scikit-learn search as :func:`knn_graph`).

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
