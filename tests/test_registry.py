"""The data registry: every YAML validates, shipped data load, remote formats load offline."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

import mkcell as mk
from mkcell._settings import MkcellError, MkcellWarning
from mkcell.io import _fetch, _registry

YAMLS = sorted(_registry.registry_dir().glob("*.yaml"))
REQUIRED_IDS = {
    "paul15",
    "nestorowa16",
    "dahlin18",
    "setty19_cd34",
    "paul15_tradeseq",
    "olsson16_fig1b",
}


def _entry(**changes) -> dict:
    entry = {
        "id": "toy",
        "title": "Toy",
        "species": "mouse",
        "tissue": "bone marrow",
        "assay": "10x",
        "urls": ["https://example.org/toy.h5ad"],
        "sha256": None,
        "format": "h5ad",
        "shape": {"n_obs": None, "n_vars": None},
        "obs_columns": {"sample": None, "cell_type": None},
        "citation_doi": "10.1000/toy",
        "license": "CC0",
    }
    entry.update(changes)
    return entry


def test_registry_has_the_datasets():
    ids = {p.stem for p in YAMLS}
    assert ids >= REQUIRED_IDS
    assert ids & {"hay18_hca_bm", "granja19_bm", "triana21_bm"}
    table = mk.io.list_datasets()
    assert set(table["id"]) == ids
    assert {"species", "n_obs", "sample_key", "citation_doi"} <= set(table.columns)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_yaml_validates(path):
    entry = _registry.validate_entry(yaml.safe_load(path.read_text()), stem=path.stem)
    assert len(entry["sha256"]) == len(entry["urls"])
    assert mk.io.registry_entry(path.stem)["id"] == path.stem
    if entry["format"] != "shipped":
        assert all(u.startswith("https://") for u in entry["urls"])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"species": "rat"}, "`species` must be one of"),
        ({"urls": ["http://example.org/x.h5ad"]}, "https://"),
        ({"urls": []}, "only format 'shipped'"),
        ({"sha256": "abc"}, "not 64 lower-case hex"),
        ({"sha256": [None, None]}, "2 items for 1 urls"),
        ({"format": "loom"}, "`format` 'loom'"),
        ({"shape": {"n_obs": "10", "n_vars": None}}, r"`shape.n_obs` must be int"),
        ({"obs_columns": {"sample": None}}, "exactly the keys"),
        ({"citation_doi": "doi.org/x"}, "is not a DOI"),
        ({"file": "real/x.h5ad"}, "only for format 'shipped'"),
        ({"format": "shipped", "urls": [], "file": "real/missing.h5ad"}, "does not exist"),
    ],
)
def test_validate_entry_rejects(changes, match):
    with pytest.raises(MkcellError, match=match):
        _registry.validate_entry(_entry(**changes), stem="toy")


def test_validate_entry_id_and_missing():
    with pytest.raises(MkcellError, match="differs from the file name other.yaml"):
        _registry.validate_entry(_entry(), stem="other")
    entry = _entry()
    del entry["license"]
    with pytest.raises(MkcellError, match=r"missing key\(s\) \['license'\]"):
        _registry.validate_entry(entry)


def test_validate_entry_hash_forms():
    h = "a" * 64
    urls = ["https://example.org/a.h5ad", "https://example.org/b.h5ad"]
    assert _registry.validate_entry(_entry(sha256=h))["sha256"] == [h]
    assert _registry.validate_entry(_entry(urls=urls, sha256={urls[1]: h}))["sha256"] == [None, h]


def test_unknown_id_lists_known():
    with pytest.raises(
        MkcellError,
        match=(
            "unknown dataset 'paul16'; did you mean 'paul15'.*known ids: .*dahlin18.*olsson16_fig1b"
        ),
    ):
        mk.io.registry_entry("paul16")
    with pytest.raises(MkcellError, match="known ids"):
        mk.io.load("nope")


@pytest.mark.parametrize(
    ("dataset_id", "shape"), [("paul15_tradeseq", (2660, 240)), ("olsson16_fig1b", (382, 532))]
)
def test_load_shipped(dataset_id, shape, tmp_path, monkeypatch):
    monkeypatch.setenv("MKCELL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(
        _fetch, "_download", lambda *a, **k: pytest.fail("shipped data must not download")
    )
    adata = mk.io.load(dataset_id)
    assert adata.shape == shape
    entry = mk.io.registry_entry(dataset_id)
    for key in entry["obs_columns"].values():
        assert key is None or key in adata.obs
    assert (adata.obs["species"] == "mouse").all()
    assert adata.uns["mk_input"]["dataset_id"] == dataset_id
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- remote formats, offline


def _table_gz(X: np.ndarray, cells: list[str], genes: list[str]) -> bytes:
    df = pd.DataFrame(X.T, index=pd.Index(genes, name="ID"), columns=cells)  # genes x cells
    return gzip.compress(df.to_csv(sep="\t").encode())


@pytest.fixture
def toy_registry(tmp_path, monkeypatch):
    """A registry folder and a fake network serving files from ``served``."""
    reg, served = tmp_path / "registry", {}
    reg.mkdir()
    monkeypatch.setenv("MKCELL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_registry, "registry_dir", lambda: reg)
    calls = []

    def fake(url, path, *, progress=True):  # noqa: ARG001
        calls.append(url)
        Path(path).write_bytes(served[url])

    monkeypatch.setattr(_fetch, "_download", fake)

    def add(entry: dict, files: dict[str, bytes]) -> None:
        served.update(files)
        (reg / f"{entry['id']}.yaml").write_text(yaml.safe_dump(entry))

    add.calls = calls
    add.cache = tmp_path / "cache"
    return add


def test_load_tar_of_tables(toy_registry):
    rng = np.random.default_rng(0)
    genes = ["Pf4", "Gata1", "Itga2b"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("GSM1_A_counts", "GSM2_B_counts"):
            data = _table_gz(
                rng.poisson(2, (4, 3)), ["AAAC-1", "AAAG-1", "AACC-1", "AACG-1"], genes
            )
            info = tarfile.TarInfo(f"{name}.txt.gz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    url = "https://example.org/GSE1_RAW.tar"
    toy_registry(
        _entry(
            id="toyraw", urls=[url], format="tar_tsv_genes_x_cells", shape={"n_obs": 8, "n_vars": 3}
        ),
        {url: buf.getvalue()},
    )
    with pytest.warns(MkcellWarning, match="no checksum"):
        adata = mk.io.load("toyraw", progress=False)
    assert adata.shape == (8, 3) and list(adata.var_names) == genes
    assert list(adata.obs["sample"].cat.categories) == ["GSM1_A_counts", "GSM2_B_counts"]
    assert adata.obs_names.is_unique and adata.obs_names[0] == "AAAC-1-GSM1_A_counts"
    assert sp.issparse(adata.X)
    folder = toy_registry.cache / "toyraw"
    assert sorted(p.name for p in folder.iterdir()) == ["GSE1_RAW.tar", "GSE1_RAW_files"]
    assert mk.io.load("toyraw").shape == (8, 3)  # cached and verified against the recorded hash
    assert toy_registry.calls == [url]


def test_load_table_and_shape_check(toy_registry):
    url = "https://example.org/GSE2_umitab.txt.gz"
    data = _table_gz(np.arange(6).reshape(2, 3), ["w1", "w2"], ["a", "b", "c"])
    sha = _fetch.hashlib.sha256(data).hexdigest()
    toy_registry(
        _entry(id="toytab", urls=[url], sha256=sha, format="tsv_genes_x_cells"), {url: data}
    )
    adata = mk.io.load("toytab")
    np.testing.assert_array_equal(adata.X.toarray(), np.arange(6).reshape(2, 3))
    toy_registry(
        _entry(
            id="toybad",
            urls=[url],
            sha256=sha,
            format="tsv_genes_x_cells",
            shape={"n_obs": 5, "n_vars": 3},
        ),
        {},
    )
    with pytest.raises(MkcellError, match="n_obs=2, registry says 5"):
        mk.io.load("toybad")


def test_load_h5ad_raw_replicates(toy_registry, tmp_path):
    files, urls = {}, []
    for rep in (1, 2):
        counts = ad.AnnData(
            sp.csr_matrix(np.full((3, 4), rep, dtype=np.float32)),
            obs=pd.DataFrame(index=["c1", "c2", "c3"]),
            var=pd.DataFrame(index=list("ABCD")),
        )
        norm = counts[:, :2].copy()
        norm.raw = counts
        norm.X = norm.X * 0.5
        path = tmp_path / f"rep{rep}.h5ad"
        norm.write_h5ad(path)
        urls.append(f"https://example.org/human_rep{rep}.h5ad")
        files[urls[-1]] = path.read_bytes()
    hashes = [_fetch.hashlib.sha256(files[u]).hexdigest() for u in urls]
    toy_registry(
        _entry(id="toyrep", species="human", urls=urls, sha256=hashes, format="h5ad_raw"), files
    )
    adata = mk.io.load("toyrep")
    assert adata.shape == (6, 4)
    assert list(adata.obs["sample"].unique()) == ["human_rep1", "human_rep2"]
    assert adata.X.toarray()[:3].max() == 1 and (adata.obs["species"] == "human").all()


def _mtx_dir(folder: Path) -> None:
    """A CellRanger 2 style mtx folder: 6 cells x 5 genes."""
    import scipy.io

    folder.mkdir(parents=True)
    scipy.io.mmwrite(str(folder / "matrix.mtx"), sp.coo_matrix(np.ones((5, 6))))
    (folder / "genes.tsv").write_text("".join(f"ENSMUSG{j}\tGene{j}\n" for j in range(5)))
    (folder / "barcodes.tsv").write_text("".join(f"AAAC{i}-1\n" for i in range(6)))


def test_load_mtx_tar(toy_registry, tmp_path):
    _mtx_dir(tmp_path / "pack" / "s1")
    _mtx_dir(tmp_path / "pack" / "s2")
    archive = shutil.make_archive(str(tmp_path / "mtx"), "gztar", tmp_path / "pack")
    url = "https://example.org/mtx.tar.gz"
    data = Path(archive).read_bytes()
    toy_registry(
        _entry(
            id="toymtx",
            urls=[url],
            sha256=_fetch.hashlib.sha256(data).hexdigest(),
            format="10x_mtx_tar",
        ),
        {url: data},
    )
    adata = mk.io.load("toymtx")
    assert adata.n_obs == 12 and set(adata.obs["sample"]) == {"s1", "s2"}


def test_load_corrupt_archive(toy_registry):
    url = "https://example.org/broken.tar"
    data = b"not a tar archive"
    toy_registry(
        _entry(
            id="toybroken",
            urls=[url],
            sha256=_fetch.hashlib.sha256(data).hexdigest(),
            format="tar_tsv_genes_x_cells",
        ),
        {url: data},
    )
    with pytest.raises(MkcellError, match="cannot unpack .*broken.tar.*delete it") as info:
        mk.io.load("toybroken")
    assert "\n" not in str(info.value)
    assert [p.name for p in (toy_registry.cache / "toybroken").iterdir()] == ["broken.tar"]
