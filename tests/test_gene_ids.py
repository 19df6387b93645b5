"""Gene identifiers on reading: Ensembl IDs through the shipped tables, or a var column of
symbols."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mkcell as mk
from mkcell._settings import MkcellError
from mkcell.io._gene_ids import ensembl_symbols


def _toy(var_names, var=None) -> ad.AnnData:
    X = sp.csr_matrix(np.arange(1, 3 * len(var_names) + 1, dtype=np.int32).reshape(3, -1))
    return ad.AnnData(
        X=X,
        var=pd.DataFrame(var or {}, index=pd.Index(var_names)),
        obs=pd.DataFrame(index=["c1", "c2", "c3"]),
    )


def test_ensembl_ids_map_to_symbols_and_duplicates_are_summed(tmp_path):
    table = ensembl_symbols("human")
    itga2b = table.index[table == "ITGA2B"][0]
    gata1 = table.index[table == "GATA1"][0]
    ids = [
        f"{itga2b}.7",
        gata1,
        f"{gata1}_PAR_Y",
        "ENSG00000000000",
    ]  # versioned, a PAR copy, unknown
    path = tmp_path / "ids.h5ad"
    _toy(ids).write_h5ad(path)
    before = path.read_bytes()
    a = mk.io.read(path)
    assert path.read_bytes() == before
    assert list(a.var_names) == ["ITGA2B", "GATA1", "ENSG00000000000"]
    X = a.X.toarray()
    np.testing.assert_array_equal(X[:, 1], [2 + 3, 6 + 7, 10 + 11])  # GATA1 + its PAR copy
    rep = a.uns["mk_gene_ids"]["genes"]
    assert list(rep.columns) == ["id", "symbol", "status"]
    assert list(rep["status"]) == ["mapped", "summed", "summed", "unmapped_kept_as_id"]
    assert a.var.loc["GATA1", "gene_ids"] == f"{gata1};{gata1}_PAR_Y"


def test_mouse_ensembl_ids_and_symbol_column(tmp_path):
    table = ensembl_symbols("mouse")
    pf4 = table.index[table == "Pf4"][0]
    path = tmp_path / "m.h5ad"
    _toy([pf4, "ENSMUSG00000000001"]).write_h5ad(path)
    assert mk.io.read(path, species="mouse").var_names[0] == "Pf4"
    path2 = tmp_path / "sym.h5ad"
    _toy(["id1", "id2", "id3"], {"symbol": ["CD34", "CD34", ""]}).write_h5ad(path2)
    b = mk.io.read(path2, gene_symbols="symbol")
    assert list(b.var_names) == ["CD34", "id3"]
    np.testing.assert_array_equal(b.X.toarray()[:, 0], [1 + 2, 4 + 5, 7 + 8])


def test_unmappable_ids_name_the_fix(tmp_path):
    path = tmp_path / "bad.h5ad"
    _toy(["ENSG90000000001", "ENSG90000000002"]).write_h5ad(path)
    with pytest.raises(MkcellError, match=r"pass gene_symbols=COLUMN \(data.gene_symbols=COLUMN"):
        mk.io.read(path)
