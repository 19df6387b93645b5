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
