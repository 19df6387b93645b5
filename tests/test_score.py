"""mk.tl.score: phase calls, gene-set scores, ortholog translation and input checks."""

from __future__ import annotations

import importlib.util

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import mkcell as mk
from mkcell._genesets import builtin_sets
from mkcell._settings import MkcellError, MkcellWarning
from mkcell._species import detect_species
from mkcell.tl._score import call_phase, translate_genes

SET_KEYS = [
    "mk_score_e2f_targets",
    "mk_score_g2m_checkpoint",
    "mk_score_mitotic_spindle",
    "mk_score_cytokinesis",
    "mk_score_aurora",
]


def _sets_table(adata):
    return adata.uns["mk_score"]["sets"].set_index("key")


@pytest.mark.parametrize("species", ["mouse", "human"])
def test_phase_agrees_with_truth(sim, species):
    a = sim[species]
    mk.tl.score(a)
    assert list(a.obs["phase"].cat.categories) == ["G1", "S", "G2M"]
    agree = (a.obs["phase"].astype(str) == a.obs["true_phase"].astype(str)).mean()
    assert agree >= 0.8, f"{species}: phase agreement {agree:.3f}"
    # scanpy's sign rule stays available; it is what the centred default improves on
    ph, _ = call_phase(a.obs["S_score"].to_numpy(), a.obs["G2M_score"].to_numpy(), rule="scanpy")
    assert set(ph) <= {"G1", "S", "G2M"}


def test_score_writes_keys_and_leaves_x_alone(sim):
    a = sim["human"]
    X0 = a.X.copy()
    mk.tl.score(a)
    assert (a.X != X0).nnz == 0
    for k in ["S_score", "G2M_score", *SET_KEYS]:
        assert k in a.obs and np.isfinite(a.obs[k]).all()
    uns = a.uns["mk_score"]
    assert uns["species"] == "human"
    assert uns["params"]["method"] == "score_genes" and uns["params"]["min_genes"] == 5
    tab = _sets_table(a)
    assert tab.loc["mk_score_e2f_targets", "set"] == "HALLMARK_E2F_TARGETS"
    assert tab.loc["mk_score_aurora", "genes_used"].split(";") == ["AURKA", "AURKB", "PLK1"]
    # cycling cells score higher on the E2F set
    e2f = a.obs.groupby("true_phase", observed=True)["mk_score_e2f_targets"].mean()
    assert e2f["S"] > e2f["G1"] + 0.3


def test_matches_scanpy_score_genes(sim):
    a = sim["human"]
    mk.tl.score(a)
    b = a.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    genes = _sets_table(a).loc["mk_score_e2f_targets", "genes_used"].split(";")
    sc.tl.score_genes(b, genes, score_name="ref", random_state=0)
    r = np.corrcoef(b.obs["ref"], a.obs["mk_score_e2f_targets"])[0, 1]
    assert r > 0.97


def test_copy_dense_and_sparse_agree(sim):
    a = sim["mouse"][:600].copy()
    out = mk.tl.score(a, copy=True)
    assert "S_score" not in a.obs and "S_score" in out.obs
    d = a.copy()
    d.X = d.X.toarray()
    mk.tl.score(d)
    np.testing.assert_allclose(
        d.obs["mk_score_e2f_targets"], out.obs["mk_score_e2f_targets"], atol=1e-4
    )


def test_human_sets_translate_to_mouse_orthologs(sim):
    human = builtin_sets()
    assert "CENPU" in human["TIROSH2016_S_PHASE"] and "MLF1IP" not in human["TIROSH2016_S_PHASE"]
    m, h = sim["mouse"], sim["human"]
    mk.tl.score(m)
    mk.tl.score(h)
    assert m.uns["mk_score"]["species"] == "mouse"
    tm, th = _sets_table(m), _sets_table(h)
    assert list(tm.index) == list(th.index)  # the same sets are scored
    assert tm["translated"].all() and not th["translated"].any()
    s_m = tm.loc["S_score", "genes_used"].split(";")
    assert "Mcm5" in s_m and "MCM5" not in s_m
    assert translate_genes(["MCM5", "CENPU", "PF4"], "human", "mouse") == (
        ["Mcm5", "Cenpu", "Pf4"],
        [],
    )
    assert "MCM5" in th.loc["S_score", "genes_used"].split(";")
    for k in SET_KEYS:
        assert k in m.obs
        # orthologous sets cover the same genes in the simulated pair
        assert abs(tm.loc[k, "n_used"] - th.loc[k, "n_used"]) <= 2


def test_forced_species_and_detection():
    assert detect_species(["Pf4", "Mcm5", "Gata1"]) == "mouse"
    assert detect_species(["PF4", "MCM5", "GATA1"]) == "human"
    assert detect_species(["PF4", "Mcm5"]) is None


