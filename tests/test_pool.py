"""mk.tl.progenitor_pool and mk.pl.pool: per-sample MkP pool, samples as replicates."""

from __future__ import annotations

import inspect

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import mkcell as mk
from mkcell._settings import MkcellError, MkcellWarning
from mkcell.tl._pool import CONTRAST_COLUMNS, PER_SAMPLE_COLUMNS

CONTRASTS = [["MDS", "control"], ["MDS_drug", "MDS"]]


@pytest.fixture(scope="module")
def mouse_big():
    """Mouse marrow, 6,000 cells, 4 samples per condition (seed 0: checked over 30 seeds)."""
    return mk.datasets.simulate_marrow(
        6000, n_genes=760, n_species_only=0, species=("mouse",), seed=0
    )["mouse"]


def test_per_sample_equals_truth_and_columns(sim, obs_adata):
    a = obs_adata(sim["mouse"], sim["human"])
    mk.tl.progenitor_pool(a, contrasts=CONTRASTS + [["MDS", "healthy"]])
    res = a.uns["mk_pool"]
    per, con = res["per_sample"], res["contrasts"]
    assert list(per.columns) == PER_SAMPLE_COLUMNS
    assert list(per.columns[:6]) == [
        "sample",
        "species",
        "condition",
        "n_cells",
        "n_mkp",
        "mkp_fraction",
    ]
    assert list(con.columns) == CONTRAST_COLUMNS
    assert list(con.columns[:6]) == [
        "species",
        "contrast",
        "effect_log2",
        "ci_low",
        "ci_high",
        "p_value",
    ]
    truth = pd.concat([s.uns["mk_truth"]["samples"] for s in sim.values()]).set_index("sample")
    per = per.set_index("sample").loc[truth.index]
    np.testing.assert_array_equal(per["n_mkp"], truth["n_mkp"])
    np.testing.assert_array_equal(per["n_denominator"], truth["n_mk_lineage"])
    np.testing.assert_array_equal(per["n_cells"], truth["n_cells"])
    np.testing.assert_allclose(per["mkp_fraction"], truth["mkp_fraction"], rtol=0, atol=1e-12)
    assert np.corrcoef(per["mkp_fraction"], truth["mkp_fraction"])[0, 1] >= 0.9
    # one row per (species, contrast) that has both conditions
    assert set(zip(con["species"], con["contrast"], strict=True)) == {
        ("mouse", "MDS vs control"),
        ("mouse", "MDS_drug vs MDS"),
        ("human", "MDS vs healthy"),
    }
    assert (
        res["params"]["denominator"] == "auto"
    )  # whole marrow with mature Mk: auto keeps MkP / (MkP + Mk)
    assert (res["denominator_choice"]["denominator"] == "mk_lineage").all()
    assert res["params"]["contrasts"] == CONTRASTS + [["MDS", "healthy"]]


