"""Fate solver: sparse, converges or falls back, never builds a dense n x n matrix."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from mkcell.tl._fate import absorption_direct, fate_probabilities


def _random_walk(n, k=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = rng.integers(0, n, n * k)
    T = sp.csr_matrix((rng.uniform(size=n * k), (rows, cols)), shape=(n, n))
    T = sp.diags(1 / np.asarray(T.sum(1)).ravel()) @ T
    return sp.csr_matrix(T)


def test_direct_solve_matches_chain_probabilities():
    # a 1-D chain 0..9 with absorbing ends: P(reach right end from i) = i / 9
    n = 10
    T = sp.lil_matrix((n, n))
    for i in range(1, n - 1):
        T[i, i - 1] = T[i, i + 1] = 0.5
    T[0, 0] = T[n - 1, n - 1] = 1
    probs = absorption_direct(sp.csr_matrix(T), {"left": np.array([0]), "right": np.array([n - 1])})
    np.testing.assert_allclose(probs["right"], np.arange(n) / (n - 1), atol=1e-10)


def test_weak_graph_rows_sum_to_one_whatever_the_solver():
    import cellrank as cr

    n = 3000
    T = _random_walk(n)
    k = cr.kernels.PrecomputedKernel(T)
    terminal = {"a": np.arange(0, 20), "b": np.arange(20, 40)}
    # CellRank's unpreconditioned GMRES at a tolerance it may not reach; any result must sum to 1
    probs, method = fate_probabilities(k, terminal, solver="gmres", tol=1e-14)
    assert np.allclose(probs.sum(1), 1, atol=1e-6)
    direct = absorption_direct(T, terminal)
    np.testing.assert_allclose(probs.to_numpy(), direct.to_numpy(), atol=1e-3)
    assert method in {"cellrank:gmres", "sparse_lu"}


def test_no_dense_n_by_n_matrix():
    import cellrank as cr

    n = 6000  # a dense n x n float64 matrix would need 288 MB
    T = _random_walk(n, seed=1)
    k = cr.kernels.PrecomputedKernel(T)
    tracemalloc.start()
    fate_probabilities(k, {"a": np.arange(30), "b": np.arange(30, 60)})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.25 * n * n * 8, peak


def test_unreachable_cells_get_nan():
    T = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0, 1.0]]))
    probs = absorption_direct(T, {"end": np.array([3])})
    assert np.isnan(probs.loc[0, "end"]) and probs.loc[2, "end"] == 1


def test_solver_failure_falls_back_to_sparse_lu(monkeypatch):
    import cellrank as cr

    def fail(self, *args, **kwargs):
        msg = "Probabilities do not sum to 1"  # what a stalled GMRES run ends with
        raise ValueError(msg)

    monkeypatch.setattr(cr.estimators.GPCCA, "compute_fate_probabilities", fail)
    T = _random_walk(500, seed=3)
    probs, method = fate_probabilities(
        cr.kernels.PrecomputedKernel(T),
        {"a": np.arange(10), "b": np.arange(10, 20)},
        solver="gmres",
    )
    assert method == "sparse_lu"
    assert np.allclose(probs.sum(1), 1)


def test_gmres_matches_direct_and_is_used_above_threshold():
    import cellrank as cr

    T = _random_walk(4000, seed=5)
    terminal = {"a": np.arange(25), "b": np.arange(25, 50)}
    probs, method = fate_probabilities(
        cr.kernels.PrecomputedKernel(T), terminal, direct_max_cells=1000
    )
    assert method == "gmres_gauss_seidel"
    np.testing.assert_allclose(
        probs.to_numpy(), absorption_direct(T, terminal).to_numpy(), atol=1e-6
    )


def test_gmres_failure_above_fallback_size_is_a_clear_error(monkeypatch):
    import cellrank as cr

    from mkcell._settings import MkcellError
    from mkcell.tl import _fate

    def stall(*args, **kwargs):
        msg = "preconditioned GMRES did not converge for terminal state 'a' (info=500)"
        raise RuntimeError(msg)

    monkeypatch.setattr(_fate, "absorption_iterative", stall)
    T = _random_walk(600, seed=2)
    kernel, terminal = cr.kernels.PrecomputedKernel(T), {"a": np.arange(10), "b": np.arange(10, 20)}
    with pytest.raises(MkcellError, match="did not converge.*on 600 cells.*connectivity_weight"):
        fate_probabilities(kernel, terminal, direct_max_cells=100, fallback_max_cells=500)
    probs, method = fate_probabilities(
        kernel, terminal, direct_max_cells=100, fallback_max_cells=1000
    )
    assert method == "sparse_lu" and np.allclose(probs.sum(1), 1)
