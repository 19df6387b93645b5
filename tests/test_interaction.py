"""Disease x drug interaction contrasts (A vs B) vs (C vs D) in the pool, maturation and scores.

Four-arm cohorts (MDS, MDS_drug, control, control_drug) are built here cell by cell from a
small per-sample simulation: the mouse simulator has no control + drug arm.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

import mkcell as mk
from mkcell._settings import MkcellError, MkcellWarning
from mkcell.tl._design import contrast_label, parse_contrasts, resolve_contrasts

ARMS = ("MDS_drug", "MDS", "control_drug", "control")
INTERACTION = list(ARMS)
LABEL = "(MDS_drug vs MDS) vs (control_drug vs control)"


def _four_arm(gen, k=3, interaction=0.0, litter_sd=0.0, n=(600, 1200)):
    """``k`` mice per arm; MkP logit = MDS + drug + interaction x MDS_drug + person + litter.

    Each mouse has a pseudotime per cell and an E2F score per MkP cell that follow the same
    per-sample effect, so all three tools see the planted interaction.
    """
    mds = np.repeat([1, 1, 0, 0], k)
    drug = np.repeat([1, 0, 1, 0], k)
    cond = np.repeat(ARMS, k)
    litter = np.tile([f"L{i}" for i in range(k)], 4)
    litter_fx = dict(zip(np.unique(litter), gen.normal(0, litter_sd, k), strict=True))
    eff = (
        0.8 * mds - 0.3 * drug + interaction * mds * drug + np.array([litter_fx[x] for x in litter])
    )
    eff = eff + 0.25 * gen.normal(size=4 * k)
    sizes = gen.integers(*n, size=4 * k)
    frames = []
    for i, (m, e) in enumerate(zip(sizes, eff, strict=True)):
        n_mkp = gen.binomial(m, expit(logit(0.08) + e))
        state = np.r_[np.full(n_mkp, "MkP"), np.full(m - n_mkp, "HSC/MPP")]
        frames.append(
            pd.DataFrame(
                {
                    "sample": f"m{i}",
                    "condition": cond[i],
                    "litter": litter[i],
                    "mk_state": state,
                    "mk_pseudotime": np.clip(gen.normal(0.5 + 0.1 * e, 0.15, m), 0, 1),
                    "mk_score_e2f_targets": gen.normal(e, 0.5, m),
                }
            )
        )
    obs = pd.concat(frames, ignore_index=True)
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=np.zeros((len(obs), 1), np.float32), obs=obs)


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MkcellWarning)
        f(*args, **kwargs)


def _log2_fractions(a):
    o = a.obs
    n_mkp = o.groupby("sample")["mk_state"].apply(lambda s: (s == "MkP").sum())
    n = o.groupby("sample").size()
    y = np.log2((n_mkp + 0.5) / (n + 1))
    per = o.groupby("sample")[["condition", "litter"]].first()
    return per.assign(y=y)


# --------------------------------------------------------------------------- parsing


def test_parse_accepts_interactions_in_every_form():
    four = ("MDS_drug", "MDS", "control_drug", "control")
    assert parse_contrasts(INTERACTION) == [four]
    assert parse_contrasts([INTERACTION, ["MDS", "control"]]) == [four, ("MDS", "control")]
    assert parse_contrasts(LABEL) == [four]
    assert parse_contrasts([LABEL, "MDS vs control"]) == [four, ("MDS", "control")]
    assert contrast_label(four) == LABEL
    assert contrast_label(("MDS", "control")) == "MDS vs control"


@pytest.mark.parametrize(
    ("contrasts", "phrase"),
    [
        ([["MDS_drug", "MDS", "MDS_drug", "control"]], "not an interaction of four different"),
        ("MDS_drug vs MDS vs control_drug vs control", "not an interaction of four different"),
        ([["MDS_drug", "MDS", "control"]], "or an interaction [A, B, C, D]"),
        ("(MDS_drug vs MDS) vs control", "or an interaction [A, B, C, D]"),
    ],
)
def test_malformed_interactions_give_one_line(contrasts, phrase):
    with pytest.raises(MkcellError) as err:
        parse_contrasts(contrasts)
    assert phrase in str(err.value) and "\n" not in str(err.value)


def test_resolve_needs_all_four_and_is_refused_where_not_fitted():
    table = pd.DataFrame({"species": "mouse", "condition": list(ARMS)})
    assert resolve_contrasts(table, [INTERACTION], interactions=True) == [("mouse", *ARMS)]
    with pytest.raises(MkcellError, match="is an interaction, which this tool does not fit"):
        resolve_contrasts(table, [INTERACTION])
    with pytest.raises(MkcellError, match=r"condition\(s\) \['control_drug'\] .* not found"):
        resolve_contrasts(
            table[table["condition"] != "control_drug"], [INTERACTION], interactions=True
        )


def test_pool_bad_interaction_is_one_line():
    a = _four_arm(np.random.default_rng(0))
    with pytest.raises(MkcellError) as err:
        mk.tl.progenitor_pool(a, contrasts=[["MDS_drug", "MDS", "ctrl_drug", "control"]])
    msg = str(err.value)
    assert "['ctrl_drug'] of contrast '(MDS_drug vs MDS) vs (ctrl_drug vs control)'" in msg
    assert "\n" not in msg


# --------------------------------------------------------------------------- the tools


def test_pool_interaction_matches_statsmodels():
    """effect_log2 = c'beta of the cell-means OLS, + litter; CI and p as statsmodels gives."""
    smf = pytest.importorskip("statsmodels.formula.api")
    a = _four_arm(np.random.default_rng(1), k=4, interaction=-0.8, litter_sd=0.3)
    _quiet(
        mk.tl.progenitor_pool,
        a,
        contrasts=[INTERACTION, ["MDS_drug", "MDS"]],
        denominator="all",
        design="~ condition + litter",
    )
    tab = a.uns["mk_pool"]["contrasts"]
    assert list(tab["contrast"]) == [LABEL, "MDS_drug vs MDS"]
    row = tab.iloc[0]
    per = _log2_fractions(a)
    fit = smf.ols("y ~ 0 + C(condition) + C(litter)", per).fit()
    c = pd.Series(0.0, index=fit.params.index)
    for cond, w in zip(ARMS, (1, -1, -1, 1), strict=True):
        c[f"C(condition)[{cond}]"] = w
    test = fit.t_test(c.to_numpy()[None, :])
    lo, hi = np.asarray(test.conf_int()).ravel()
    assert row["effect_log2"] == pytest.approx(float(np.ravel(test.effect)[0]))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
    assert row["p_value"] == pytest.approx(float(test.pvalue))
    assert (row["n_samples_a"], row["n_samples_b"]) == (8, 8)
    assert "samples per arm: MDS_drug 4, MDS 4, control_drug 4, control 4" in row["note"]
    assert np.isfinite(tab["p_adj"]).all() and (tab["p_adj"] >= tab["p_value"] - 1e-12).all()


