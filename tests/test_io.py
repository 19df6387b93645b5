"""mk.io.read (h5ad / 10x h5 / mtx folder, bad inputs) and mk.io.fetch (offline, monkeypatched)."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

import mkcell as mk
from mkcell._settings import MkcellError, MkcellWarning
from mkcell.io import _fetch
from mkcell.io._read import MkcellFileNotFoundError

N_CELLS, N_GENES = 6, 5


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _counts(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix(rng.poisson(1.0, size=(N_CELLS, N_GENES)).astype(np.float32))


def _names(genes: list[str] | None = None, cells: list[str] | None = None):
    cells = cells or [f"AAAC{i}-1" for i in range(N_CELLS)]
    genes = genes or [f"Gene{j}" for j in range(N_GENES)]
    return cells, genes


def write_10x_h5(
    path: Path, *, genes: list[str] | None = None, cells: list[str] | None = None
) -> sp.csr_matrix:
    """A CellRanger v3 HDF5 file (features x barcodes CSC, as CellRanger writes it)."""
    import h5py

    X = _counts()
    cells, genes = _names(genes, cells)
    csc = X.T.tocsc()  # genes x cells stored column-compressed = cells as columns
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["data"] = csc.data.astype(np.int32)
        m["indices"] = csc.indices.astype(np.int64)
        m["indptr"] = csc.indptr.astype(np.int64)
        m["shape"] = np.array([len(genes), len(cells)], dtype=np.int32)
        m["barcodes"] = np.array(cells, dtype="S")
        feat = m.create_group("features")
        feat["id"] = np.array([f"ENSG{j:05d}" for j in range(len(genes))], dtype="S")
        feat["name"] = np.array(genes, dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
        feat["genome"] = np.array(["GRCh38"] * len(genes), dtype="S")
    return X


def write_mtx_dir(
    folder: Path, *, genes: list[str] | None = None, prefix: str = ""
) -> sp.csr_matrix:
    """A CellRanger v3 mtx folder (gzipped matrix.mtx, features.tsv, barcodes.tsv)."""
    folder.mkdir(parents=True, exist_ok=True)
    X = _counts(1)
    cells, genes = _names(genes)
    plain = folder / f"{prefix}matrix.mtx"
    scipy.io.mmwrite(str(plain), sp.coo_matrix(X.T))  # genes x cells
    with plain.open("rb") as src, gzip.open(f"{plain}.gz", "wb") as dst:
        dst.write(src.read())
    plain.unlink()
    feats = "".join(f"ENSMUSG{j:05d}\t{g}\tGene Expression\n" for j, g in enumerate(genes))
    with gzip.open(folder / f"{prefix}features.tsv.gz", "wt") as fh:
        fh.write(feats)
    with gzip.open(folder / f"{prefix}barcodes.tsv.gz", "wt") as fh:
        fh.write("".join(f"{c}\n" for c in cells))
    return X


@pytest.fixture
def h5ad_file(tmp_path):
    cells, genes = _names()
    adata = ad.AnnData(
        _counts(),
        obs=pd.DataFrame({"sample": ["s1"] * N_CELLS}, index=cells),
        var=pd.DataFrame(index=genes),
    )
    path = tmp_path / "counts.h5ad"
    adata.write_h5ad(path)
    return path


# ---------------------------------------------------------------- read: good input


def test_read_h5ad_round_trip(h5ad_file):
    before = _sha(h5ad_file)
    adata = mk.io.read(h5ad_file, species="mouse")
    assert adata.shape == (N_CELLS, N_GENES)
    np.testing.assert_array_equal(adata.X.toarray(), _counts().toarray())
    assert list(adata.obs["sample"]) == ["s1"] * N_CELLS
    assert (adata.obs["species"] == "mouse").all()
    assert adata.uns["mk_input"] == {"path": str(h5ad_file.resolve()), "format": "h5ad"}
    assert _sha(h5ad_file) == before


def test_read_10x_h5(tmp_path):
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    X = write_10x_h5(path)
    before = _sha(path)
    adata = mk.io.read(path)
    assert adata.shape == (N_CELLS, N_GENES)
    np.testing.assert_array_equal(adata.X.toarray(), X.toarray())
    assert list(adata.var_names) == [f"Gene{j}" for j in range(N_GENES)]
    assert adata.var["gene_ids"].iloc[0] == "ENSG00000"
    assert adata.uns["mk_input"]["format"] == "10x_h5"
    assert "species" not in adata.obs
    assert _sha(path) == before


@pytest.mark.parametrize("prefix", ["", "GSM1_"])
def test_read_mtx_folder(tmp_path, prefix):
    folder = tmp_path / "filtered_feature_bc_matrix"
    X = write_mtx_dir(folder, prefix=prefix)
    before = {p.name: _sha(p) for p in folder.iterdir()}
    adata = mk.io.read(folder)
    assert adata.shape == (N_CELLS, N_GENES)
    np.testing.assert_array_equal(adata.X.toarray(), X.toarray())
    assert list(adata.var_names) == [f"Gene{j}" for j in range(N_GENES)]
    assert adata.uns["mk_input"]["format"] == "10x_mtx"
    assert {p.name: _sha(p) for p in folder.iterdir()} == before
    # the matrix file itself also works
    assert mk.io.read(folder / f"{prefix}matrix.mtx.gz").shape == (N_CELLS, N_GENES)


def test_read_makes_duplicate_genes_unique(tmp_path, caplog):
    folder = tmp_path / "mtx"
    write_mtx_dir(folder, genes=["Pf4", "Pf4", "Gata1", "Itga2b", "Gata1"])
    with caplog.at_level(logging.INFO, logger="mkcell"):
        adata = mk.io.read(folder)
    assert adata.var_names.is_unique
    assert list(adata.var_names[:2]) == ["Pf4", "Pf4-1"]
    assert "made 2 duplicated gene names unique" in caplog.text


# ---------------------------------------------------------------- read: bad input


def test_read_missing_path(tmp_path):
    path = tmp_path / "nope.h5ad"
    with pytest.raises(MkcellFileNotFoundError, match="nope.h5ad.*h5ad file, 10x .h5") as info:
        mk.io.read(path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, MkcellError)
    assert "\n" not in str(info.value)


def test_read_unsupported_extension(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(MkcellError, match=r"unsupported file type '\.csv'.*\.h5ad"):
        mk.io.read(path)


@pytest.mark.parametrize("name", ["text.h5ad", "text.h5"])
def test_read_text_with_hdf5_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is not HDF5\n")
    with pytest.raises(MkcellError, match="cannot read .* as") as info:
        mk.io.read(path)
    assert "\n" not in str(info.value)
    assert path.read_text() == "this is not HDF5\n"


def test_read_truncated_h5(tmp_path):
    path = tmp_path / "cut.h5"
    write_10x_h5(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(MkcellError, match="cannot read .*cut.h5 as a 10x CellRanger .h5"):
        mk.io.read(path)


def test_read_h5ad_named_h5(tmp_path, h5ad_file):
    path = tmp_path / "renamed.h5"
    path.write_bytes(h5ad_file.read_bytes())
    with pytest.raises(MkcellError, match="looks like an AnnData file.*rename it to .h5ad"):
        mk.io.read(path)


@pytest.mark.parametrize("drop", ["features.tsv.gz", "barcodes.tsv.gz"])
def test_read_mtx_folder_missing_file(tmp_path, drop):
    folder = tmp_path / "mtx"
    write_mtx_dir(folder)
    (folder / drop).unlink()
    with pytest.raises(MkcellError, match=f"lacks {drop}"):
        mk.io.read(folder)


def test_read_folder_without_matrix(tmp_path):
    with pytest.raises(MkcellError, match="no matrix.mtx"):
        mk.io.read(tmp_path)


@pytest.mark.parametrize("shape", [(0, N_GENES), (N_CELLS, 0)])
def test_read_empty(tmp_path, shape):
    path = tmp_path / "empty.h5ad"
    ad.AnnData(sp.csr_matrix(shape, dtype=np.float32)).write_h5ad(path)
    with pytest.raises(MkcellError, match="empty matrix"):
        mk.io.read(path)


def test_read_duplicate_cells(tmp_path):
    path = tmp_path / "dup.h5"
    write_10x_h5(path, cells=["A-1", "A-1", "B-1", "C-1", "C-1", "D-1"])
    with pytest.raises(
        MkcellError, match=r"2 duplicated cell names \(e.g. 'A-1', 'C-1'\).*obs_names_make_unique"
    ):
        mk.io.read(path)


def test_read_bad_species(h5ad_file):
    with pytest.raises(MkcellError, match="species='rat'"):
        mk.io.read(h5ad_file, species="rat")


# ---------------------------------------------------------------- fetch (offline)

URL = "https://example.org/data/counts.h5ad"
PAYLOAD = b"mkcell test payload\n"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MKCELL_CACHE", str(folder))
    return folder


@pytest.fixture
def downloads(monkeypatch):
    """Replace the network call; record the URLs asked for."""
    calls = []

    def fake(url, path, *, progress=True):  # noqa: ARG001
        calls.append(url)
        Path(path).write_bytes(PAYLOAD)

    monkeypatch.setattr(_fetch, "_download", fake)
    return calls


def _offline(monkeypatch):
    def fail(url, path, *, progress=True):  # noqa: ARG001
        msg = "Failed to resolve 'example.org'\n[Errno -3] Temporary failure in name resolution"
        raise ConnectionError(msg)

    monkeypatch.setattr(_fetch, "_download", fail)


def test_cache_dir_follows_env(cache):
    assert _fetch.cache_dir() == cache


def test_fetch_success_and_reuse(cache, downloads):
    path = mk.io.fetch(URL, sha256=PAYLOAD_SHA)
    assert path == cache / "downloads" / "counts.h5ad"
    assert path.read_bytes() == PAYLOAD
    assert mk.io.fetch(URL, sha256=PAYLOAD_SHA.upper()) == path
    assert downloads == [URL]  # second call used the cache
    assert sorted(p.name for p in path.parent.iterdir()) == ["counts.h5ad"]


def test_fetch_checksum_mismatch_leaves_nothing(cache, downloads):
    wrong = "0" * 64
    with pytest.raises(MkcellError, match=f"expected sha256 {wrong}, got {PAYLOAD_SHA}") as info:
        mk.io.fetch(URL, sha256=wrong)
    assert "\n" not in str(info.value)
    folder = cache / "downloads"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_fetch_missing_hash_warns_records_and_checks(cache, downloads, monkeypatch):
    with pytest.warns(MkcellWarning, match=f"no checksum for {URL}; recorded sha256 {PAYLOAD_SHA}"):
        path = mk.io.fetch(URL, filename="x.h5ad")
    assert json.loads((cache / "hashes.json").read_text()) == {URL: PAYLOAD_SHA}
    assert mk.io.fetch(URL, filename="x.h5ad") == path  # recorded hash matches: no warning
    # a later download that differs from the recorded hash is refused
    path.unlink()
    monkeypatch.setattr(_fetch, "_download", lambda url, p, **kw: Path(p).write_bytes(b"changed"))
    with pytest.raises(MkcellError, match=f"expected sha256 {PAYLOAD_SHA}"):
        mk.io.fetch(URL, filename="x.h5ad")
    assert not path.exists()


def test_fetch_offline_is_one_line(cache, monkeypatch):
    _offline(monkeypatch)
    dest = cache / "paul15" / "counts.h5ad"
    with pytest.raises(MkcellError) as info:
        mk.io.fetch(URL, sha256=PAYLOAD_SHA, dest_dir=cache / "paul15")
    msg = str(info.value)
    assert "\n" not in msg
    assert URL in msg and str(dest) in msg and "by hand" in msg
    assert not dest.exists()


def test_fetch_uses_hand_placed_file(cache, monkeypatch):
    _offline(monkeypatch)
    dest = cache / "downloads" / "counts.h5ad"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(PAYLOAD)
    assert mk.io.fetch(URL, sha256=PAYLOAD_SHA) == dest
    dest.write_bytes(b"wrong file")
    with pytest.raises(MkcellError, match="does not match its checksum.*delete the file"):
        mk.io.fetch(URL, sha256=PAYLOAD_SHA)


def test_fetch_file_url(cache, tmp_path):
    src = tmp_path / "local.bin"
    src.write_bytes(PAYLOAD)
    path = mk.io.fetch(src.as_uri(), sha256=PAYLOAD_SHA, progress=False)
    assert path.read_bytes() == PAYLOAD and path.parent == cache / "downloads"


def test_fetch_rejects_bad_input(cache):
    with pytest.raises(MkcellError, match="not 64 hex digits"):
        mk.io.fetch(URL, sha256="abc")
    with pytest.raises(MkcellError, match="unsupported scheme 's3'"):
        mk.io.fetch("s3://bucket/file.h5ad")
