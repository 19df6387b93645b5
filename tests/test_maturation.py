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
    mk.tl.maturation_shift(a, contrasts=CONTRASTS, transition=MKP_END, n_boot=0)
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
    assert (
        res["contrasts"][["wasserstein_ci_low", "mean_shift_ci_low"]].isna().all().all()
    )  # n_boot=0


def test_default_transition_and_mds_shift(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    mk.tl.maturation_shift(a, contrasts=CONTRASTS, n_boot=100, seed=1)
    res = a.uns["mk_maturation"]
    assert 0.25 < res["params"]["transition"] < 0.5  # between MkP and Mk medians
    con = res["contrasts"].set_index("contrast")
    up = con.loc["MDS vs control"]
    # MDS: more MkP and maturing Mk skewed early -> earlier pseudotime, CI from samples excludes 0
    assert up["mean_shift"] < 0 and up["mean_shift_ci_high"] < 0
    assert up["frac_after_a"] < up["frac_after_b"]
    assert up["wasserstein_ci_low"] <= up["wasserstein"] <= up["wasserstein_ci_high"]
    assert 0 < up["ks_stat"] <= 1 and up["ks_ci_low"] <= up["ks_ci_high"]
    assert con.loc["MDS_drug vs MDS", "mean_shift"] > 0  # treatment moves cells back to later times
    # same seed, same numbers
    b = mk.tl.maturation_shift(a, contrasts=CONTRASTS, n_boot=100, seed=1, copy=True)
    pd.testing.assert_frame_equal(b.uns["mk_maturation"]["contrasts"], res["contrasts"])


def test_bootstrap_resamples_samples_not_cells(sim, obs_adata):
    """Duplicating every cell leaves a sample bootstrap unchanged (a cell one would narrow)."""
    a = obs_adata(sim["mouse"])
    a = a[
        a.obs["sample"].isin(["mouse_MDS_1", "mouse_MDS_2", "mouse_control_1", "mouse_control_2"])
    ].copy()
    mk.tl.maturation_shift(a, contrasts=[["MDS", "control"]], n_boot=200)
    doubled = ad.concat([a, a], index_unique="-")
    mk.tl.maturation_shift(doubled, contrasts=[["MDS", "control"]], n_boot=200)
    r1, r2 = (x.uns["mk_maturation"]["contrasts"].iloc[0] for x in (a, doubled))
    assert r1["n_samples_a"] == r1["n_samples_b"] == 2
    for col in (
        "mean_shift",
        "mean_shift_ci_low",
        "mean_shift_ci_high",
        "wasserstein_ci_low",
        "ks_ci_high",
    ):
        assert r2[col] == pytest.approx(r1[col], abs=1e-12)
    assert r1["mean_shift_ci_high"] - r1["mean_shift_ci_low"] > 0


def test_single_sample_warns(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    a = a[~a.obs["sample"].isin(["mouse_control_2", "mouse_control_3", "mouse_control_4"])].copy()
    with pytest.warns(MkcellWarning, match="control has 1 sample"):
        mk.tl.maturation_shift(a, contrasts=[["MDS", "control"]], n_boot=20)
    row = a.uns["mk_maturation"]["contrasts"].iloc[0]
    assert np.isnan(row["mean_shift_ci_low"]) and np.isfinite(row["mean_shift"])
    assert row["note"].startswith("no sample bootstrap possible")


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
    mk.tl.maturation_shift(a, n_boot=10)
    fig = mk.pl.pseudotime_density(a, save=tmp_path / "pt.png")
    assert (tmp_path / "pt.png").stat().st_size > 0
