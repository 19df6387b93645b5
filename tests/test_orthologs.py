import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import mkcell as mk
from mkcell._settings import MkcellError, MkcellWarning


def _adata(genes, counts=None, names=None):
    n = 4
    X = (
        counts
        if counts is not None
        else np.arange(1, n * len(genes) + 1, dtype=np.float32).reshape(n, len(genes))
    )
    obs = pd.DataFrame({"sample": ["s1"] * n}, index=names or [f"c{i}" for i in range(n)])
    return AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=genes))


def test_pf4_and_biomart_gaps_come_from_hcop():
    genes = ["Pf4", "Pold3", "Atad2", "Cdkn2a", "Hmgn2", "Gata1"]
    out = mk.pp.map_orthologs(_adata(genes), "mouse", "human")
    assert {"PF4", "POLD3", "ATAD2", "CDKN2A", "HMGN2", "GATA1"} <= set(out.var_names)
    rep = out.uns["mk_orthologs"]["genes"].set_index("source_gene")
    assert "HCOP only" in rep.loc["Pf4", "reason"]
    assert rep.loc["Gata1", "status"] == "kept"


def test_uppercasing_is_not_a_mapping():
    # Lyz2 has no human LYZ2; its best-supported ortholog is LYZ
    out = mk.pp.map_orthologs(_adata(["Lyz2", "Gata1", "Pf4"]), "mouse", "human")
    assert "LYZ" in out.var_names and "LYZ2" not in out.var_names


def test_many_to_one_is_merged_by_summing_counts():
    from mkcell._ortholog_table import best_partners

    best = best_partners("mouse")
    # find two mouse genes whose best human partner is the same
    dup = best[best["human"].duplicated(keep=False)].sort_values("human")
    target = dup["human"].iloc[0]
    pair = list(dup.index[dup["human"] == target][:2])
    a = _adata([*pair, "Gata1"])
    out = mk.pp.map_orthologs(a, "mouse", "human")
    assert out.n_vars == 2
    np.testing.assert_allclose(out[:, target].X.toarray().ravel(), a[:, pair].X.toarray().sum(1))
    rep = out.uns["mk_orthologs"]["genes"].set_index("source_gene")
    assert (rep.loc[pair, "status"] == "merged").all()


def test_species_only_genes_dropped_or_kept():
    genes = ["Gata1", "Pf4", "AA414992"]  # the last has no human ortholog
    dropped = mk.pp.map_orthologs(_adata(genes), "mouse", "human")
    assert "AA414992" not in dropped.var_names
    kept = mk.pp.map_orthologs(_adata(genes), "mouse", "human", keep_unmapped=True)
    assert "AA414992" in kept.var_names and kept.var.loc["AA414992", "species_only"]


def test_swapped_species_detected():
    human_genes = ["PF4", "GATA1", "ITGA2B", "GP9", "MPO", "KLF1"]
    with pytest.raises(MkcellError, match="swapped"):
        mk.pp.map_orthologs(_adata(human_genes), "mouse", "human")
    with pytest.raises(MkcellError, match="swapped"):
        mk.pp.concat_species(
            {"mouse": _adata(human_genes), "human": _adata(["Pf4", "Gata1", "Itga2b", "Gp9"])}
        )


@pytest.mark.parametrize("bad", ["rat", "Mouse"])
def test_unknown_species(bad):
    with pytest.raises(MkcellError, match="mouse"):
        mk.pp.map_orthologs(_adata(["Pf4"]), bad, "human")


def test_non_counts_rejected():
    a = _adata(["Pf4", "Gata1"], counts=np.array([[0.5, 1.2]] * 4, dtype=np.float32))
    with pytest.raises(MkcellError, match="non-integer"):
        mk.pp.map_orthologs(a)
    a = _adata(["Pf4", "Gata1"], counts=np.array([[np.nan, 1]] * 4, dtype=np.float32))
    with pytest.raises(MkcellError, match="NaN"):
        mk.pp.map_orthologs(a)
    a = _adata(["Pf4", "Gata1"], counts=np.array([[-1, 1]] * 4, dtype=np.float32))
    with pytest.raises(MkcellError, match="negative"):
        mk.pp.map_orthologs(a)


def test_input_not_modified(sim):
    m = sim["mouse"]
    before = m.X.copy()
    names = m.var_names.copy()
    mk.pp.map_orthologs(m)
    assert (m.X != before).nnz == 0 and m.var_names.equals(names)


def test_concat_species_keeps_obs_and_prefixes_colliding_names(sim):
    m, h = sim["mouse"][:50].copy(), sim["human"][:40].copy()
    h.obs_names = list(m.obs_names[:10]) + list(h.obs_names[10:])
    m.obs["lab_column"] = "x"
    out = mk.pp.concat_species({"mouse": m, "human": h})
    assert out.n_obs == 90 and out.obs_names.is_unique
    assert "mouse:" + m.obs_names[0] in out.obs_names and "human:" + m.obs_names[0] in out.obs_names
    assert m.obs_names[20] in out.obs_names  # names without a clash stay as they are
    assert "lab_column" in out.obs and set(out.obs["species"]) == {"mouse", "human"}
    assert "PF4" in out.var_names and "counts" in out.layers


def test_concat_single_species_and_small_sample_warning(sim):
    h = sim["human"][:15].copy()
    with pytest.warns(MkcellWarning, match="fewer than"):
        out = mk.pp.concat_species({"human": h})
    assert set(out.obs["species"]) == {"human"}


def test_duplicated_cells_rejected(sim):
    m = sim["mouse"][:10].copy()
    m.obs_names = ["same"] * 10
    with pytest.raises(MkcellError, match="duplicated cell names"):
        mk.pp.concat_species({"mouse": m})


def test_hvg_keeps_markers_and_drops_cycle_genes(sim):
    a = mk.pp.concat_species(sim)
    mk.pp.highly_variable_genes(a, n_top_genes=300)
    hvg = a.var["mk_highly_variable"]
    assert hvg["PF4"] and hvg["ITGA2B"]  # markers forced in
    assert not hvg["MKI67"] and not hvg["AURKB"] and not hvg["E2F1"]  # cycle genes out
    assert "MKI67" in a.var_names  # still available for scoring
