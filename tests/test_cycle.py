"""The cell-cycle signal: simulator truth, cycle scores, cycle-linked genes found from the data."""

import pytest

import mkcell as mk
from mkcell._settings import MkcellError


@pytest.fixture(scope="module")
def hard():
    """Human marrow where each phase moves 150 unlisted genes, strongly."""
    return mk.datasets.simulate_marrow(
        3000,
        n_genes=1200,
        n_species_only=20,
        n_cycle_genes=150,
        cycle_strength=2.0,
        species=("human",),
        seed=21,
    )["human"]


def test_simulator_moves_unlisted_genes_up_and_down(hard):
    truth = hard.uns["mk_truth"]["cycle_genes"]
    assert len(truth) == 300 and set(truth["phase"]) == {"S", "G2M"}
    assert (truth["log_fold_change"] > 0).any() and (truth["log_fold_change"] < 0).any()
    assert not set(truth["gene"]) & mk._genesets.cycle_genes()  # in no published list
    none = mk.datasets.simulate_marrow(
        600, n_genes=800, n_species_only=10, n_cycle_genes=0, species=("human",), seed=1
    )["human"]
    assert len(none.uns["mk_truth"]["cycle_genes"]) == 0
    with pytest.raises(MkcellError, match="n_cycle_genes"):
        mk.datasets.simulate_marrow(600, n_cycle_genes=-1)


def test_simulator_stages_cycling_and_stall(hard):
    o = hard.obs
    assert set(o["true_stage"].dropna()) == {"MkP", "immature_Mk", "mature_Mk"}
    assert o.loc[o["true_stage"] == "immature_Mk", "true_time"].between(0.35, 0.7).all()
    cyc = (
        o[o["true_state"] == "MkP"]
        .groupby("condition", observed=True)["true_phase"]
        .apply(lambda p: (p != "G1").mean())
    )
    assert cyc["MDS"] > 0.65 and cyc["MDS"] > cyc["healthy"] + 0.15
    # MDS piles maturing Mk up just past MkP
    mk_cells = o[o["true_state"] == "Mk"]
    near = (
        mk_cells["true_time"]
        .between(0.37, 0.53)
        .groupby(mk_cells["condition"], observed=True)
        .mean()
    )
    assert near["MDS"] > near["healthy"] + 0.1
    # endomitosis: cycling fades along maturation
    imm = mk_cells["true_stage"] == "immature_Mk"
    assert (mk_cells.loc[imm, "true_phase"] != "G1").mean() > (
        mk_cells.loc[~imm, "true_phase"] != "G1"
    ).mean()


def test_cycle_scores_follow_true_phase(hard):
    cc = mk.pp.cycle_scores(hard)
    assert list(cc.columns) == ["S", "G2M"] and cc.index.equals(hard.obs_names)
    phase = hard.obs["true_phase"].astype(str).to_numpy()
    assert cc["S"][phase == "S"].mean() > cc["S"][phase == "G1"].mean() + 1
    assert cc["G2M"][phase == "G2M"].mean() > cc["G2M"][phase == "G1"].mean() + 1


def test_cycle_linked_genes_are_found_and_left_out(hard):
    a = hard.copy()
    mk.pp.highly_variable_genes(a, n_top_genes=1000, exclude_cycle_linked=True)
    table = a.uns["mk_highly_variable"]["cycle_linked"]
    assert {"gene", "r_S", "r_G2M", "state", "max_abs_r", "cycle_linked"} <= set(table.columns)
    truth = set(a.uns["mk_truth"]["cycle_genes"]["gene"])
    found = set(table.loc[table["cycle_linked"], "gene"])
    tested = set(table["gene"])
    recall = len(found & truth) / len(tested & truth)
    precision = len(found & truth) / max(len(found), 1)
    assert recall >= 0.6 and precision >= 0.8, (recall, precision)
    assert not a.var.loc[list(found), "mk_highly_variable"].any()
    assert a.uns["mk_highly_variable"]["n_cycle_linked_excluded"] == len(found)


def test_no_cycle_linked_genes_without_unlisted_cycle_genes():
    a = mk.datasets.simulate_marrow(
        3000,
        n_genes=1200,
        n_species_only=20,
        n_cycle_genes=0,
        cycle_strength=2.0,
        species=("human",),
        seed=22,
    )["human"]
    mk.pp.highly_variable_genes(a, n_top_genes=1000, exclude_cycle_linked=True)
    table = a.uns["mk_highly_variable"]["cycle_linked"]
    assert table["cycle_linked"].mean() < 0.03, table.loc[table["cycle_linked"]].head()
    b = a.copy()
    mk.pp.highly_variable_genes(b, n_top_genes=1000)  # the default: off
    assert "cycle_linked" not in b.uns["mk_highly_variable"]


def test_scvi_takes_cycle_scores_as_continuous_covariates(hard):
    a = hard[:600].copy()
    mk.pp.highly_variable_genes(a, n_top_genes=300, batch_key=None)
    mk.integrate.scvi(a, max_epochs=2, cycle_covariates=True, seed=0)
    cc = a.obsm["mk_cycle_covariates"]
    assert (
        cc.shape == (a.n_obs, 2) and abs(float(cc[:, 0].mean())) < 1e-3
    )  # z-scored within species
    assert a.uns["mk_integrate"]["params"]["cycle_covariates"] is True
    assert a.obsm["X_mk_scvi"].shape == (a.n_obs, 10)
