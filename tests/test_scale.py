"""Issue 18 (atlas scale): the memory and speed changes give the same results as before.

Each check compares the scalable code with the plain computation it replaced: the chunked
species thinning with the COO version, the k-d tree kNN graph with scanpy's brute-force
one, the pseudotime kernel with CellRank's ``compute_transition_matrix``; and stage files
hold the counts once.
"""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mkcell import _keys as K
from mkcell._graph import knn_graph
from mkcell._utils import read_h5ad_stage, write_h5ad_atomic
from mkcell.integrate import _scvi
from mkcell.integrate._scvi import equalize_species


def _coo_thinning(counts, species, seed=0, groups=None):
    """The whole-matrix version equalize_species replaced (COO over every non-zero)."""
    X = sp.csr_matrix(counts, dtype=np.float32)
    names = np.unique(species)
    lib = np.asarray(X.sum(1)).ravel()
    lib[lib == 0] = 1
    Xn = sp.csr_matrix(sp.diags(1e4 / lib) @ X)

    def log_ratio(mask):
        a, b = (np.asarray(Xn[mask & (species == s)].mean(0)).ravel() + 1e-3 for s in names)
        return np.log(a / b)

    shared = [] if groups is None else [g for g in np.unique(groups) if g != "other"]
    ratio = (
        np.exp(np.mean([log_ratio(groups == g) for g in shared], axis=0))
        if shared
        else np.exp(log_ratio(np.ones(len(species), bool)))
    )
    coo = X.tocoo()
    first = species[coo.row] == names[0]
    p = np.where(first, np.minimum(1, 1 / ratio[coo.col]), np.minimum(1, ratio[coo.col]))
    data = np.random.default_rng(seed).binomial(np.round(coo.data).astype(np.int64), p)
    out = sp.csr_matrix((data.astype(np.float32), (coo.row, coo.col)), shape=X.shape)
    out.eliminate_zeros()
    return out, ratio


def _counts(n=900, g=40, seed=1):
    rng = np.random.default_rng(seed)
    X = sp.random(n, g, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    X.data = rng.poisson(4, X.nnz).astype(np.float32) + 1
    species = np.where(rng.random(n) < 0.6, "mouse", "human")
    groups = rng.choice(["A", "B", "other"], n)  # every group has >= MIN_STATE_CELLS per species
    return X, species, groups


@pytest.mark.parametrize("with_groups", [False, True])
@pytest.mark.parametrize("chunk", [7, 50_000])
def test_chunked_thinning_is_the_coo_thinning(monkeypatch, with_groups, chunk):
    X, species, groups = _counts()
    before = X.copy()
    monkeypatch.setattr(_scvi, "THIN_CHUNK_ROWS", chunk)
    g = groups if with_groups else None
    out, ratio = equalize_species(X, species, seed=3, groups=g)
    ref, ref_ratio = _coo_thinning(X, species, seed=3, groups=g)
    assert np.array_equal(ratio, ref_ratio)
    assert out.dtype == np.float32 and out.has_canonical_format
    for k in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(out, k), getattr(ref, k)), k
    assert (X != before).nnz == 0  # the input is left alone


def test_thinning_keeps_integer_dtype():
    X, species, _ = _counts()
    out, _ = equalize_species(X.astype(np.int32), species, seed=0)
    ref, _ = equalize_species(X, species, seed=0)
    assert out.dtype == np.int32 and (out != ref).nnz == 0


def _with_counts(n=60, g=12):
    X = sp.random(n, g, density=0.4, format="csr", random_state=0, dtype=np.float32)
    X.data = np.ceil(X.data * 5)
    a = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    a.layers[K.COUNTS] = X.copy()
    return a


