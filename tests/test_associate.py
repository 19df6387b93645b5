"""mk.tl.associate: per-sample readouts against platelet counts, samples as replicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._settings import MkcellError

COLUMNS = [
    "species",
    "covariate",
    "readout",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adj",
    "n_samples",
]


@pytest.fixture(scope="module")
def cohort():
    c = mk.datasets.simulate_cohort(12, n_genes=400, n_cells=120, seed=3)
    mk.io.join_samples(c["cells"], c["samples"])
    return c


def test_table_columns_and_direction(cohort):
    cells = cohort["cells"]
    out = mk.tl.associate(cells, "platelets", adjust=["age"], copy=True)
    assert "mk_associations" not in cells.uns
    res = out.uns["mk_associations"]
    tab = res["table"]
    assert list(tab.columns[: len(COLUMNS)]) == COLUMNS
    assert set(tab["readout"]) == {
        "mkp_fraction",
        "mk_score_e2f_targets",
        "mk_score_g2m_checkpoint",
        "mk_score_aurora",
        "mk_pseudotime",
    }
    e2f = tab.set_index("readout").loc["mk_score_e2f_targets"]
    assert e2f["effect"] < 0 and e2f["p_value"] < 0.05 and 10 <= e2f["n_samples"] <= 12
    assert e2f["ci_low"] < e2f["effect"] < e2f["ci_high"]
    assert (tab["p_adj"] >= tab["p_value"]).all()
    assert "per doubling of platelets" in e2f["unit"]
    assert res["per_sample"]["mk_score_e2f_targets"].isna().sum() == 12 - e2f["n_samples"]
    assert len(res["per_sample"]) == 12 and not res["lines"].empty


def test_slope_matches_plain_ols(cohort):
    """The effect is the OLS slope of the per-sample means on log2 platelets."""
    cells = cohort["cells"]
    out = mk.tl.associate(
        cells, "platelets", readouts="mk_score_e2f_targets", min_cells=1, copy=True
    )
    obs = cells.obs[cells.obs["mk_state"] == "MkP"]
    y = obs.groupby("sample", observed=True)["mk_score_e2f_targets"].mean()
    x = np.log2(cohort["samples"].loc[y.index, "platelets"])
    slope = np.polyfit(x, y, 1)[0]
    row = out.uns["mk_associations"]["table"].iloc[0]
    assert row["effect"] == pytest.approx(slope, rel=1e-8)
    from scipy import stats

    assert row["p_value"] == pytest.approx(stats.linregress(x, y).pvalue, rel=1e-6)


def test_bulk_rows_are_samples(cohort):
    bulk = cohort["bulk"].copy()
    mk.tl.e2f_clusters(bulk, covariate="platelets")
    mk.tl.associate(bulk, "platelets", log2_covariates=False)
    tab = bulk.uns["mk_associations"]["table"]
    assert list(tab["readout"]) == ["mk_e2f_z"] and tab["transform"].iloc[0] == "none"
    assert tab["effect"].iloc[0] < 0


def test_null_is_not_significant_often():
    hits = []
    for seed in range(6):
        c = mk.datasets.simulate_cohort(10, n_genes=400, n_cells=60, null=True, seed=seed)
        mk.io.join_samples(c["cells"], c["samples"])
        mk.tl.associate(c["cells"], "platelets", readouts=["mkp_fraction", "mk_score_e2f_targets"])
        hits.append(c["cells"].uns["mk_associations"]["table"]["p_value"].lt(0.05).sum())
    assert sum(hits) <= 3


def test_errors_are_one_line(cohort):
    cells = cohort["cells"].copy()
    cases = [
        ({"covariates": "lymphocytes"}, "join_samples"),
        ({"covariates": "sex"}, "not numeric"),
        ({"covariates": "platelets", "readouts": "nope"}, "not a column"),
        ({"covariates": "platelets", "log2_covariates": ["age"]}, "not among covariates"),
        ({"covariates": "platelets", "adjust": ["batch"]}, "batch"),
    ]
    for kwargs, match in cases:
        with pytest.raises(MkcellError, match=match) as err:
            mk.tl.associate(cells, **kwargs)
        assert "\n" not in str(err.value)
    cells.obs["platelets"] = np.where(cells.obs["sample"] == "P001", 0.0, cells.obs["platelets"])
    with pytest.raises(MkcellError, match="log2_covariates=False"):
        mk.tl.associate(cells, "platelets")
    cells.obs["platelets"] = np.arange(cells.n_obs, dtype=float)
    with pytest.raises(MkcellError, match="vary within a sample"):
        mk.tl.associate(cells, "platelets")


def test_plot_reads_the_result(cohort, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    cells = cohort["cells"].copy()
    with pytest.raises(MkcellError, match="mk.tl.associate"):
        mk.pl.associations(cells)
    mk.tl.associate(cells, "platelets")
    before = set(cells.uns)
    fig = mk.pl.associations(
        cells, readouts=["mkp_fraction", "mk_score_e2f_targets"], save=tmp_path / "a.png"
    )
    assert (tmp_path / "a.png").stat().st_size > 0 and len(fig.axes) == 2
    assert set(cells.uns) == before
    pd.testing.assert_frame_equal(
        cells.uns["mk_associations"]["table"], cells.uns["mk_associations"]["table"]
    )
