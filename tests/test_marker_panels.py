"""The marker panels against real references mkcell did not make (issue 14 item 8)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._settings import MkcellError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_panels import POPULATIONS, check, references  # noqa: E402


@pytest.fixture(scope="module")
def results() -> dict:
    return {
        name: check(mk.datasets.panel_profile_scores(prof, species, log1p=log), POPULATIONS[name])
        for name, (prof, species, log) in references(full=False).items()
    }


@pytest.mark.parametrize("name", list(POPULATIONS))
def test_each_panel_scores_highest_on_its_own_population(results, name):
    wrong = {s: r for s, r in results[name]["panels"].items() if not r["ok"]}
    assert not wrong, f"{name}: panels topping another population: {wrong}"
    assert set(results[name]["panels"]) == set(POPULATIONS[name]), (
        "a panel lost all its genes in this reference"
    )


def test_every_population_is_called_its_own_state_in_hematomap(results):
    wrong = {p: r for p, r in results["hematomap"]["populations"].items() if not r["ok"]}
    assert not wrong, wrong


def test_shipped_subsets_hold_every_panel_gene():
    panels = mk.datasets.marker_panels()
    refs = references(full=False)
    full = (
        Path(__file__).resolve().parents[2]
        / "shared"
        / "data"
        / "hematomap_human"
        / "HematoMap_human.csv.gz"
    )
    if full.exists():  # every panel gene the full reference has is in the shipped rows
        genes = set(pd.read_csv(full, index_col=0, usecols=[0]).index)
        missing = sorted(set(panels["human"]) & genes - set(refs["hematomap"][0].index))
        assert not missing, (
            f"regenerate the subsets (benchmarks/bench_panels.py --write-subsets): {missing}"
        )
    assert panels["source"].notna().all() and (panels["source"].str.len() > 5).all(), (
        "every panel gene cites a source"
    )


def test_panel_profile_scores_statistic_and_errors():
    prof = pd.DataFrame(
        {"a": [1.0, 5.0, 2.0], "b": [3.0, 1.0, 2.0]}, index=["ITGA2B", "GP9", "NOPE"]
    )
    s = mk.datasets.panel_profile_scores(prof, "human")
    # z across the two populations: ITGA2B (MkP) is higher in b, GP9 (Mk) in a
    assert s.loc["b", "MkP"] > s.loc["a", "MkP"] and s.loc["a", "Mk"] > s.loc["b", "Mk"]
    assert np.isclose(s.loc["a", "Mk"], 1 / np.sqrt(2))
    assert "erythroid" not in s
    with pytest.raises(MkcellError, match="species"):
        mk.datasets.panel_profile_scores(prof, "rat")
    with pytest.raises(MkcellError, match="at least 2"):
        mk.datasets.panel_profile_scores(prof[["a"]], "human")
