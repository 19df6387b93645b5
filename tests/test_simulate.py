import numpy as np
import pytest

import mkcell as mk
from mkcell._settings import MkcellError


def test_truth_matches_cells(sim):
    for species, a in sim.items():
        tab = a.uns["mk_truth"]["samples"].set_index("sample")
        obs = a.obs
        for sample, row in tab.iterrows():
            cells = obs[obs["sample"] == sample]
            lin = cells["true_state"].isin(["MkP", "Mk"])
            assert row["n_cells"] == len(cells)
            assert row["n_mkp"] == (cells["true_state"] == "MkP").sum()
            assert row["mkp_fraction"] == pytest.approx(
                (cells["true_state"] == "MkP").sum() / lin.sum()
            )
        assert set(obs["species"]) == {species}
        # true maturation time only on the Mk lineage, MkP before Mk
        t = obs["true_time"]
        assert t[obs["true_state"] == "MkP"].max() < t[obs["true_state"] == "Mk"].min()
        assert t[~obs["true_state"].isin(["MkP", "Mk"])].isna().all()


def test_counts_are_integer_sparse_and_symbols_are_species_specific(sim):
    m, h = sim["mouse"], sim["human"]
    for a in (m, h):
        assert np.allclose(a.X.data, np.round(a.X.data)) and (a.X.data >= 0).all()
    assert "Pf4" in m.var_names and "PF4" in h.var_names
    assert "PF4" not in m.var_names
    assert set(m.obs["condition"]) == {"control", "MDS", "MDS_drug"}
    assert set(h.obs["condition"]) == {"healthy", "MDS"}


def test_mds_raises_mkp_fraction_and_null_does_not(sim, sim_null):
    tab = (
        sim["mouse"].uns["mk_truth"]["samples"].groupby("condition")["mkp_fraction_expected"].mean()
    )
    assert tab["MDS"] > tab["MDS_drug"] > tab["control"]
    null = (
        sim_null["mouse"]
        .uns["mk_truth"]["samples"]
        .groupby("condition")["mkp_fraction_expected"]
        .mean()
    )
    # in the null every condition has the same expected fraction (sample noise only)
    assert null.max() - null.min() < 0.12


def test_same_seed_same_data():
    a = mk.datasets.simulate_marrow(
        600, n_genes=800, n_species_only=10, seed=5, species=("human",)
    )["human"]
    b = mk.datasets.simulate_marrow(
        600, n_genes=800, n_species_only=10, seed=5, species=("human",)
    )["human"]
    assert (a.X != b.X).nnz == 0
    assert a.obs.equals(b.obs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cells": 10}, "out of range"),
        ({"species": ("rat",)}, "unknown species"),
        ({"n_genes": 50}, "too small"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(MkcellError, match=match):
        mk.datasets.simulate_marrow(**{"n_cells": 600, **kwargs})