def test_noisy_labels_still_track_truth(sim, obs_adata):
    a = obs_adata(sim["mouse"], sim["human"])
    rng = np.random.default_rng(0)
    lin = np.flatnonzero(a.obs["mk_state"].isin(["MkP", "Mk"]).to_numpy())
    flip = rng.choice(lin, size=len(lin) // 20, replace=False)  # 5% label errors
    st = a.obs["mk_state"].to_numpy().copy()
    st[flip] = np.where(st[flip] == "MkP", "Mk", "MkP")
    a.obs["mk_state"] = st
    mk.tl.progenitor_pool(a)
    per = a.uns["mk_pool"]["per_sample"].set_index("sample")
    truth = pd.concat([s.uns["mk_truth"]["samples"] for s in sim.values()]).set_index("sample")
    assert np.corrcoef(per.loc[truth.index, "mkp_fraction"], truth["mkp_fraction"])[0, 1] >= 0.9


def test_accumulation_and_reduction_signs(mouse_big, obs_adata):
    a = obs_adata(mouse_big)
    mk.tl.progenitor_pool(a, contrasts=CONTRASTS)
    con = a.uns["mk_pool"]["contrasts"].set_index("contrast")
    up, down = con.loc["MDS vs control"], con.loc["MDS_drug vs MDS"]
    assert up["effect_log2"] > 0 and up["ci_low"] > 0 and up["p_value"] < 0.05
    assert up["ci_low"] < up["effect_log2"] < up["ci_high"]
    assert down["effect_log2"] < 0
    assert (con["n_samples_a"] == 4).all() and (con["n_samples_b"] == 4).all()
    assert (con["note"] == "").all()


def test_null_has_no_false_positive(sim_null, obs_adata):
    # seeded null (conftest, seed 2). Only mouse is asserted: in this seed the human
    # per-sample truths themselves differ by chance (expected MkP share ~0.35 in all
    # four MDS samples vs ~0.27 in healthy), a genuine 5% event of the sampling model.
    a = obs_adata(sim_null["mouse"], sim_null["human"])
    mk.tl.progenitor_pool(a, contrasts=CONTRASTS)
    con = a.uns["mk_pool"]["contrasts"]
    assert len(con) == 2
    assert (con["p_value"] >= 0.05).all(), con
    assert ((con["ci_low"] < 0) & (con["ci_high"] > 0)).all()


def test_false_positive_rate_over_seeded_nulls(obs_adata):
    """12 small seeded nulls x 2 contrasts: the rate at p < 0.05 stays near 5% (deterministic)."""
    pvals = []
    for seed in range(12):
        s = mk.datasets.simulate_marrow(
            800, n_genes=760, n_species_only=0, species=("mouse",), null=True, seed=100 + seed
        )
        a = obs_adata(s["mouse"])
        mk.tl.progenitor_pool(a, contrasts=CONTRASTS)
        pvals += a.uns["mk_pool"]["contrasts"]["p_value"].tolist()
    pvals = np.asarray(pvals)
    assert np.isfinite(pvals).all()
    assert (pvals < 0.05).mean() <= 0.15
    assert 0.3 < np.median(pvals) < 0.7  # roughly uniform, not conservative to uselessness


def test_two_vs_two_ci_is_wider(mouse_big, obs_adata):
    a = obs_adata(mouse_big)
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "control"]])
    full = a.uns["mk_pool"]["contrasts"].iloc[0]
    from itertools import combinations

    widths = []  # every 2-vs-2 subset: the CI is wider on average (one subset may agree by chance)
    for mds in combinations(range(1, 5), 2):
        for ctl in combinations(range(1, 5), 2):
            keep = [f"mouse_MDS_{i}" for i in mds] + [f"mouse_control_{i}" for i in ctl]
            b = a[a.obs["sample"].isin(keep)].copy()
            mk.tl.progenitor_pool(b, contrasts=[["MDS", "control"]])
            two = b.uns["mk_pool"]["contrasts"].iloc[0]
            assert two["n_samples_a"] == two["n_samples_b"] == 2
            assert np.isfinite(two["ci_low"]) and np.isfinite(two["p_value"])
            widths.append(two["ci_high"] - two["ci_low"])
    assert np.median(widths) > 1.5 * (full["ci_high"] - full["ci_low"]), (np.median(widths), full)


def test_one_sample_condition_warns_and_gives_nan(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    a = a[~a.obs["sample"].isin(["mouse_control_2", "mouse_control_3", "mouse_control_4"])].copy()
    with pytest.warns(
        MkcellWarning, match="no replicate-aware test possible: control has 1 sample"
    ):
        mk.tl.progenitor_pool(a, contrasts=CONTRASTS)
    res = a.uns["mk_pool"]
    row = res["contrasts"].set_index("contrast").loc["MDS vs control"]
    assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"]) and np.isnan(row["p_value"])
    assert np.isfinite(row["effect_log2"])
    assert row["note"] == "no replicate-aware test possible: control has 1 sample"
    assert row["n_samples_b"] == 1
    # the other contrast is untouched, and the single sample keeps its numbers
    other = res["contrasts"].set_index("contrast").loc["MDS_drug vs MDS"]
    assert np.isfinite(other["p_value"]) and other["note"] == ""
    assert (res["per_sample"]["sample"] == "mouse_control_1").sum() == 1


def test_zero_mkp_samples_give_finite_effects(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    st = a.obs["mk_state"].to_numpy().copy()
    mds = a.obs["condition"].to_numpy() == "MDS"
    st[mds & (st == "MkP")] = "Mk"  # no MkP at all in MDS
    empty = (a.obs["sample"] == "mouse_control_1").to_numpy()
    st[empty & (st == "MkP")] = "Mk"  # one control sample without MkP
    a.obs["mk_state"] = st
    mk.tl.progenitor_pool(a, contrasts=CONTRASTS)
    res = a.uns["mk_pool"]
    con = res["contrasts"].set_index("contrast")
    for c in ("MDS vs control", "MDS_drug vs MDS"):
        assert np.isfinite(
            con.loc[c, ["effect_log2", "ci_low", "ci_high", "p_value"]].to_numpy(float)
        ).all()
    assert con.loc["MDS vs control", "effect_log2"] < -2
    assert con.loc["MDS_drug vs MDS", "effect_log2"] > 2
    per = res["per_sample"].set_index("sample")
    assert per.loc["mouse_control_1", "mkp_fraction"] == 0
    assert np.isfinite(res["per_condition"]["ci_high"]).all()


def test_empty_denominator_is_nan_not_an_error(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    st = a.obs["mk_state"].to_numpy().copy()
    st[(a.obs["sample"] == "mouse_MDS_1").to_numpy() & np.isin(st, ["MkP", "Mk"])] = "myeloid"
    a.obs["mk_state"] = st
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "control"]], denominator="mk_lineage")
    per = a.uns["mk_pool"]["per_sample"].set_index("sample")
    assert per.loc["mouse_MDS_1", "n_denominator"] == 0 and np.isnan(
        per.loc["mouse_MDS_1", "mkp_fraction"]
    )
    row = a.uns["mk_pool"]["contrasts"].iloc[0]
    assert row["n_samples_a"] == 3 and np.isfinite(row["p_value"])


