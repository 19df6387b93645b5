"""The latent kNN graph kept in obsp: built once, reused where parameters agree, never stale."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from mkcell import _keys as K
from mkcell._graph import knn_graph, neighbors, stored_distances


def _latent(n: int = 300, d: int = 8, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(3, d))
    X = centers[rng.integers(0, 3, n)] + rng.normal(size=(n, d))
    a = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    a.obsm[K.LATENT] = X.astype(np.float32)
    return a


def _same(g1: ad.AnnData, g2: ad.AnnData) -> bool:
    return all((g1.obsp[k] != g2.obsp[k]).nnz == 0 for k in ("connectivities", "distances"))


def test_stored_once_reused_and_identical(builds):
    a = _latent()
    g1 = neighbors(a)
    g2 = neighbors(a)
    assert builds[0] == 1
    assert _same(g1, g2) and _same(g2, knn_graph(a.obsm[K.LATENT], 15, 0))
    assert g2.uns["neighbors"] == g1.uns["neighbors"]
    rec = a.uns[K.NEIGHBORS]
    assert rec["connectivities_key"] == K.CONNECTIVITIES and rec["distances_key"] == K.DISTANCES
    assert rec["params"]["n_neighbors"] == 15 and rec["params"]["use_rep"] == K.LATENT
    assert rec["n_obs"] == a.n_obs and rec["rep_checksum"]
    # the bare graph holds copies: changing it leaves the stored graph alone
    g2.obsp["connectivities"].data[:] = 0
    assert a.obsp[K.CONNECTIVITIES].data.any()


def test_rebuilt_when_rep_or_parameters_change(builds):
    a = _latent()
    neighbors(a)
    a.obsm[K.LATENT] = a.obsm[K.LATENT] * 1.5  # re-integrated
    g = neighbors(a)
    assert builds[0] == 2 and _same(g, knn_graph(a.obsm[K.LATENT], 15, 0))
    neighbors(a, n_neighbors=10)
    assert builds[0] == 3 and a.uns[K.NEIGHBORS]["params"]["n_neighbors"] == 10
    sub = a[:100].copy()  # obsp is sliced along, but it is not the subset's graph
    neighbors(sub, n_neighbors=10)
    assert builds[0] == 4 and sub.uns[K.NEIGHBORS]["n_obs"] == 100


def test_corrected_rows_get_their_own_graph(builds):
    a = _latent()
    neighbors(a)
    X = a.obsm[K.LATENT].copy()
    assert _same(neighbors(a, X, store=False), neighbors(a))
    assert builds[0] == 1  # the same values: the stored graph serves them
    X[:50] += 1.0
    g = neighbors(a, X, store=False)
    assert builds[0] == 2 and _same(g, knn_graph(X, 15, 0))
    assert _same(neighbors(a), knn_graph(a.obsm[K.LATENT], 15, 0))  # stored one untouched
    assert builds[0] == 2


def test_metrics_and_milo_reuse_only_when_k_agrees():
    from mkcell.integrate._metrics import N_NEIGHBORS, _stored_knn, knn
    from mkcell.tl._milo import _knn, _stored_graph

    a = _latent()
    neighbors(a)
    assert stored_distances(a, K.LATENT, 30, what="test") is None
    assert _stored_knn(a, K.LATENT, a.n_obs) is None
    idx = np.arange(a.n_obs)
    dist, conn = _stored_graph(a, idx, K.LATENT, 15)
    d0, c0 = _knn(np.asarray(a.obsm[K.LATENT], dtype=float), 15)
    assert (conn != c0).nnz == 0 and (dist.astype(bool) != d0.astype(bool)).nnz == 0
    np.testing.assert_allclose(dist.toarray(), d0.toarray(), rtol=1e-5, atol=1e-5)
    assert _stored_graph(a, idx[:-1], K.LATENT, 15) is None  # a subset: its own graph
    neighbors(a, n_neighbors=N_NEIGHBORS + 1)
    ours, theirs = _stored_knn(a, K.LATENT, a.n_obs), knn(a.obsm[K.LATENT])
    assert ours.shape == theirs.shape
    assert all(set(r) == set(s) for r, s in zip(ours, theirs, strict=True))
    assert _stored_knn(a, K.LATENT, a.n_obs - 1) is None
