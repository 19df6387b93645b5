"""The one log-normalisation: values, the cached layer and when the cache is stale."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from mkcell import _keys as K
from mkcell.pp import _normalize
from mkcell.pp._normalize import log_normalize, log_normalize_matrix


def _counts(n: int = 60, g: int = 40, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = rng.poisson(rng.gamma(0.5, 2.0, size=(n, g))).astype(np.float32)
    X[3] = 0  # a cell without counts stays zero
    a = ad.AnnData(X=sp.csr_matrix(X))
    a.layers["counts"] = a.X.copy()
    return a


@pytest.fixture
def calls(monkeypatch):
    """How often the normalisation is actually computed."""
    n = [0]
    real = _normalize.log_normalize_matrix

    def counting(*args, **kwargs):
        n[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(_normalize, "log_normalize_matrix", counting)
    return n


def test_values_are_log1p_of_counts_per_10k():
    a = _counts()
    X = log_normalize(a)
    C = a.layers["counts"].toarray().astype(np.float64)
    size = C.sum(1, keepdims=True)
    want = np.log1p(np.divide(C * 1e4, size, out=np.zeros_like(C), where=size > 0))
    assert isinstance(X, sp.csr_matrix) and X.dtype == np.float32
    np.testing.assert_allclose(X.toarray(), want, rtol=1e-6, atol=1e-6)
    assert X[3].nnz == 0


def test_cached_once_and_reused(calls):
    a = _counts()
    X1 = log_normalize(a)
    X2 = log_normalize(a)
    assert calls[0] == 1 and X2 is a.layers[K.LOGNORM]
    assert (X1 != X2).nnz == 0
    rec = a.uns[K.LOGNORM_RECORD]
    assert rec["source"] == "counts" and rec["target_sum"] == 1e4
    assert rec["signature"]["shape"] == [a.n_obs, a.n_vars]
    assert rec["signature"]["nnz"] == a.layers["counts"].nnz


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: a.layers["counts"].data.__setitem__(0, 99.0), id="value"),
        pytest.param(  # counts moved between cells: the total stays the same
            lambda a: a.layers.__setitem__("counts", a.layers["counts"][::-1].tocsr()),
            id="cells-reordered",
        ),
        pytest.param(lambda a: a.layers.__delitem__("counts"), id="other-source"),
    ],
)
def test_stale_cache_is_recomputed(change, calls):
    a = _counts()
    a.X = a.layers["counts"][:, ::-1].tocsr()  # X differs from the counts layer
    log_normalize(a)
    change(a)
    X = log_normalize(a)
    assert calls[0] == 2
    fresh = log_normalize_matrix(a.layers["counts"] if "counts" in a.layers else a.X)
    assert (X != fresh).nnz == 0


def test_target_sum_and_layer_are_part_of_the_record(calls):
    a = _counts()
    log_normalize(a)
    log_normalize(a, target_sum=1e6)
    a.layers["raw"] = a.layers["counts"].copy()
    log_normalize(a, layer="raw", target_sum=1e6)
    assert calls[0] == 3 and a.uns[K.LOGNORM_RECORD]["source"] == "raw"


def test_view_is_not_written_and_equals_the_parents_rows():
    a = _counts()
    v = a[10:30]
    Xv = log_normalize(v)
    assert v.is_view and K.LOGNORM not in a.layers
    assert (Xv != log_normalize(a)[10:30]).nnz == 0


def test_dense_counts_give_the_same_csr():
    a = _counts()
    d = ad.AnnData(X=a.X.toarray())
    assert (log_normalize(d) != log_normalize(a)).nnz == 0


def test_cache_survives_h5ad(tmp_path, calls):
    a = _counts()
    X = log_normalize(a)
    a.write_h5ad(tmp_path / "a.h5ad")
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    Y = log_normalize(b)
    assert calls[0] == 1 and (X != Y).nnz == 0


def test_mkcell_files_leave_the_cache_out(tmp_path, calls):
    """Stage files and mkcell.h5ad hold no cache; reading back rebuilds the same values."""
    from mkcell._utils import write_h5ad_atomic

    a = _counts()
    X = log_normalize(a)
    write_h5ad_atomic(a, tmp_path / "a.h5ad")
    assert K.LOGNORM in a.layers and K.LOGNORM_RECORD in a.uns  # kept in memory
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    assert K.LOGNORM not in b.layers and K.LOGNORM_RECORD not in b.uns
    Y = log_normalize(b)
    assert calls[0] == 2 and (X != Y).nnz == 0