def test_absent_condition_lists_conditions(sim, obs_adata):
    a = obs_adata(sim["mouse"], sim["human"])
    with pytest.raises(
        MkcellError,
        match=r"'treated'.*human: \['MDS', 'healthy'\]; mouse: \['MDS', 'MDS_drug', 'control'\]",
    ):
        mk.tl.progenitor_pool(a, contrasts=[["treated", "control"]])
    with pytest.raises(MkcellError, match="no species has both"):
        mk.tl.progenitor_pool(a, contrasts=[["MDS_drug", "healthy"]])
    with pytest.raises(MkcellError, match="denominator"):
        mk.tl.progenitor_pool(a, denominator="cells")
    assert "mk_pool" not in a.uns


def test_unbalanced_design_and_denominators(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    a = a[a.obs["sample"] != "mouse_MDS_4"].copy()
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "control"]])
    row = a.uns["mk_pool"]["contrasts"].iloc[0]
    assert (row["n_samples_a"], row["n_samples_b"]) == (3, 4)
    assert np.isfinite([row["effect_log2"], row["ci_low"], row["ci_high"], row["p_value"]]).all()
    for den, states in (("hspc", ["HSC/MPP", "MEP", "MkP"]), ("all", None)):
        b = mk.tl.progenitor_pool(
            a, contrasts=[["MDS", "control"]], denominator=den, key_added="pool2", copy=True
        )
        per = b.uns["pool2"]["per_sample"].set_index("sample")
        obs = a.obs
        want = (
            (obs["mk_state"].isin(states) if states else pd.Series(True, index=obs.index))
            .groupby(obs["sample"])
            .sum()
        )
        assert (per["n_denominator"] == want.loc[per.index]).all()
        assert (per["denominator"] == den).all()
    assert "pool2" not in a.uns


def test_default_contrasts_copy_and_single_species(sim, obs_adata):
    a = obs_adata(sim["mouse"], sim["human"])
    b = mk.tl.progenitor_pool(a, copy=True)
    assert "mk_pool" not in a.uns and isinstance(b, ad.AnnData)
    con = b.uns["mk_pool"]["contrasts"]
    assert set(con["contrast"]) == {"MDS vs control", "MDS_drug vs control", "MDS vs healthy"}
    h = obs_adata(sim["human"])
    del h.obs["species"]
    mk.tl.progenitor_pool(h, contrasts=["MDS", "healthy"])
    assert h.uns["mk_pool"]["contrasts"]["species"].tolist() == ["all"]