def test_stage_files_hold_the_counts_once(tmp_path):
    a = _with_counts()
    values = a.X.copy()
    write_h5ad_atomic(a, tmp_path / "s.h5ad", counts_once=True)
    # the object now holds one matrix too, as a resumed run reads it
    assert a.X is a.layers[K.COUNTS] and (a.X != values).nnz == 0
    assert K.X_IS_COUNTS not in a.uns
    with h5py.File(tmp_path / "s.h5ad") as f:
        assert "X" not in f and "counts" in f["layers"]
    b = read_h5ad_stage(tmp_path / "s.h5ad")
    assert b.X is b.layers[K.COUNTS] and (b.X != a.X).nnz == 0
    assert K.X_IS_COUNTS not in b.uns
    plain = ad.read_h5ad(tmp_path / "s.h5ad")  # other readers still find the counts
    assert (plain.layers[K.COUNTS] != a.X).nnz == 0


def test_files_for_users_and_other_x_keep_both(tmp_path):
    a = _with_counts()
    write_h5ad_atomic(a, tmp_path / "user.h5ad")  # counts_once is for stage files only
    a.X = a.X * 2  # X is no longer the counts
    write_h5ad_atomic(a, tmp_path / "other.h5ad", counts_once=True)
    for name in ("user.h5ad", "other.h5ad"):
        with h5py.File(tmp_path / name) as f:
            assert "X" in f and "counts" in f["layers"], name
    b = read_h5ad_stage(tmp_path / "other.h5ad")
    assert b.X is not b.layers[K.COUNTS] and (b.X != a.X).nnz == 0


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("subset", [False, True])
def test_row_blocks_give_the_whole_matrix_results(monkeypatch, dense, subset):
    from mkcell import _blocks

    monkeypatch.setattr(_blocks, "ROW_BLOCK", 7)  # many blocks, the last one short
    X, _, _ = _counts(n=101, g=13)
    X = X.toarray() if dense else X
    rows = np.random.default_rng(0).choice(101, 40, replace=False) if subset else None
    whole = X[rows] if subset else X
    ref = (whole.toarray() if sp.issparse(whole) else whole).astype(np.float64)
    mean, var = _blocks.column_mean_var(X, rows)
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, ref.var(0), rtol=1e-9, atol=1e-12)
    W = np.random.default_rng(1).normal(size=(13, 3))
    # each row of a product is its own: the blocks give the one product's values exactly
    np.testing.assert_array_equal(_blocks.matmul(X, W, rows), np.asarray(whole @ W))
    v = np.random.default_rng(2).normal(size=ref.shape[0])
    np.testing.assert_allclose(_blocks.rmatmul(X, v, rows), ref.T @ v, rtol=1e-12)


def test_profile_correlation_from_sparse_rows_is_pearsons(monkeypatch):
    from mkcell import _blocks
    from mkcell.tl._reference import log_profiles, profile_corr

    monkeypatch.setattr(_blocks, "ROW_BLOCK", 9)
    X, _, _ = _counts(n=60, g=25)
    X = X.tolil()
    X[3] = 0  # a cell without counts: no variance, correlation 0
    X[5] = 2  # a constant cell: no variance either
    E = log_profiles(sp.csr_matrix(X), np.arange(0, 25, 2))
    p = np.random.default_rng(3).gamma(2, size=E.shape[1])
    rows = np.arange(0, 60, 2)
    dense = E.toarray().astype(np.float64)[rows]
    want = np.array([np.corrcoef(r, p)[0, 1] if r.std() > 0 else 0.0 for r in dense])
    np.testing.assert_allclose(profile_corr(E, p, rows), want, rtol=1e-9, atol=1e-12)
    assert profile_corr(E, np.ones(E.shape[1])).tolist() == [0.0] * 60  # a flat profile


