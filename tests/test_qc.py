"""mk.pp.qc against planted truth: doublets, platelet-coated cells, and true Mk left alone."""

from __future__ import annotations

import numpy as np
import pytest

import mkcell as mk
from mkcell import _keys as K
from mkcell._settings import MkcellError, MkcellWarning


@pytest.fixture(scope="module")
def _planted():
    s = mk.datasets.simulate_marrow(
        2600, n_genes=800, n_species_only=30, species=("human",), n_samples=1, seed=3
    )["human"]
    d = mk.datasets.plant_doublets(s, rate=0.05, seed=3)
    return mk.datasets.coat_with_platelets(d, fraction=0.15, samples=["human_MDS_1"], seed=3)


@pytest.fixture(scope="module")
def _checked(_planted):
    before = _planted.X.copy()
    out = mk.pp.qc(_planted, copy=True)
    return out, before


def test_planting_truth(_planted):
    o = _planted.obs
    assert 0.03 < o["true_doublet"].mean() < 0.07
    coated = o.loc[o["true_platelet_coated"]]
    assert len(coated) > 50 and set(coated["sample"]) == {"human_MDS_1"}
    assert not coated["true_state"].isin(K.MK_LINEAGE).any()


def test_doublets_found_and_singlets_kept(_checked):
    o = _checked[0].obs
    td, tp = o["true_doublet"].to_numpy(), o["true_platelet_coated"].to_numpy()
    assert o[K.DOUBLET][td].mean() >= 0.5
    assert o[K.DOUBLET][~td & ~tp].mean() <= 0.06
    assert np.isfinite(o[K.DOUBLET_SCORE]).all()


def test_platelet_coated_found_and_mk_not_flagged(_checked):
    o = _checked[0].obs
    tp, td = o["true_platelet_coated"].to_numpy(), o["true_doublet"].to_numpy()
    assert o[K.QC_FLAG[K.QC_PLATELET]][tp].mean() >= 0.6
    assert o[K.QC_FLAG[K.QC_PLATELET]][~tp & ~td].mean() <= 0.02
    mk_lineage = o["true_state"].isin(K.MK_LINEAGE).to_numpy() & ~td
    assert o[K.QC_FLAG[K.QC_PLATELET]][mk_lineage].mean() <= 0.01
    assert (o[K.QC][mk_lineage] != K.QC_PASS).mean() <= 0.08


def test_per_sample_table_adds_up(_checked):
    out, _ = _checked
    table = out.uns[K.QC]["per_sample"]
    assert set(table["sample"]) == set(out.obs["sample"].astype(str))
    assert (table[list(K.QC_REASONS)].sum(1) + table["cells_kept"] == table["cells_in"]).all()
    assert table["cells_in"].sum() == out.n_obs
    counts = out.obs[K.QC].value_counts()
    for reason in K.QC_REASONS:
        assert table[reason].sum() == counts.get(reason, 0)
    assert np.allclose(table["flagged_share"], 1 - table["cells_kept"] / table["cells_in"])
    assert (table["expected_doublet_rate"] > 0).all() and table["called_doublet_rate"].notna().all()
    assert out.uns[K.QC]["params"]["seed"] == 0
    assert list(out.obs[K.QC].cat.categories) == [K.QC_PASS, *K.QC_REASONS]


def test_input_unchanged_and_cells_kept(_planted, _checked):
    out, before = _checked
    assert K.QC not in _planted.obs and out.n_obs == _planted.n_obs
    assert (out.X != before).nnz == 0 and (_planted.X != before).nnz == 0


def test_in_place_returns_none_and_is_seeded():
    s = mk.datasets.simulate_marrow(
        600, n_genes=800, n_species_only=0, species=("mouse",), n_samples=1, seed=4
    )["mouse"]
    a, b = s.copy(), s.copy()
    assert mk.pp.qc(a, doublet_min_cells=50) is None
    mk.pp.qc(b, doublet_min_cells=50)
    assert K.QC in a.obs and a.obs[K.DOUBLET_SCORE].equals(b.obs[K.DOUBLET_SCORE])


def test_low_quality_cells_are_flagged():
    s = mk.datasets.simulate_marrow(
        600, n_genes=800, n_species_only=0, species=("human",), n_samples=1, seed=5
    )["human"]
    X = s.X.tolil()
    X[:5] = 0
    X[:5, :3] = 1  # 5 nearly empty droplets
    s.X = X.tocsr()
    out = mk.pp.qc(s, doublet_min_cells=50, copy=True)
    assert (out.obs[K.QC].iloc[:5] == K.QC_LOW_QUALITY).all()
    assert (out.obs[K.QC].iloc[5:] == K.QC_LOW_QUALITY).mean() < 0.02


def test_tiny_sample_warns_once_and_is_not_flagged():
    s = mk.datasets.simulate_marrow(
        600, n_genes=800, n_species_only=0, species=("human",), n_samples=1, seed=6
    )["human"]
    s.obs["sample"] = s.obs["sample"].astype(str)
    s.obs.iloc[:30, s.obs.columns.get_loc("sample")] = "tiny"
    with pytest.warns(MkcellWarning, match="tiny") as rec:
        mk.pp.qc(s, doublet_min_cells=50)
    assert len([w for w in rec if issubclass(w.category, MkcellWarning)]) == 1
    tiny = s.obs["sample"] == "tiny"
    assert not s.obs.loc[tiny, K.DOUBLET].any() and s.obs.loc[tiny, K.DOUBLET_SCORE].isna().all()
    table = s.uns[K.QC]["per_sample"].set_index("sample")
    assert not table.loc["tiny", "doublets_scored"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_key": "nope"}, "sample_key"),
        ({"nmads": 0}, "nmads"),
        ({"expected_doublet_rate": 2.0}, "expected_doublet_rate"),
        ({"doublet_min_cells": 5}, "doublet_min_cells"),
    ],
)
def test_bad_arguments_raise_one_line(kwargs, match):
    s = mk.datasets.simulate_marrow(
        500, n_genes=800, n_species_only=0, species=("human",), n_samples=1, seed=7
    )["human"]
    with pytest.raises(MkcellError, match=match) as err:
        mk.pp.qc(s, **kwargs)
    assert "\n" not in str(err.value)


def test_planting_rejects_bad_arguments():
    s = mk.datasets.simulate_marrow(
        500, n_genes=800, n_species_only=0, species=("human",), n_samples=1, seed=7
    )["human"]
    with pytest.raises(MkcellError, match="rate"):
        mk.datasets.plant_doublets(s, rate=0.9)
    with pytest.raises(MkcellError, match="samples"):
        mk.datasets.coat_with_platelets(s, samples=["nope"])