def test_sample_in_two_conditions_is_an_error(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    cond = a.obs["condition"].to_numpy().copy()
    cond[np.flatnonzero(a.obs["sample"] == "mouse_MDS_1")[:5]] = "control"
    a.obs["condition"] = cond
    with pytest.raises(MkcellError, match="mouse_MDS_1.*several conditions"):
        mk.tl.progenitor_pool(a)


def test_plot_reads_keys(sim, tmp_path, obs_adata):
    a = obs_adata(sim["mouse"], sim["human"])
    with pytest.raises(MkcellError, match="run mk.tl.progenitor_pool"):
        mk.pl.pool(a)
    mk.tl.progenitor_pool(a)
    fig = mk.pl.pool(a, save=tmp_path / "pool.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert (tmp_path / "pool.png").stat().st_size > 0


@pytest.mark.parametrize(
    "func",
    [
        "tl.progenitor_pool",
        "tl.maturation_shift",
        "tl.composition",
        "tl.da_neighbourhoods",
        "pl.pool",
        "pl.pseudotime_density",
        "pl.da_neighbourhoods",
    ],
)
def test_signature_conventions(func):
    mod, name = func.split(".")
    f = getattr(getattr(mk, mod), name)
    params = list(inspect.signature(f).parameters.values())
    assert params[0].name == "adata"
    positional = [p for p in params[1:] if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert len(positional) <= 3
    assert all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
    if mod == "tl":
        assert (
            "copy" in inspect.signature(f).parameters
            and "key_added" in inspect.signature(f).parameters
        )


def test_results_survive_h5ad(sim, tmp_path, obs_adata):
    a = obs_adata(sim["mouse"])
    with pytest.warns(MkcellWarning):
        b = a[a.obs["sample"] != "mouse_control_2"].copy()
        b = b[~b.obs["sample"].isin(["mouse_control_3", "mouse_control_4"])].copy()
        mk.tl.progenitor_pool(b, contrasts=CONTRASTS)
    b.write_h5ad(tmp_path / "pool.h5ad")
    back = ad.read_h5ad(tmp_path / "pool.h5ad").uns["mk_pool"]
    pd.testing.assert_frame_equal(
        back["contrasts"].reset_index(drop=True), b.uns["mk_pool"]["contrasts"], check_dtype=False
    )
    assert list(back["per_sample"].columns) == PER_SAMPLE_COLUMNS


def test_auto_denominator_without_mature_mk(sim, obs_adata, caplog):
    """CD34+-like cohorts (mature Mk removed): auto takes MkP / HSPC and says why.

    Whole marrow keeps MkP / (MkP + Mk).
    """
    a = obs_adata(sim["mouse"], sim["human"])
    human_mk = ((a.obs["species"] == "human") & (a.obs["mk_state"] == "Mk")).to_numpy()
    a = a[~human_mk].copy()
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "healthy"], ["MDS", "control"]])
    res = a.uns["mk_pool"]
    choice = res["denominator_choice"].set_index("species")
    assert choice.loc["mouse", "denominator"] == "mk_lineage"
    assert choice.loc["human", "denominator"] == "hspc"
    assert "mature Mk absent or scarce" in choice.loc["human", "reason"]
    per = res["per_sample"]
    assert (per.loc[per["species"] == "human", "denominator"] == "hspc").all()
    assert (per.loc[per["species"] == "human", "mkp_fraction"] < 0.95).all()
    # forcing MkP / (MkP + Mk) on the CD34+-like human cohort saturates at 1, with a warning
    with caplog.at_level("WARNING", logger="mkcell"):
        mk.tl.progenitor_pool(
            a, contrasts=[["MDS", "healthy"]], denominator="mk_lineage", key_added="forced"
        )
    assert "saturates" in caplog.text


def test_auto_denominator_counts_mature_mk_by_stage(obs_adata):
    """A CD34+ sort keeps immature Mk: with the trajectory's stages only mature_Mk count."""
    a = obs_adata(
        mk.datasets.simulate_marrow(4000, n_genes=800, species=("human",), seed=3)["human"]
    )
    a.obs["mk_stage"] = a.obs["true_stage"].astype(str)
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "healthy"]])
    assert (
        a.uns["mk_pool"]["denominator_choice"]["denominator"].iloc[0] == "mk_lineage"
    )  # whole marrow
    sorted_ = a[
        a.obs["true_stage"].astype(str) != "mature_Mk"
    ].copy()  # immature Mk are still called Mk
    assert (sorted_.obs["mk_state"] == "Mk").sum() > 5 * sorted_.obs["sample"].nunique()
    mk.tl.progenitor_pool(sorted_, contrasts=[["MDS", "healthy"]])
    choice = sorted_.uns["mk_pool"]["denominator_choice"]
    assert choice["denominator"].iloc[0] == "hspc", choice["reason"].iloc[0]
    assert "mature Mk" in choice["reason"].iloc[0]