def test_panel_and_cycle_scores_of_rows_are_those_of_the_subset():
    from mkcell._markers import panel_scores
    from mkcell.datasets import simulate_marrow
    from mkcell.pp._cycle import scores_from_lognorm
    from mkcell.pp._normalize import log_normalize

    a = simulate_marrow(n_cells=600, n_genes=800, seed=3)["mouse"]
    X = log_normalize(a)
    rows = np.sort(np.random.default_rng(0).choice(a.n_obs, a.n_obs // 2, replace=False))
    sub = a[rows].copy()
    got, used = panel_scores(a, X, rows=rows)
    want, used_sub = panel_scores(sub, X[rows])
    assert used == used_sub and list(got.index) == list(sub.obs_names)
    pd.testing.assert_frame_equal(got, want, rtol=1e-10)
    pd.testing.assert_frame_equal(
        scores_from_lognorm(a, X, seed=4, rows=rows),
        scores_from_lognorm(sub, X[rows], seed=4),
        rtol=1e-10,
    )


def test_log_normalised_cache_shares_the_counts_index_arrays():
    from mkcell.pp._normalize import log_normalize, log_normalize_matrix

    X, _, _ = _counts()
    a = ad.AnnData(X=X.copy())
    a.layers[K.COUNTS] = X
    L = log_normalize(a)
    assert np.shares_memory(L.indices, X.indices) and np.shares_memory(L.indptr, X.indptr)
    assert not np.shares_memory(L.data, X.data) and L.dtype == np.float32
    unsorted = sp.csr_matrix(X)
    unsorted.indices[:2] = unsorted.indices[1::-1].copy()  # not canonical: a full copy
    unsorted.has_sorted_indices = False
    U = log_normalize_matrix(unsorted)
    assert not np.shares_memory(U.indices, unsorted.indices)
    np.testing.assert_array_equal(U.data, L.data)  # the same values either way


def test_lobpcg_spectral_start_is_umaps():
    import umap.spectral
    from sklearn.neighbors import kneighbors_graph

    from mkcell.tl._embed import _spectral_start

    rng = np.random.default_rng(0)
    pts = np.vstack([rng.normal(size=(1500, 5)), rng.normal(size=(1500, 5)) + [2, 0, 0, 0, 0]])
    knn = kneighbors_graph(pts, 15, mode="connectivity")
    conn = sp.csr_matrix(knn.maximum(knn.T), dtype=np.float32)
    conn.data = rng.uniform(0.2, 1.0, conn.nnz).astype(np.float32)
    conn = conn.maximum(conn.T)
    ours = _spectral_start(conn, 0)
    pruned = sp.csr_matrix(conn, dtype=np.float64)
    pruned.data[pruned.data < pruned.data.max() / 500] = 0  # UMAP's pruning at 3,000 cells
    theirs = umap.spectral.spectral_layout(None, pruned, 2, np.random.RandomState(0))
    for i in range(2):  # the same eigenvectors, up to sign
        assert abs(np.corrcoef(ours[:, i], theirs[:, i])[0, 1]) > 0.99
    assert np.abs(ours).max() == pytest.approx(10.0)  # scaled as UMAP scales its start
    two = sp.block_diag([conn, conn], format="csr")
    assert _spectral_start(two, 0) == "spectral"  # pieces: UMAP lays them out itself


def test_kd_tree_graph_is_scanpys_exact_graph():
    import scanpy as sc

    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(1500, 3)) @ rng.normal(size=(3, 10))).astype(np.float32)
    Z += 0.3 * rng.normal(size=Z.shape).astype(np.float32)
    ref = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(len(Z))]))
    ref.obsm["rep"] = Z
    sc.pp.neighbors(ref, n_neighbors=30, use_rep="rep", transformer="sklearn", random_state=0)
    g = knn_graph(Z, 30, 0)
    D = g.obsp["distances"]
    assert np.all(np.diff(D.indptr) == 29) and D.diagonal().sum() == 0  # 29 others, no self
    for key in ("distances", "connectivities"):
        A, B = g.obsp[key], ref.obsp[key]
        assert ((A != 0) != (B != 0)).nnz == 0, key  # the same neighbours
        assert abs(A - B).max() < 1e-5, key  # brute force rounds distances differently


