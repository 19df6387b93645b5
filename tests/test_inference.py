"""The sample-level inference layer: designs, small n, and fast null calibration checks.

The null checks use few draws and a tolerance; the full calibration (500 draws a scenario,
20-fold spread of sample sizes, 2 to 12 samples a group) is benchmarks/bench_calibration.py.
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
from mkcell.tl._inference import bh, fit_contrast, fit_interaction, parse_design


def _cohort(sizes, is_a, **cols):
    sample = np.repeat([f"s{i}" for i in range(len(sizes))], sizes)
    obs = pd.DataFrame(
        {"sample": sample, "condition": np.repeat(np.where(is_a, "A", "B"), sizes), **cols}
    )
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=np.zeros((len(obs), 1), np.float32), obs=obs)


def _pool_cohort(gen, k, effect=0.0, sd=0.4, p0=0.08):
    """k vs k people whose MkP share differs (logit sd), sample sizes spread ~20-fold."""
    is_a = np.repeat([True, False], k)
    n = np.clip(np.round(800 * np.exp(gen.normal(0, 1.2, 2 * k))), 150, 3000).astype(int)
    y = gen.binomial(n, expit(logit(p0) + sd * gen.normal(size=2 * k) + effect * is_a))
    states = np.concatenate(
        [np.r_[np.full(a, "MkP"), np.full(b - a, "HSC/MPP")] for a, b in zip(y, n, strict=True)]
    )
    return _cohort(n, is_a, mk_state=states)


def _pool(a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MkcellWarning)
        mk.tl.progenitor_pool(a, contrasts=[["A", "B"]], denominator="all", **kw)
    return a.uns["mk_pool"]["contrasts"].iloc[0]


def test_pool_null_fpr_with_people_who_differ_and_spread_sizes():
    """Fast null check: the old quasi-Poisson GLM called ~15% here; mkcell stays near 5%."""
    gen = np.random.default_rng(7)
    p = np.array([_pool(_pool_cohort(gen, 5))["p_value"] for _ in range(120)])
    assert np.isfinite(p).all()
    assert (p < 0.05).mean() <= 0.10  # 0.05 + ~2.5 Monte-Carlo SE at 120 draws
    assert (p < 0.5).mean() > 0.35  # not conservative to uselessness


def test_pool_finds_a_planted_increase():
    gen = np.random.default_rng(3)
    rows = [_pool(_pool_cohort(gen, 6, effect=np.log(2.5))) for _ in range(20)]
    assert np.mean([r["p_value"] < 0.05 for r in rows]) >= 0.8
    assert np.median([r["effect_log2"] for r in rows]) > 0.8


def test_no_single_huge_sample_decides():
    """One sample with 100x the cells moves the effect no more than any other sample."""
    gen = np.random.default_rng(1)
    a = _pool_cohort(gen, 4)
    base = _pool(a)["effect_log2"]
    obs = a.obs
    big = obs[obs["sample"] == "s0"]
    many = pd.concat([big] * 100)
    many.index = [f"x{i}" for i in range(len(many))]
    b = ad.AnnData(X=np.zeros((len(obs) + len(many), 1), np.float32), obs=pd.concat([obs, many]))
    assert _pool(b)["effect_log2"] == pytest.approx(base, abs=0.02)


def test_two_vs_two_never_below_its_attainable_minimum():
    gen = np.random.default_rng(0)
    for effect in (0.0, 3.0):  # even a huge effect cannot give p < 1/3 with 2 vs 2
        r = _pool(_pool_cohort(gen, 2, effect=effect))
        assert r["p_min"] == pytest.approx(1 / 3)
        assert r["p_value"] >= r["p_min"] - 1e-12
        assert "smallest attainable p = 0.333" in r["note"]
    # 2 vs 3: 10 relabelings, no mirror: 1/10
    res = fit_contrast(
        np.array([5.0, 6, 0, 1, 0.5]),
        np.array([True, True, False, False, False]),
        design=parse_design(None),
    )
    assert res["p_min"] == pytest.approx(0.1) and res["p_value"] == pytest.approx(0.1)
    # 3 vs 3: t-based, as is every group of 3 or more
    res = fit_contrast(
        np.array([5.0, 6, 5.5, 0, 1, 0.5]), np.repeat([True, False], 3), design=parse_design(None)
    )
    assert res["p_min"] == 0 and res["p_value"] < 0.01 and "t on 4 df" in res["method"]


def test_maturation_null_fpr_people_who_differ():
    """Each person's pseudotime distribution differs; the old cell-pooling bootstrap called
    13-22% of such nulls."""
    gen = np.random.default_rng(11)
    p = []
    for _ in range(100):
        is_a = np.repeat([True, False], 3)
        n = np.clip(np.round(300 * np.exp(gen.normal(0, 1, 6))), 45, 900).astype(int)
        m = expit(0.3 * gen.normal(size=6))
        pt = np.concatenate([gen.beta(5 * x, 5 * (1 - x), k) for x, k in zip(m, n, strict=True)])
        a = _cohort(n, is_a, mk_pseudotime=pt)
        mk.tl.maturation_shift(a, contrasts=[["A", "B"]], transition=0.5)
        p.append(a.uns["mk_maturation"]["contrasts"]["p_value"].iloc[0])
    assert (np.asarray(p) < 0.05).mean() <= 0.11


def test_score_null_fpr():
    gen = np.random.default_rng(5)
    p = []
    for _ in range(100):
        is_a = np.repeat([True, False], 4)
        n = gen.integers(10, 200, 8)
        x = np.concatenate(
            [m + gen.normal(size=k) for m, k in zip(0.3 * gen.normal(size=8), n, strict=True)]
        )
        a = _cohort(n, is_a, mk_state=np.full(x.size, "MkP"), mk_score_e2f_targets=x)
        mk.tl.compare_scores(a, contrasts=[["A", "B"]], keys=["mk_score_e2f_targets"])
        p.append(a.uns["mk_score_compare"]["table"]["p_value"].iloc[0])
    assert (np.asarray(p) < 0.05).mean() <= 0.11


def _batch_cohort(gen, batch_effect=1.5):
    """4 vs 4; batch b2 raises the MkP share and holds 3 of the 4 A samples."""
    k = 4
    is_a = np.repeat([True, False], k)
    batch = np.array(["b2", "b2", "b2", "b1", "b2", "b1", "b1", "b1"])
    n = np.full(2 * k, 2000)
    y = gen.binomial(n, expit(logit(0.05) + batch_effect * (batch == "b2")))
    states = np.concatenate(
        [np.r_[np.full(a, "MkP"), np.full(b - a, "HSC/MPP")] for a, b in zip(y, n, strict=True)]
    )
    return _cohort(n, is_a, mk_state=states, batch=np.repeat(batch, n))


def test_design_adjusts_for_batch():
    gen = np.random.default_rng(2)
    a = _batch_cohort(gen)
    naive = _pool(a)
    adjusted = _pool(a, design="~ condition + batch")
    assert naive["effect_log2"] > 0.5  # the batch shows up as a condition effect ...
    assert abs(adjusted["effect_log2"]) < 0.25  # ... and is removed by the design
    assert "~ condition + batch" in adjusted["method"]
    assert a.uns["mk_pool"]["params"]["design"] == "~ condition + batch"


def test_paired_design_blocks_on_the_patient():
    """Paired samples (before / after, one patient each): blocking gives a narrower CI."""
    gen = np.random.default_rng(4)
    k = 5
    is_a = np.repeat([True, False], k)
    patient = np.tile([f"p{i}" for i in range(k)], 2)
    person = np.tile(gen.normal(0, 0.8, k), 2)
    n = np.full(2 * k, 1500)
    y = gen.binomial(n, expit(logit(0.06) + person + 0.5 * is_a))
    states = np.concatenate(
        [np.r_[np.full(a, "MkP"), np.full(b - a, "HSC/MPP")] for a, b in zip(y, n, strict=True)]
    )
    a = _cohort(n, is_a, mk_state=states, patient=np.repeat(patient, n))
    unpaired, paired = _pool(a), _pool(a, design="~ condition + patient")
    assert paired["ci_high"] - paired["ci_low"] < 0.5 * (unpaired["ci_high"] - unpaired["ci_low"])
    assert paired["p_value"] < 0.05


@pytest.mark.parametrize(
    ("design", "match"),
    [
        ("~ condition + batch", r"column\(s\) \['condition', 'batch\[T.b2\]'\] are confounded"),
        ("~ condition + site", r"column\(s\) \['site'\] are constant there"),
        ("~ condition + sex", r"\['sex'\] not in adata.obs"),
        ("~ condition + cellwise", r"\['cellwise'\] vary within a sample"),
        ("condition + batch", "must be a formula starting with '~'"),
        ("~ batch", "must contain the condition term once"),
    ],
)
def test_bad_design_gives_one_clear_error(design, match):
    gen = np.random.default_rng(0)
    a = _pool_cohort(gen, 3)
    per_sample_cond = a.obs.groupby("sample")["condition"].first()
    a.obs["batch"] = a.obs["sample"].map(per_sample_cond.map({"A": "b2", "B": "b1"}))
    a.obs["site"] = "y"  # one value for every sample
    a.obs["cellwise"] = np.arange(a.n_obs) % 2
    with pytest.raises(MkcellError, match=match) as err:
        _pool(a, design=design)
    assert "\n" not in str(err.value)


def test_bh_keeps_nan_and_orders():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    adj = bh(p)
    assert np.isnan(adj[1]) and (adj[[0, 2, 3]] >= p[[0, 2, 3]]).all()
    assert adj[0] == pytest.approx(0.03)


def test_interaction_against_a_hand_computation():
    """(A - B) - (C - D) by cell means: pooled variance over the four arms, t on n - 4 df."""
    from scipy import stats

    y = np.array([1.0, 1.4, 0.8, 2.0, 2.3, 0.1, 0.5, 0.3, 1.0, 1.2, 0.9, 1.1])
    cond = np.array(list("AAABBCCCDDDD"))
    res = fit_interaction(y, cond, ("A", "B", "C", "D"), design=parse_design(None))
    groups = [y[cond == c] for c in "ABCD"]
    m = [g.mean() for g in groups]
    est = (m[0] - m[1]) - (m[2] - m[3])
    df = y.size - 4
    s2 = sum(((g - g.mean()) ** 2).sum() for g in groups) / df
    se = np.sqrt(s2 * sum(1 / g.size for g in groups))
    q = stats.t.ppf(0.975, df)
    assert res["estimate"] == pytest.approx(est) and res["se"] == pytest.approx(se)
    assert res["df"] == df and (res["ci_low"], res["ci_high"]) == pytest.approx(
        (est - q * se, est + q * se)
    )
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(abs(est / se), df))
    assert (res["n_a"], res["n_b"]) == (5, 7) and "few samples" in res["note"]
    # litters nested in the disease arms: the interaction stays estimable (df n - rank)
    cov = pd.DataFrame({"litter": np.where(np.isin(cond, ["A", "B"]), "l1", "l2")})
    nested = fit_interaction(
        y, cond, "ABCD", design=parse_design("~ condition + litter"), covariates=cov
    )
    assert nested["estimate"] == pytest.approx(est) and nested["df"] == df
    assert nested["se"] == pytest.approx(se)
    # a covariate that takes the interaction itself is named, in one line
    cov = pd.DataFrame({"litter": np.where(np.isin(cond, ["A", "D"]), "l1", "l2")})
    with pytest.raises(MkcellError, match=r"'litter\[T.l2\]'\] are confounded") as err:
        fit_interaction(
            y, cond, "ABCD", design=parse_design("~ condition + litter"), covariates=cov
        )
    assert "\n" not in str(err.value)
