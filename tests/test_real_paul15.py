"""Real data: Paul et al. 2015 — MkP (cluster 8) lie after MEP, in the published Slingshot order."""

import numpy as np
import pytest
from scipy.stats import spearmanr

import mkcell as mk


@pytest.fixture(scope="module")
def paul():
    a = mk.datasets.paul15_subset()
    mk.pp.highly_variable_genes(a, n_top_genes=240, batch_key=None, exclude_cycle_genes=True)
    mk.integrate.scvi(a, batch_key="Amp_batch_ID", max_epochs=60, seed=0)
    mk.tl.annotate(a, labels_key="paul15_state")
    mk.tl.trajectory(a, lineage=("MEP", "MkP"), root_state="MEP", terminal_state="MkP")
    return a


def test_mk_after_mep_and_slingshot_order(paul):
    o = paul.obs
    lin = o["paul15_state"].isin(["MEP", "MkP"]) & o["mk_pseudotime"].notna()
    med = o[lin].groupby("paul15_state", observed=True)["mk_pseudotime"].median()
    assert med["MkP"] > med["MEP"]
    rho = spearmanr(
        o.loc[lin, "mk_pseudotime"], o.loc[lin, "slingPseudotime_1"], nan_policy="omit"
    )[0]
    assert rho > 0.3, rho
    assert np.isfinite(o.loc[lin, "mk_fate"]).all()