def test_pseudotime_kernel_is_cellranks():
    import cellrank as cr

    from mkcell.tl._trajectory import _kernel

    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(800, 3)) @ rng.normal(size=(3, 10))).astype(np.float32)
    g = knn_graph(Z, 30, 0)
    gpt = Z[:, 0] - Z[:, 0].min()
    names = [str(i) for i in range(len(Z))]
    ours = _kernel(ad.AnnData(obs=pd.DataFrame(index=names)), g, gpt, 0.2).transition_matrix
    kad = ad.AnnData(
        X=sp.csr_matrix((len(Z), 1), dtype=np.float32),
        obs=pd.DataFrame({"gpt": gpt}, index=names),
    )
    kad.obsp["connectivities"] = g.obsp["connectivities"]
    kad.obsp["distances"] = g.obsp["distances"]
    kad.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {"method": "umap"},
    }
    pk = cr.kernels.PseudotimeKernel(kad, time_key="gpt").compute_transition_matrix(
        threshold_scheme="soft", show_progress_bar=False, n_jobs=1
    )
    ck = cr.kernels.ConnectivityKernel(kad).compute_transition_matrix()
    theirs = 0.8 * pk + 0.2 * ck
    theirs.compute_transition_matrix()
    assert (ours != theirs.transition_matrix).nnz == 0


def test_one_diffusion_map_per_graph(monkeypatch):
    import scanpy as sc

    import mkcell as mk

    calls = []
    real = sc.tl.diffmap

    def counting(g, **kw):
        calls.append(id(g))
        return real(g, **kw)

    monkeypatch.setattr(sc.tl, "diffmap", counting)
    a = mk.datasets.simulate_marrow(1500, seed=0, species=("mouse",))["mouse"]
    proj = np.random.default_rng(0).normal(size=(a.n_vars, 10))
    a.obsm[K.LATENT] = np.asarray(np.log1p(a.X.toarray()) @ proj, dtype=np.float32)
    a.obs[K.STATE] = a.obs["true_state"].astype(str).astype("category")
    mk.tl.trajectory(a, regress_cycle=False)
    assert calls and len(calls) == len(set(calls)), calls  # auto-root and DPT share one


def test_approximate_graph_above_the_exact_limit(monkeypatch):
    from mkcell import _graph

    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(1500, 3)) @ rng.normal(size=(3, 10))).astype(np.float32)
    exact = knn_graph(Z, 30, 0)
    monkeypatch.setattr(_graph, "EXACT_MAX_CELLS", 1000)
    approx = knn_graph(Z, 30, 0)
    D = approx.obsp["distances"]
    assert np.all(np.diff(D.indptr) == 29) and D.diagonal().sum() == 0  # scanpy's convention
    same = (exact.obsp["distances"] != 0).multiply(D != 0).nnz / D.nnz
    assert same > 0.99  # pynndescent finds (almost) the exact neighbours
    assert approx.uns["neighbors"]["params"]["n_neighbors"] == 30


def test_learning_rate_scales_with_the_batch_size():
    import mkcell as mk
    from mkcell.integrate._scvi import default_lr

    assert default_lr(128) == pytest.approx(1e-3)  # scvi-tools' own rate at its own batch
    assert default_lr(512) == pytest.approx(2e-3)
    assert default_lr(1024) == pytest.approx(1e-3 * 8**0.5)
    a = mk.pp.concat_species(mk.datasets.simulate_marrow(600, seed=0))
    mk.pp.highly_variable_genes(a, n_top_genes=200)
    mk.integrate.scvi(a, max_epochs=1, batch_size=256, accelerator="cpu", seed=0)
    assert a.uns[K.INTEGRATE]["params"]["lr"] == pytest.approx(default_lr(256))
    mk.integrate.scvi(a, max_epochs=1, batch_size=256, lr=5e-4, accelerator="cpu", seed=0)
    assert a.uns[K.INTEGRATE]["params"]["lr"] == 5e-4