def test_pool_interaction_without_covariates_is_difference_of_log2_ratios():
    a = _four_arm(np.random.default_rng(2), k=3, interaction=-1.0)
    _quiet(mk.tl.progenitor_pool, a, contrasts=LABEL, denominator="all")
    row = a.uns["mk_pool"]["contrasts"].iloc[0]
    m = _log2_fractions(a).groupby("condition")["y"].mean()
    want = (m["MDS_drug"] - m["MDS"]) - (m["control_drug"] - m["control"])
    assert row["effect_log2"] == pytest.approx(want)
    assert "t on 8 df" in row["method"] and row["p_min"] == 0
    assert a.uns["mk_pool"]["params"]["contrasts"] == [INTERACTION]


def test_one_mouse_in_an_arm_gives_a_point_estimate_and_a_note():
    a = _four_arm(np.random.default_rng(3), k=2)
    keep = ~a.obs["sample"].isin(["m4"])  # one of the two control_drug mice
    a = a[keep.to_numpy()].copy()
    with pytest.warns(MkcellWarning, match="no replicate-aware test possible"):
        mk.tl.progenitor_pool(a, contrasts=[INTERACTION], denominator="all")
    row = a.uns["mk_pool"]["contrasts"].iloc[0]
    assert np.isfinite(row["effect_log2"]) and np.isnan(row["p_value"]) and np.isnan(row["ci_low"])
    assert "['control_drug'] have 1 sample" in row["note"]


