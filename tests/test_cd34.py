"""CD34+-sorted samples on a targeted panel (issue 14): the sort, and MkP calls and pool against
the truth."""

from __future__ import annotations

import numpy as np
import pytest
from anndata import AnnData
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

import mkcell as mk
from mkcell._settings import MkcellError
from mkcell.datasets._scenarios import CD34_KEEP_MK_TIME, PANEL_MISSING


@pytest.fixture(scope="module")
def human():
    return mk.datasets.simulate_marrow(4000, species=("human",), seed=5)["human"]


def test_sort_keeps_progenitors_and_drops_mature_cells(human):
    a = mk.datasets.cd34_sorted(human, impurity=0.0, seed=0)
    o = a.obs
    assert set(o["true_branch"].astype(str)) <= {"hsc", "mep", "mk", "ery", "my"}
    assert (o.loc[o["true_branch"] == "mk", "true_progress"] < CD34_KEEP_MK_TIME).all()
    assert (o["true_stage"] == "mature_Mk").sum() == 0
    assert (o["true_state"] == "MkP").sum() == (
        human.obs["true_state"] == "MkP"
    ).sum()  # every MkP is kept
    t = a.uns["mk_truth"]["samples"]
    assert np.allclose(t["mkp_fraction_of_hspc"], t["n_mkp"] / t["n_hspc"])
    assert human.n_obs == 4000 and "mk_truth" in human.uns  # the input is not changed
    dirty = mk.datasets.cd34_sorted(human, impurity=0.05, seed=0)
    assert (
        0
        < (dirty.obs["true_stage"] == "mature_Mk").sum()
        < 0.1 * (human.obs["true_stage"] == "mature_Mk").sum()
    )


def test_panel_keeps_markers_but_the_missing_ones(human):
    a = mk.datasets.cd34_sorted(human, panel_genes=400, seed=0)
    assert a.n_vars == 400
    assert not set(PANEL_MISSING) & set(a.var_names)
    assert {"ITGA2B", "MPL", "GP1BA", "HLF"} <= set(a.var_names)
    with pytest.raises(MkcellError, match="panel_genes"):
        mk.datasets.cd34_sorted(human, panel_genes=20)
    with pytest.raises(MkcellError, match="simulate_marrow"):
        mk.datasets.cd34_sorted(AnnData(human.X[:10]))


def test_mkp_calls_and_pool_on_a_cd34_panel_match_the_truth(human):
    """The same API path the workflow runs: features, scVI, annotate, pool (auto denominator)."""
    a = mk.datasets.cd34_sorted(human, panel_genes=400, seed=0)
    truth = a.uns["mk_truth"]["samples"]
    mk.pp.highly_variable_genes(a, seed=0)
    mk.integrate.scvi(a, max_epochs=60, seed=0)
    mk.tl.annotate(a)
    f1 = f1_score(a.obs["true_state"] == "MkP", a.obs["mk_state"] == "MkP")
    assert f1 >= 0.7, f1
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "healthy"]])
    pool = a.uns["mk_pool"]
    assert (
        pool["denominator_choice"]["denominator"].iloc[0] == "hspc"
    )  # too few mature Mk for MkP / (MkP + Mk)
    ps = pool["per_sample"].merge(truth, on="sample", suffixes=("", "_true"))
    r = pearsonr(ps["mkp_fraction"], ps["mkp_fraction_of_hspc"])[0]
    assert r >= 0.8, r
    c = pool["contrasts"].iloc[0]
    assert c["effect_log2"] > 0 and c["ci_low"] > 0, c.to_dict()