def test_unclear_symbols_and_ensembl_ids_raise(sim):
    a = sim["human"][:300].copy()
    names = a.var_names.to_numpy().copy()
    names[::2] = [n.capitalize() for n in names[::2]]
    a.var_names = names
    with pytest.raises(MkcellError, match="gene_symbols="):
        mk.tl.score(a)
    a.var_names = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    with pytest.raises(MkcellError, match="Ensembl"):
        mk.tl.score(a)


def test_bad_gmt_reports_line(sim, tmp_path):
    gmt = tmp_path / "bad.gmt"
    gmt.write_text("GOOD\tdesc\tMCM5\tMCM2\nBROKEN MCM5 MCM2\n")
    with pytest.raises(MkcellError, match=r"bad\.gmt:2:"):
        mk.tl.score(sim["human"], gmt=gmt)


def test_user_gmt_scored_with_slug(sim, tmp_path):
    a = sim["human"]
    gmt = tmp_path / "mine.gmt"
    gmt.write_text("My Set-1\tx\tMCM5\tMCM2\tPCNA\tTYMS\tRRM1\tRRM2\n")
    mk.tl.score(a, gmt=gmt)
    assert "mk_score_my_set_1" in a.obs
    assert _sets_table(a).loc["mk_score_my_set_1", "source"] == str(gmt)


def test_too_few_genes_warns_naming_missing(sim):
    a = sim["human"]
    tiny = {"TINY": ["MCM5", "MCM2", "NOTAGENE1", "NOTAGENE2", "NOTAGENE3"]}
    with pytest.warns(
        MkcellWarning,
        match="scored .* with the 2 genes present. Missing: NOTAGENE1, NOTAGENE2, NOTAGENE3",
    ):
        mk.tl.score(a, gmt=tiny)
    assert "mk_score_tiny" in a.obs
    assert _sets_table(a).loc["mk_score_tiny", "n_used"] == 2
    with pytest.warns(MkcellWarning, match="left out") as rec:
        mk.tl.score(a, gmt=tiny, on_missing="skip")
    assert "NOTAGENE2" in str(rec[0].message)
    assert "mk_score_tiny" not in a.obs


def test_wrong_species_gmt_is_detected_and_mapped(sim):
    a = sim["human"]
    mouse_set = {"MOUSE_E2F": ["Mcm5", "Mcm2", "Pcna", "Tyms", "Rrm1", "Rrm2", "Mcm3", "Mcm6"]}
    with pytest.warns(
        MkcellWarning, match=r"mouse symbols.*0/8 genes found as given, 8/8 after mapping"
    ):
        mk.tl.score(a, gmt=mouse_set)
    row = _sets_table(a).loc["mk_score_mouse_e2f"]
    assert row["translated"] and row["species_given"] == "mouse"
    assert set(row["genes_used"].split(";")) >= {"MCM5", "PCNA"}
    r = np.corrcoef(a.obs["mk_score_mouse_e2f"], a.obs["mk_score_e2f_targets"])[0, 1]
    assert r > 0.5


def test_wrong_casing_is_reported(sim):
    a = sim["human"]
    sets = {"MIXED": ["MCM5", "MCM2", "PCNA", "TYMS", "RRM1", "rrm2"]}
    with pytest.warns(MkcellWarning, match="ignoring case.*rrm2"):
        mk.tl.score(a, gmt=sets)
    assert "rrm2" in _sets_table(a).loc["mk_score_mixed", "genes_missing"]


def test_non_count_input_raises(sim):
    a = sim["human"][:300].copy()
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    with pytest.raises(MkcellError, match="raw counts"):
        mk.tl.score(a)
    a.layers["counts"] = sp.csr_matrix(np.rint(np.expm1(a.X.toarray())))
    mk.tl.score(a, layer="counts")  # raw counts given in a layer work


def test_bad_options_raise(sim):
    a = sim["human"][:200].copy()
    with pytest.raises(MkcellError, match="method"):
        mk.tl.score(a, method="gsva")
    with pytest.raises(MkcellError, match="on_missing"):
        mk.tl.score(a, on_missing="drop")


@pytest.mark.skipif(importlib.util.find_spec("decoupler") is not None, reason="decoupler installed")
def test_decoupler_methods_need_decoupler(sim):
    with pytest.raises(ImportError, match="pip install decoupler"):
        mk.tl.score(sim["human"][:200].copy(), method="aucell")


def test_uns_writes_to_h5ad(sim, tmp_path):
    a = sim["human"]
    mk.tl.score(a, phase_rule="scanpy")
    a.obs["mk_state"] = a.obs["true_state"]
    a.obs["mk_pseudotime"] = a.obs["true_time"]
    mk.tl.score_trends(a)
    mk.tl.compare_scores(a)
    a.write_h5ad(tmp_path / "s.h5ad")
    b = ad.read_h5ad(tmp_path / "s.h5ad")
    assert isinstance(b.uns["mk_score"]["sets"], pd.DataFrame)
    assert isinstance(b.uns["mk_score_trends"]["table"], pd.DataFrame)
    assert isinstance(b.uns["mk_score_compare"]["table"], pd.DataFrame)
    assert b.obs["phase"].dtype.name == "category"
