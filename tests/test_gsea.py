"""Patient-level gene-set tests (phenotype permutation, camera, gene permutation), pseudobulk
table and the E2F heatmap."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._genesets import hallmark_sets
from mkcell._settings import MkcellError, MkcellWarning
from mkcell.tl._camera import camera
from mkcell.tl._gsea import METHOD_LABELS, pseudobulk, rank_genes

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


@pytest.mark.parametrize("test", ["gene_permutation", "phenotype", "camera"])
def test_gsea_finds_e2f(table, test):
    tab, meta = table
    sets = {k: hallmark_sets()[k] for k in SETS}
    res = mk.tl.gsea(
        tab, meta, "group", ("MDS", "healthy"), gene_sets=sets, permutations=100, test=test
    )
    assert list(res.columns[:5]) == ["term", "nes", "es", "p_value", "fdr"]
    assert {"lead_genes", "genes", "direction", "method"} <= set(res.columns)
    assert (res["method"] == METHOD_LABELS[test]).all()
    top = res.iloc[0]
    assert top["term"] == "HALLMARK_E2F_TARGETS" and top["nes"] > 1.5 and top["p_value"] < 0.05
    assert top["direction"] == "Up"
    assert res.set_index("term").loc["HALLMARK_HYPOXIA", "fdr"] > 0.1
    params = res.attrs["params"]
    assert params["n_a"] == 6 and params["test"] == test and params["test_used"] == test
    # flipping the groups flips the sign
    flip = mk.tl.gsea(
        tab,
        meta,
        "group",
        ("healthy", "MDS"),
        gene_sets=sets,
        permutations=100,
        method="t_test",
        test=test,
    )
    row = flip.set_index("term").loc["HALLMARK_E2F_TARGETS"]
    assert row["nes"] < -1.5 and row["direction"] == "Down"


def test_gene_permutation_is_labelled_and_warned(table, caplog):
    tab, meta = table
    sets = {k: hallmark_sets()[k] for k in SETS}
    with caplog.at_level(logging.WARNING, logger="mkcell"):
        res = mk.tl.gsea(
            tab, meta, "group", gene_sets=sets, permutations=20, test="gene_permutation"
        )
    assert "not calibrated" in caplog.text
    assert res["method"].str.contains("not calibrated").all()
    assert res["lead_genes"].str.len().gt(0).all() and res["es"].notna().all()


def test_camera_output_columns(table):
    tab, meta = table
    sets = {k: hallmark_sets()[k] for k in SETS}
    res = mk.tl.gsea(tab, meta, "group", gene_sets=sets, test="camera")
    assert list(res.columns) == [
        "term",
        "nes",
        "es",
        "p_value",
        "fdr",
        "fwer",
        "set_size",
        "tag",
        "lead_genes",
        "genes",
        "direction",
        "method",
    ]
    assert res["es"].isna().all() and (res["lead_genes"] == "").all()
    assert (res["fdr"] >= res["p_value"] - 1e-12).all() and res["fdr"].le(1).all()
    sizes = res.set_index("term")["set_size"]
    genes = res.set_index("term")["genes"].str.split(";").str.len()
    assert (sizes == genes).all()


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
    with pytest.raises(MkcellError, match="test='x'"):
        mk.tl.gsea(tab, meta, "group", test="x")
    with pytest.raises(MkcellError, match="permutations=0"):
        mk.tl.gsea(tab, meta, "group", permutations=0)
    with pytest.raises(MkcellError, match="method='wilcoxon'"):
        mk.tl.gsea(tab, meta, "group", method="wilcoxon")
    with pytest.raises(MkcellError, match="no gene set has between min_size"):
        mk.tl.gsea(tab, meta, "group", gene_sets={"S": ["NOPE1", "NOPE2"]})
    two = meta.iloc[[0, 1, 6, 7]]
    with pytest.raises(MkcellError, match="test='phenotype' .* needs >= 3 samples per group"):
        mk.tl.gsea(tab.loc[two.index], two, "group", test="phenotype")


def test_mouse_table_maps_sets(table):
    tab, meta = table
    from mkcell.tl._score import translate_genes

    best = {g: translate_genes([g], "human", "mouse")[0] for g in tab.columns}
    m_tab = tab.loc[:, [g for g in tab.columns if best[g]]]
    m_tab.columns = [best[g][0] for g in m_tab.columns]
    m_tab = m_tab.loc[:, ~m_tab.columns.duplicated()]
    sets = {k: hallmark_sets()[k] for k in SETS}
    with pytest.warns(MkcellWarning, match="human symbols and the table in mouse symbols"):
        res = mk.tl.gsea(
            m_tab,
            meta,
            "group",
            ("MDS", "healthy"),
            gene_sets=sets,
            permutations=50,
            test="phenotype",
        )
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


def _prolif_cohort(n: int, *, shift: float = 0.0, G: int = 600, seed: int = 0):
    """``n`` samples x ``G`` genes whose E2F- and G2M-like sets (and 60 unlisted genes) follow
    each sample's proliferation; a random half is group A, whose E2F-like set moves by
    ``shift``."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i:03d}" for i in range(G)]
    prolif = rng.normal(0.0, 1.0, n)
    load = np.zeros(G)
    load[:80] = rng.uniform(0.6, 1.2, 80)
    load[rng.choice(np.arange(80, G), 60, replace=False)] = rng.uniform(0.6, 1.2, 60)
    X = rng.normal(5.0, 1.0, G) + prolif[:, None] * load + rng.normal(0.0, 0.4, (n, G))
    grp = rng.permutation(np.array(["A"] * (n // 2) + ["B"] * (n - n // 2)))
    X[grp == "A", :40] += shift
    idx = [f"s{i}" for i in range(n)]
    sets = {
        "E2F_LIKE": genes[:40],
        "G2M_LIKE": genes[40:80],
        "OTHER": genes[100:140],
        "OTHER2": genes[200:260],
    }
    tab = pd.DataFrame(X, index=idx, columns=genes)
    return tab, pd.DataFrame({"g": grp}, index=idx), sets


def test_null_calibration_camera_vs_gene_permutation():
    """Correlated sets on null splits: gene permutation calls them, camera does not."""
    hits = {"camera": [], "gene_permutation": []}
    for seed in range(30):
        tab, meta, sets = _prolif_cohort(8, seed=seed)
        for test in hits:
            res = mk.tl.gsea(
                tab, meta, "g", ("A", "B"), gene_sets=sets, test=test, permutations=100, min_size=10
            ).set_index("term")
            hits[test].append(res.loc[["E2F_LIKE", "G2M_LIKE"], "p_value"].to_numpy() < 0.05)
    camera_fpr = np.mean(hits["camera"], axis=0)
    old_fpr = np.mean(hits["gene_permutation"], axis=0)
    assert (camera_fpr <= 0.2).all(), camera_fpr
    assert (old_fpr >= 0.5).all(), old_fpr


def test_camera_detects_planted_shift():
    tab, meta, sets = _prolif_cohort(12, shift=2.0, seed=1)
    res = mk.tl.gsea(tab, meta, "g", ("A", "B"), gene_sets=sets, test="camera", min_size=10)
    row = res.set_index("term").loc["E2F_LIKE"]
    assert row["p_value"] < 0.01 and row["direction"] == "Up" and row["nes"] > 0
    assert res.set_index("term").loc["OTHER", "p_value"] > 0.05


def test_camera_estimates_the_set_correlation():
    tab, meta, sets = _prolif_cohort(12, seed=3)
    X = tab.to_numpy()
    a = (meta["g"] == "A").to_numpy()
    pos = {g: i for i, g in enumerate(tab.columns)}
    idx = {k: [pos[g] for g in v] for k, v in sets.items()}
    res = camera(X, a, ~a, idx).set_index("term")
    assert res.loc["E2F_LIKE", "correlation"] > 0.4 and res.loc["G2M_LIKE", "vif"] > 10
    assert res.loc["OTHER", "correlation"] < 0.1
    # camera's set correlation is the mean pairwise correlation of the within-group residuals
    ga = X[:, idx["E2F_LIKE"]]
    resid = np.where(a[:, None], ga - ga[a].mean(0), ga - ga[~a].mean(0))
    u = resid / np.linalg.norm(resid, axis=0)
    r = (u.T @ u)[np.triu_indices(len(idx["E2F_LIKE"]), 1)].mean()
    assert res.loc["E2F_LIKE", "correlation"] == pytest.approx(r)
    with pytest.raises(MkcellError, match="needs >= 2 samples per group"):
        camera(X, a & (np.cumsum(a) <= 1), ~a, idx)


@pytest.mark.parametrize(("n_per_group", "expected"), [(5, "camera"), (6, "phenotype")])
def test_auto_picks_test_by_group_size(n_per_group, expected, caplog):
    tab, meta, sets = _prolif_cohort(2 * n_per_group, G=200, seed=5)
    with caplog.at_level(logging.INFO, logger="mkcell"):
        res = mk.tl.gsea(tab, meta, "g", ("A", "B"), gene_sets=sets, permutations=20, min_size=10)
    assert res.attrs["params"]["test"] == "auto"
    assert res.attrs["params"]["test_used"] == expected
    assert (res["method"] == METHOD_LABELS[expected]).all()
    assert f"test='auto' -> {'camera' if expected == 'camera' else 'phenotype'}" in caplog.text


def test_phenotype_says_when_relabelings_run_out(caplog):
    tab, meta, sets = _prolif_cohort(6, G=200, seed=2)
    with caplog.at_level(logging.WARNING, logger="mkcell"):
        res = mk.tl.gsea(
            tab,
            meta,
            "g",
            ("A", "B"),
            gene_sets=sets,
            test="phenotype",
            permutations=50,
            min_size=10,
        )
    assert "only 20 distinct relabelings" in caplog.text and "1/20" in caplog.text
    assert (res["method"] == "phenotype permutation").all()


def test_camera_counts_correlation_among_the_other_genes():
    """A quarter of the genes follow proliferation: unrelated sets look "down" against them
    under Wu & Smyth's variance (other genes taken as independent), not with the default."""
    hits = {True: [], False: []}
    sets = {"E2F_LIKE": range(40), "UNRELATED": range(800, 1000), "UNRELATED2": range(600, 700)}
    for seed in range(30):
        rng = np.random.default_rng(seed)
        load = np.zeros(1000)
        load[:250] = rng.uniform(0.6, 1.2, 250)
        X = rng.normal(5.0, 1.0, 1000) + rng.normal(0.0, 1.0, 8)[:, None] * load
        X += rng.normal(0.0, 0.4, X.shape)
        a = rng.permutation(np.repeat([True, False], 4))
        for rest in hits:
            res = camera(X, a, ~a, sets, rest_correlation=rest)
            hits[rest].append(res["p_value"].to_numpy() < 0.05)
    default, classic = np.mean(hits[True], axis=0), np.mean(hits[False], axis=0)
    assert (default <= 0.15).all(), default
    assert classic[1] >= 0.4, classic