def test_two_mice_per_arm_says_few_samples():
    a = _four_arm(np.random.default_rng(4), k=2)
    _quiet(mk.tl.progenitor_pool, a, contrasts=[INTERACTION], denominator="all")
    row = a.uns["mk_pool"]["contrasts"].iloc[0]
    assert np.isfinite(row["p_value"]) and "few samples" in row["note"]
    assert "no exact test for interactions" in row["note"]


def test_maturation_and_scores_give_the_interaction_row():
    a = _four_arm(np.random.default_rng(5), k=3, interaction=-1.5)
    _quiet(mk.tl.maturation_shift, a, contrasts=[INTERACTION, ["MDS", "control"]], transition=0.5)
    mat = a.uns["mk_maturation"]["contrasts"].set_index("contrast")
    r = mat.loc[LABEL]
    ps = a.uns["mk_maturation"]["per_sample"].groupby("condition")["mean_pseudotime"].mean()
    want = (ps["MDS_drug"] - ps["MDS"]) - (ps["control_drug"] - ps["control"])
    assert r["mean_shift"] == pytest.approx(want)
    fa = a.uns["mk_maturation"]["per_sample"].groupby("condition")["frac_after"].mean()
    assert r["frac_after_a"] == pytest.approx(fa["MDS_drug"] - fa["MDS"])
    assert r["frac_after_b"] == pytest.approx(fa["control_drug"] - fa["control"])
    assert np.isnan(r["wasserstein"]) and (r["n_samples_a"], r["n_samples_b"]) == (6, 6)
    assert np.isfinite(mat["p_adj"]).all()

    _quiet(
        mk.tl.compare_scores,
        a,
        "sample",
        "condition",
        [INTERACTION],
        states=["MkP"],
        keys=["mk_score_e2f_targets"],
    )
    row = a.uns["mk_score_compare"]["table"].iloc[0]
    assert row["contrast"] == LABEL and row["diff"] < 0 and row["p_value"] < 0.05
    means = a.uns["mk_score_compare"]["sample_means"]
    m = means.groupby("condition")["mk_score_e2f_targets"].mean()
    assert row["diff"] == pytest.approx(
        (m["MDS_drug"] - m["MDS"]) - (m["control_drug"] - m["control"])
    )
    assert row["mean_a"] == pytest.approx(m["MDS_drug"] - m["MDS"])


def test_tools_without_interactions_refuse_them_in_one_line():
    a = _four_arm(np.random.default_rng(6), k=2)
    with pytest.raises(MkcellError, match="is an interaction, which this tool does not fit"):
        mk.tl.pseudobulk_de(a, "sample", "condition", [INTERACTION])


def test_findings_phrase_an_interaction():
    from mkcell.workflow._findings import pool_contrasts_html, scores_html, stall_html

    a = _four_arm(np.random.default_rng(7), k=4, interaction=-1.5)
    _quiet(mk.tl.progenitor_pool, a, contrasts=[INTERACTION], denominator="all")
    text = pool_contrasts_html(a)
    assert LABEL in text
    assert "drug lowers the MkP fraction more in MDS than in control" in text
    assert "8 samples of MDS_drug and MDS, 8 of control_drug and control" in text
    _quiet(mk.tl.maturation_shift, a, contrasts=[INTERACTION], transition=0.5)
    text = stall_html(a)
    assert LABEL in text and "Mk-lineage cells sit earlier in MDS_drug against MDS" in text
    _quiet(mk.tl.compare_scores, a, contrasts=[INTERACTION], states=["MkP"])
    text = scores_html(a)
    assert f"MkP in {LABEL}" in text
    assert "falls more (or rises less) from MDS to MDS_drug than from control to" in text
