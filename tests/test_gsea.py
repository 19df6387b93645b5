"""Patient-level pre-ranked GSEA, pseudobulk table and the E2F heatmap."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._genesets import hallmark_sets
from mkcell._settings import MkcellError, MkcellWarning
from mkcell.tl._gsea import pseudobulk, rank_genes

SETS = ("HALLMARK_E2F_TARGETS", "HALLMARK_HYPOXIA", "HALLMARK_APOPTOSIS")


@pytest.fixture
def table():
    """12 samples x all ~4,400 Hallmark genes (log scale); E2F targets up in group A."""
    hall = hallmark_sets()
    genes = sorted({g for s in hall.values() for g in s})
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 1.0, (12, len(genes)))
    groups = np.array(["MDS"] * 6 + ["healthy"] * 6)
    e2f = np.isin(genes, hall["HALLMARK_E2F_TARGETS"]) & ~np.isin(genes, hall["HALLMARK_APOPTOSIS"])
    X[np.ix_(groups == "MDS", e2f)] += 0.8
    samples = [f"p{i:02d}" for i in range(12)]
    tab = pd.DataFrame(X, index=samples, columns=genes)
    meta = pd.DataFrame({"group": groups}, index=samples)
    return tab, meta


def test_gsea_finds_e2f(table):
    tab, meta = table
    sets = {k: hallmark_sets()[k] for k in SETS}
    res = mk.tl.gsea(tab, meta, "group", ("MDS", "healthy"), gene_sets=sets, permutations=100)
    assert list(res.columns[:5]) == ["term", "nes", "es", "p_value", "fdr"]
    assert "lead_genes" in res.columns
    top = res.iloc[0]
    assert top["term"] == "HALLMARK_E2F_TARGETS" and top["nes"] > 1.5 and top["p_value"] < 0.05
    assert res.set_index("term").loc["HALLMARK_HYPOXIA", "fdr"] > 0.1
    assert res.attrs["params"]["n_a"] == 6
    # flipping the groups flips the sign
    flip = mk.tl.gsea(
        tab, meta, "group", ("healthy", "MDS"), gene_sets=sets, permutations=100, method="t_test"
    )
    assert flip.set_index("term").loc["HALLMARK_E2F_TARGETS", "nes"] < -1.5


def test_rank_genes_signal_to_noise():
    tab = pd.DataFrame({"G1": [3.0, 5.0, 1.0, 1.0], "G2": [1.0, 1.0, 1.0, 1.0]}, index=list("abcd"))
    a, b = np.array([True, True, False, False]), ~np.array([True, True, False, False])
    r = rank_genes(tab, a, b)
    # mean 4 vs 1; sd sqrt(2) vs floored 0.2 * 1
    assert r["G1"] == pytest.approx(3 / (np.sqrt(2) + 0.2))
    assert "G2" not in r.index  # constant everywhere


def test_gsea_input_checks(table):
    tab, meta = table
    with pytest.raises(MkcellError, match="need at least 2 each"):
        mk.tl.gsea(tab, meta, "group", ("MDS", "other"), permutations=10)
    with pytest.raises(MkcellError, match="index sample_meta"):
        mk.tl.gsea(tab, meta.set_axis([f"x{i}" for i in range(12)]), "group", permutations=10)
    with pytest.raises(MkcellError, match="no column"):
        mk.tl.gsea(tab, meta, "grp", permutations=10)


def test_mouse_table_maps_sets(table):
    tab, meta = table
    from mkcell.tl._score import translate_genes

    best = {g: translate_genes([g], "human", "mouse")[0] for g in tab.columns}
    m_tab = tab.loc[:, [g for g in tab.columns if best[g]]]
    m_tab.columns = [best[g][0] for g in m_tab.columns]
    m_tab = m_tab.loc[:, ~m_tab.columns.duplicated()]
    sets = {k: hallmark_sets()[k] for k in SETS}
    with pytest.warns(MkcellWarning, match="human symbols and the table in mouse symbols"):
        res = mk.tl.gsea(m_tab, meta, "group", ("MDS", "healthy"), gene_sets=sets, permutations=50)
    assert res.iloc[0]["term"] == "HALLMARK_E2F_TARGETS"
    assert any(g[0].isupper() and g[1:].islower() for g in res.iloc[0]["lead_genes"].split(";"))


def test_pseudobulk_gsea_and_heatmap_on_cells(sim, tmp_path):
    a = sim["human"]
    a.obs["mk_state"] = a.obs["true_state"]
    tab, meta = pseudobulk(a, "sample", state="MkP", min_cells=5)
    n_mkp = a.obs.loc[a.obs["true_state"] == "MkP", "sample"].value_counts()
    assert tab.shape == (int((n_mkp >= 5).sum()), a.n_vars) and tab.shape[0] >= 6
    assert set(meta["condition"]) == {"MDS", "healthy"} and (meta["n_cells"] >= 5).all()
    np.testing.assert_allclose((2 ** tab.to_numpy() - 1).sum(1), 1e6, rtol=1e-6)
    sets = {k: hallmark_sets()[k] for k in ("HALLMARK_E2F_TARGETS", "HALLMARK_HYPOXIA")}
    res = mk.tl.gsea(
        tab, meta, "condition", ("MDS", "healthy"), gene_sets=sets, permutations=50, min_size=5
    )
    assert res.set_index("term").loc["HALLMARK_E2F_TARGETS", "nes"] > 0
    # the plot draws the genes gsea recorded for the set (those in the table)
    e2f = res.set_index("term").loc["HALLMARK_E2F_TARGETS", "genes"].split(";")
    assert e2f and set(e2f) <= set(tab.columns)
    fig = mk.pl.e2f_heatmap(tab, meta, "condition", result=res, save=tmp_path / "e2f.png")
    assert (tmp_path / "e2f.png").stat().st_size > 0
    plt.close(fig)
    with pytest.raises(MkcellError, match="not in the GSEA result"):
        mk.pl.e2f_heatmap(tab, meta, "condition", result=res, gene_set="HALLMARK_APOPTOSIS")
    with pytest.raises(MkcellError, match="state"):
        pseudobulk(a, "sample", state="MkP", state_key="nope")
