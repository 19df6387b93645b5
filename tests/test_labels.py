"""Your own labels from files: labels table + label map (CSV or YAML), punctuation in values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._settings import MkcellError

NAMES = {
    "HSC/MPP": "HSCs & MPPs",
    "MEP": "MEP / early ery",
    "MkP": "Megakaryocyte progenitors",
    "Mk": "Mk + platelets",
    "erythroid": "Erythroid",
    "myeloid": "Myeloid",
}


@pytest.fixture(scope="module")
def human():
    return mk.datasets.simulate_marrow(500, n_genes=700, species=("human",), n_samples=2, seed=0)[
        "human"
    ]


def test_labels_file_with_csv_and_yaml_maps(human, tmp_path):
    truth = human.obs["true_state"].astype(str)
    cells = tmp_path / "cells.tsv"
    pd.DataFrame({"barcode": human.obs_names, "cell type": truth.map(NAMES)}).iloc[:-5].to_csv(
        cells, sep="\t", index=False
    )
    csv_map, yaml_map = tmp_path / "map.csv", tmp_path / "map.yaml"
    kept = {v: k for k, v in NAMES.items() if k != "myeloid"}
    csv_map.write_text("".join(f'"{k}",{v}\n' for k, v in kept.items()))  # no header row
    yaml_map.write_text("".join(f'"{k}": "{v}"\n' for k, v in kept.items()))
    before = cells.read_bytes(), csv_map.read_bytes(), yaml_map.read_bytes()
    for label_map in (csv_map, yaml_map):
        a = human.copy()
        mk.tl.annotate(a, labels=cells, label_map=label_map)  # no integrated space needed
        want = truth.where(truth != "myeloid", "other").to_numpy().copy()
        want[-5:] = "other"  # not in the labels file
        assert (a.obs["mk_state"].astype(str).to_numpy() == want).all()
        ann = a.uns["mk_annotate"]
        assert ann["method"] == "labels" and ann["n_unlabelled"] == 5
        assert ann["n_unmapped"] == int((truth.iloc[:-5] == "myeloid").sum())
        assert set(ann["unmapped"]["label"]) == {"Myeloid", ""}
    assert (cells.read_bytes(), csv_map.read_bytes(), yaml_map.read_bytes()) == before


def test_labels_series_and_errors(human, tmp_path):
    a = human.copy()
    s = pd.Series(human.obs["true_state"].astype(str).to_numpy(), index=human.obs_names)
    mk.tl.annotate(a, labels=s)
    assert (a.obs["mk_state"].astype(str).to_numpy() == s.to_numpy()).all()
    with pytest.raises(MkcellError, match="none of its 2 cell names"):
        mk.tl.annotate(human.copy(), labels=pd.Series(["MkP", "Mk"], index=["x", "y"]))
    with pytest.raises(MkcellError, match="not both"):
        mk.tl.annotate(human.copy(), labels=s, labels_key="true_state")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(
        MkcellError, match=r"which column holds the cell\? \(columns: \['a', 'b', 'c'\]\)"
    ):
        mk.tl.read_labels(bad)
    assert np.isfinite(a.obs["mk_state_confidence"]).all()
