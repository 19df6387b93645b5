"""mk.tl.endomitosis on the simulator's endomitosis truth, and the simulator's default identity."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import mkcell as mk
from mkcell._settings import MkcellError

CONTRASTS = ["MDS vs control", "MDS_drug vs MDS"]
CYTO, PLOIDY = "mk_cytokinesis_contrast", "mk_ploidy_proxy"
#: sha256 of X and obs of simulate_marrow(600, n_genes=800, n_species_only=10, seed=s) before
#: the endomitosis option existed: the default must stay byte-identical. Regenerate only when
#: the simulator's model is meant to change (new panels or gene sets change it too).
DEFAULT_DIGESTS = {
    0: "2fb735563f778e1d005156c2e9b4f5e85b5c906d5bc7ba5ee389d93bf722242b",
    3: "205ab6763ef960cf4b2238d6c60c1f910e48f12fb256a7cfffc94ea912370ac7",
}


def _digest(sim: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(sim):
        a = sim[name]
        for arr in (a.X.data, a.X.indices, a.X.indptr):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(a.obs.to_csv().encode())
        h.update(",".join(a.var_names).encode())
    return h.hexdigest()


def _mouse(seed: int, *, null: bool = False, n_cells: int = 5000):
    a = mk.datasets.simulate_marrow(
        n_cells,
        n_genes=800,
        n_species_only=10,
        species=("mouse",),
        null=null,
        endomitosis=True,
        seed=seed,
    )["mouse"]
    mk.tl.score(a)
    a.obs["mk_state"] = a.obs["true_state"]  # the readout, not the state calls, is tested here
    return a


@pytest.fixture(scope="module")
def planted():
    a = _mouse(0)
    before = a.X.copy()
    mk.tl.endomitosis(a, contrasts=CONTRASTS)
    return a, before


@pytest.mark.parametrize("seed", sorted(DEFAULT_DIGESTS))
def test_simulator_default_is_unchanged(seed):
    kw = {"n_genes": 800, "n_species_only": 10, "seed": seed}
    assert _digest(mk.datasets.simulate_marrow(600, **kw)) == DEFAULT_DIGESTS[seed]


def test_endomitosis_truth_leaves_the_default_stream_alone():
    kw = {"n_genes": 800, "n_species_only": 10, "seed": 4, "species": ("human",)}
    a = mk.datasets.simulate_marrow(1500, **kw)["human"]
    b = mk.datasets.simulate_marrow(1500, endomitosis=True, **kw)["human"]
    assert b.obs.drop(columns=["true_endomitosis", "true_ploidy"]).equals(a.obs)
    lin = a.obs["true_state"].isin(["MkP", "Mk"]).to_numpy()
    assert (a.X[~lin] != b.X[~lin]).nnz == 0 and (a.X[lin] != b.X[lin]).nnz > 0
    ploidy = b.obs.loc[lin, "true_ploidy"]
    assert set(np.unique(ploidy)) <= {2, 4, 8, 16, 32, 64}
    assert b.obs.loc[~lin, ["true_endomitosis", "true_ploidy"]].isna().all().all()
    level = b.uns["mk_truth"]["samples"].groupby("condition")["endomitosis_level"].mean()
    assert level["healthy"] > level["MDS"]


def test_directions_on_planted_truth(planted):
    a, _ = planted
    tab = a.uns["mk_endomitosis"]["table"].set_index(["contrast", "score"])
    # MDS: more cytokinesis, lower ploidy; the drug moves both back
    assert tab.loc[("MDS vs control", CYTO), "diff"] > 0
    assert tab.loc[("MDS vs control", PLOIDY), "diff"] < 0
    assert tab.loc[("MDS vs control", PLOIDY), "p_adj"] < 0.05
    assert tab.loc[("MDS_drug vs MDS", PLOIDY), "diff"] > 0
    assert tab.loc[("MDS_drug vs MDS", CYTO), "diff"] < 0
    obs = a.obs
    g2m = obs[CYTO].notna()
    assert g2m.sum() > 30 and (obs.loc[g2m, "phase"] == "G2M").all()
    assert obs.loc[g2m, "true_state"].isin(["MkP", "Mk"]).all()
    r = np.corrcoef(obs.loc[g2m, CYTO], obs.loc[g2m, "true_endomitosis"])[0, 1]
    assert r < -0.1
    lin = obs[PLOIDY].notna()
    assert np.corrcoef(obs.loc[lin, PLOIDY], np.log2(obs.loc[lin, "true_ploidy"]))[0, 1] > 0.4


def test_outputs_and_input_unchanged(planted):
    a, before = planted
    assert (a.X != before).nnz == 0
    res = a.uns["mk_endomitosis"]
    assert {"table", "sample_means", "trends", "genes", "params"} <= set(res)
    assert res["trends"].empty  # no obs['mk_pseudotime'] here
    assert len(res["genes"]["cytokinesis"]) >= 5
    assert not set(res["genes"]["cytokinesis"]) & set(res["genes"]["rest_of_mitosis"])


def test_trends_and_copy():
    a = _mouse(2, n_cells=2500)
    a.obs["mk_pseudotime"] = a.obs["true_time"]
    out = mk.tl.endomitosis(a, contrasts=[], copy=True)
    assert "mk_endomitosis" not in a.uns and "mk_cytokinesis_contrast" not in a.obs
    trends = out.uns["mk_endomitosis"]["trends"]
    assert set(trends["key"]) == {CYTO, PLOIDY}
    assert set(trends["condition"]) == {"control", "MDS", "MDS_drug"}
    assert out.uns["mk_endomitosis"]["table"].empty


def test_no_call_on_null():
    a = _mouse(11, null=True)
    mk.tl.endomitosis(a, contrasts=CONTRASTS)
    tab = a.uns["mk_endomitosis"]["table"]
    assert len(tab) == 4
    assert (tab["p_adj"] >= 0.05).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"state_key": "nope"}, "state annotation"),
        ({"phase_key": "nope"}, "cell-cycle phase"),
        ({"ci": 1.5}, "0 < ci < 1"),
        ({"min_cells": 0}, "min_cells"),
        ({"genes": ["NOTAGENE"]}, "cytokinesis"),
        ({"design": "condition"}, "formula"),
    ],
)
def test_bad_arguments(planted, kwargs, match):
    a, _ = planted
    with pytest.raises(MkcellError, match=match) as err:
        mk.tl.endomitosis(a.copy(), **kwargs)
    assert "\n" not in str(err.value)
