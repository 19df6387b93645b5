"""mk.tl.e2f_clusters: samples clustered on E2F + Aurora genes, Fisher test vs low platelets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster import hierarchy

import mkcell as mk
from mkcell._settings import MkcellError


@pytest.fixture(scope="module")
def cohort():
    c = mk.datasets.simulate_cohort(12, n_genes=400, n_cells=60, seed=2)
    mk.io.join_samples(c["cells"], c["samples"])
    return c


def test_bulk_recovers_the_planted_subset(cohort):
    bulk = cohort["bulk"].copy()
    mk.tl.e2f_clusters(bulk, covariate="platelets")
    res = bulk.uns["mk_e2f_clusters"]
    tab = res["table"]
    assert list(tab.columns[:6]) == [
        "sample",
        "cluster",
        "e2f_high",
        "e2f_z",
        "platelets",
        "tested",
    ]
    assert "condition" in tab.columns
    assert res["fisher_p"] < 0.05 and res["odds_ratio"] > 1
    truth = cohort["samples"].loc[tab["sample"], "truth_low_platelet_subset"].to_numpy()
    assert (tab["e2f_high"].to_numpy() == truth).mean() >= 0.8
    # cluster 1 has the highest mean z, and the cut height separates 2 clusters
    means = tab.groupby("cluster")["e2f_z"].mean()
    assert means.idxmax() == 1
    cut = hierarchy.fcluster(res["linkage"], res["cut_height"], criterion="distance")
    assert len(set(cut)) == 2
    assert {"AURKA", "AURKB", "PLK1"} <= set(res["genes"])
    assert res["contingency"].to_numpy().sum() == 12
    assert bulk.obs["mk_e2f_cluster"].nunique() == 2 and "mk_e2f_z" in bulk.obs


def test_cells_pseudobulk_and_condition(cohort):
    cells = cohort["cells"]
    out = mk.tl.e2f_clusters(cells, groupby="condition", method="average", copy=True)
    res = out.uns["mk_e2f_clusters"]
    assert "mk_e2f_clusters" not in cells.uns and "mk_e2f_cluster" not in out.obs
    assert res["params"]["tested_group"] == "condition == MDS"
    assert res["params"]["input"] == "pseudobulk of cells"
    assert 0 <= res["fisher_p"] <= 1 and len(res["table"]) == 12


def test_null_cohorts_hold_the_rate():
    ps = []
    for seed in range(8):
        c = mk.datasets.simulate_cohort(12, n_genes=400, n_cells=0, null=True, seed=seed)
        mk.tl.e2f_clusters(c["bulk"], covariate="platelets")
        ps.append(c["bulk"].uns["mk_e2f_clusters"]["fisher_p"])
    assert np.mean(np.array(ps) < 0.05) <= 0.25


def test_errors(cohort):
    bulk = cohort["bulk"]
    cases = [
        ({}, "exactly one"),
        ({"covariate": "platelets", "groupby": "condition"}, "exactly one"),
        ({"covariate": "lymphocytes"}, "join_samples"),
        ({"covariate": "platelets", "method": "centroid"}, "method="),
        ({"covariate": "platelets", "n_clusters": 12}, "n_clusters"),
        ({"groupby": "sex"}, "pass level="),
        ({"groupby": "condition", "level": "AML"}, "not a value"),
        ({"covariate": "platelets", "genes": ["NOPE1", "NOPE2"]}, "genes vary"),
    ]
    for kwargs, match in cases:
        with pytest.raises(MkcellError, match=match) as err:
            mk.tl.e2f_clusters(bulk, **kwargs)
        assert "\n" not in str(err.value)


def test_heatmap_reads_the_clusters(cohort, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    bulk = cohort["bulk"].copy()
    mk.tl.e2f_clusters(bulk, covariate="platelets")
    keys = set(bulk.uns)
    fig = mk.pl.e2f_heatmap(bulk, save=tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0 and fig is not None
    assert set(bulk.uns) == keys
