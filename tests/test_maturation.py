"""mk.tl.maturation_shift and mk.pl.pseudotime_density."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import mkcell as mk
from mkcell._settings import MkcellError, MkcellWarning
from mkcell.datasets._simulate import MKP_END
from mkcell.tl._maturation import CONTRAST_COLUMNS, PER_SAMPLE_COLUMNS

CONTRASTS = [["MDS", "control"], ["MDS_drug", "MDS"]]


def test_per_sample_shares_match_truth(sim, obs_adata):
    a = obs_adata(sim["mouse"], sim["human"])
    mk.tl.maturation_shift(a, contrasts=CONTRASTS, transition=MKP_END)
    res = a.uns["mk_maturation"]
    per = res["per_sample"]
    assert list(per.columns) == PER_SAMPLE_COLUMNS
    assert list(res["contrasts"].columns) == CONTRAST_COLUMNS
    truth = pd.concat([s.uns["mk_truth"]["samples"] for s in sim.values()]).set_index("sample")
    per = per.set_index("sample").loc[truth.index]
    # at the true MkP end, "before" is exactly the MkP share of the lineage
    np.testing.assert_array_equal(per["n_lineage"], truth["n_mk_lineage"])
    np.testing.assert_array_equal(per["n_before"], truth["n_mkp"])
    np.testing.assert_allclose(per["frac_before"], truth["mkp_fraction"])
    np.testing.assert_allclose(per["frac_before"] + per["frac_after"], 1)
    assert res["params"]["transition"] == MKP_END
    # the mean shift is the difference of the per-sample means (condition-only design)
    con = res["contrasts"].set_index(["species", "contrast"])
    ps = per.reset_index()
    mouse = ps[ps["species"] == "mouse"].groupby("condition")["mean_pseudotime"].mean()
    assert con.loc[("mouse", "MDS vs control"), "mean_shift"] == pytest.approx(
        mouse["MDS"] - mouse["control"]
    )


def test_default_transition_and_mds_shift(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    mk.tl.maturation_shift(a, contrasts=CONTRASTS)
    res = a.uns["mk_maturation"]
    assert 0.25 < res["params"]["transition"] < 0.5  # between MkP and Mk medians
    con = res["contrasts"].set_index("contrast")
    up = con.loc["MDS vs control"]
    # MDS: more MkP and maturing Mk skewed early -> earlier pseudotime, CI from samples excludes 0
    assert up["mean_shift"] < 0 and up["mean_shift_ci_high"] < 0
    assert up["frac_after_a"] < up["frac_after_b"]
    assert up["p_adj"] < 0.05 and up["p_value"] <= up["p_adj"]
    assert up["frac_after_diff"] < 0
    assert up["wasserstein"] > 0 and 0 < up["ks_stat"] <= 1
    assert con.loc["MDS_drug vs MDS", "mean_shift"] > 0  # treatment moves cells back to later times
    # deterministic: no resampling
    b = mk.tl.maturation_shift(a, contrasts=CONTRASTS, copy=True)
    pd.testing.assert_frame_equal(b.uns["mk_maturation"]["contrasts"], res["contrasts"])


def test_samples_are_the_replicates_not_cells(sim, obs_adata):
    """Duplicating every cell leaves the test unchanged (a cell-level test would sharpen)."""
    a = obs_adata(sim["mouse"])
    a = a[
        a.obs["sample"].isin(["mouse_MDS_1", "mouse_MDS_2", "mouse_control_1", "mouse_control_2"])
    ].copy()
    mk.tl.maturation_shift(a, contrasts=[["MDS", "control"]])
    doubled = ad.concat([a, a], index_unique="-")
    mk.tl.maturation_shift(doubled, contrasts=[["MDS", "control"]])
    r1, r2 = (x.uns["mk_maturation"]["contrasts"].iloc[0] for x in (a, doubled))
    assert r1["n_samples_a"] == r1["n_samples_b"] == 2
    for col in ("mean_shift", "mean_shift_ci_low", "mean_shift_ci_high", "p_value"):
        assert r2[col] == pytest.approx(r1[col], abs=1e-12)
    assert r1["mean_shift_ci_high"] - r1["mean_shift_ci_low"] > 0
    # 2 vs 2: exact p over the 6 relabelings, never below 1/3
    assert r1["p_min"] == pytest.approx(1 / 3) and r1["p_value"] >= 1 / 3
    assert "smallest attainable p" in r1["note"]


def test_single_sample_warns(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    a = a[~a.obs["sample"].isin(["mouse_control_2", "mouse_control_3", "mouse_control_4"])].copy()
    with pytest.warns(MkcellWarning, match="control has 1 sample"):
        mk.tl.maturation_shift(a, contrasts=[["MDS", "control"]])
    row = a.uns["mk_maturation"]["contrasts"].iloc[0]
    assert np.isnan(row["mean_shift_ci_low"]) and np.isfinite(row["mean_shift"])
    assert row["note"].startswith("no replicate-aware test possible")


def test_input_errors(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    with pytest.raises(MkcellError, match="outside"):
        mk.tl.maturation_shift(a, transition=1.5)
    with pytest.raises(MkcellError, match="conditions present per species"):
        mk.tl.maturation_shift(a, contrasts=[["healthy", "MDS"]])
    b = a.copy()
    b.obs["mk_pseudotime"] = np.nan
    with pytest.raises(MkcellError, match="no finite value"):
        mk.tl.maturation_shift(b)
    del b.obs["mk_pseudotime"]
    with pytest.raises(MkcellError, match="mk_pseudotime"):
        mk.tl.maturation_shift(b)


def test_pseudotime_density_plot(sim, tmp_path, obs_adata):
    a = obs_adata(sim["mouse"], sim["human"])
    fig = mk.pl.pseudotime_density(a)  # works without tool results
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    mk.tl.maturation_shift(a)
    fig = mk.pl.pseudotime_density(a, save=tmp_path / "pt.png")
    assert (tmp_path / "pt.png").stat().st_size > 0
