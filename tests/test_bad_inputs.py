"""Reliability corpus: bad inputs get a clear answer, fast, and inputs are never modified.

API cases assert the exception type and a phrase of the message. CLI cases assert what
the contract promises: a non-zero exit, no traceback, and a last stderr line
``mkcell: error: <what is wrong and how to fix it>``. Failures found before Hydra
starts print exactly that one line; failures found while reading the data come after
the run's log lines (``stage load running`` ...). Every CLI case must fail before any
expensive step: within 30 s, with no stage marked done (``stages/*.done.json``) except
``load`` for content checks made while mapping genes (``map`` is the first step that
reads the counts; ``load`` only copies the input).

Deliberately warnings, not errors (tested at the end): one sample per condition in a
contrast (point estimate, NaN interval and p-value), samples with < 20 cells, gene sets
with too few genes present, ``gene_symbols`` that disagree with the symbols' casing.

The CLI run on user files that checks input files are never modified (sha256, mtime,
folder listing) shares its two workflow runs with tests/test_reproducibility.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mkcell as mk
from mkcell._settings import ArgumentError, MkcellError, MkcellWarning
from mkcell.io import _fetch, _registry
from mkcell.io._read import MkcellFileNotFoundError

REPO = Path(__file__).resolve().parents[1]
CLI_SECONDS = 30  # a bad input must be answered long before integration would finish


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def marrow():
    """600 simulated cells of both species (raw counts in X), concatenated and a
    fake-annotated copy."""
    raw = mk.datasets.simulate_marrow(600, n_genes=800, seed=0)
    concat = mk.pp.concat_species(raw)
    annotated = concat.copy()
    annotated.obsm["X_mk_scvi"] = (
        np.random.default_rng(0).normal(size=(annotated.n_obs, 5)).astype(np.float32)
    )
    annotated.obs["mk_state"] = annotated.obs["true_state"].astype(str).astype("category")
    return SimpleNamespace(
        mouse=raw["mouse"], human=raw["human"], concat=concat, annotated=annotated
    )


class Ctx:
    """Fresh copies of the module's data for one case, and its tmp folder."""

    def __init__(self, data: SimpleNamespace, tmp: Path) -> None:
        self._data, self.tmp = data, tmp

    def __getattr__(self, name: str) -> ad.AnnData:
        return getattr(self._data, name).copy()


@pytest.fixture
def ctx(marrow, tmp_path):
    return Ctx(marrow, tmp_path)


def counts_only_in_x(a: ad.AnnData) -> ad.AnnData:
    """Drop ``layers['counts']`` so that ``X`` is what the function reads."""
    for key in list(a.layers):
        del a.layers[key]
    return a


def log_normalized(a: ad.AnnData) -> ad.AnnData:
    a = counts_only_in_x(a)
    X = sp.csr_matrix(a.X, dtype=np.float32)
    X = sp.csr_matrix(sp.diags(1e4 / np.maximum(np.asarray(X.sum(1)).ravel(), 1)) @ X)
    X.data = np.log1p(X.data)
    a.X = X
    return a


def with_value(a: ad.AnnData, value: float) -> ad.AnnData:
    a = counts_only_in_x(a)
    X = a.X.toarray()
    X[0, 0] = value
    a.X = X
    return a


def set_names(a: ad.AnnData, axis: str, names: list[str]) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anndata: names are not unique
        setattr(a, f"{axis}_names", names)
    return a


def duplicate_first(axis: str):  # noqa: ANN201
    """A function giving the second cell (``obs``) or gene (``var``) the name of the first."""

    def make(a: ad.AnnData) -> ad.AnnData:
        names = list(map(str, getattr(a, f"{axis}_names")))
        names[1] = names[0]
        return set_names(a, axis, names)

    return make


def upper_genes(a: ad.AnnData) -> ad.AnnData:
    return set_names(a, "var", [g.upper() for g in a.var_names])


def write_gmt(tmp: Path, text: str | bytes) -> Path:
    path = tmp / "sets.gmt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def truncated_h5ad(c: Ctx) -> Path:
    path = c.tmp / "cut.h5ad"
    c.mouse.write_h5ad(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def without_mkp(a: ad.AnnData) -> ad.AnnData:
    state = a.obs["mk_state"].astype(str)
    a.obs["mk_state"] = state.where(state != "MkP", "MEP").astype("category")
    return a


def drop_obs(a: ad.AnnData, key: str) -> ad.AnnData:
    del a.obs[key]
    return a


def nan_sample(a: ad.AnnData) -> ad.AnnData:
    sample = a.obs["sample"].astype(object)
    sample.iloc[0] = np.nan
    a.obs["sample"] = sample
    return a


def labels_csv(
    tmp: Path,
    a: ad.AnnData,
    *,
    name: str = "labels.csv",
    mkp_label: str = "Megakaryocyte progenitors",
) -> Path:
    """A labels file (cell, cell type) with published-style labels (spaces, '&', '/')."""
    names = {"MkP": mkp_label, "HSC/MPP": "HSCs & MPPs", "MEP": "MEP / early ery"}
    lab = a.obs["true_state"].astype(str).map(lambda s: names.get(s, s))
    path = tmp / name
    pd.DataFrame({"cell": a.obs_names, "cell type": lab}).to_csv(path, index=False)
    return path


def label_map_csv(tmp: Path, target: str = "MkP") -> Path:
    path = tmp / "map.csv"
    path.write_text(f"label,state\nMegakaryocyte progenitors,{target}\nHSCs & MPPs,HSC/MPP\n")
    return path


def fake_ensembl(a: ad.AnnData) -> ad.AnnData:
    """Gene names replaced by Ensembl-like IDs that no table knows, with no symbol column."""
    return set_names(counts_only_in_x(a), "var", [f"ENSG9{i:010d}" for i in range(a.n_vars)])


def without_mkp_markers(a: ad.AnnData) -> ad.AnnData:
    panels = mk.datasets.marker_panels()
    col = "mouse" if a.var_names.str.match(r"^[A-Z][a-z]").mean() > 0.5 else "human"
    drop = set(panels.loc[panels["state"] == "MkP", col])
    return a[:, ~a.var_names.isin(drop)].copy()


def read_fake_ensembl(c: Ctx) -> ad.AnnData:
    path = c.tmp / "ensembl.h5ad"
    fake_ensembl(c.human).write_h5ad(path)
    return mk.io.read(path)


# --------------------------------------------------------------------------- API cases

# (call(ctx), exception type, phrase of the message)
API_CASES = [
    # values that are not raw counts
    pytest.param(
        lambda c: mk.pp.map_orthologs(log_normalized(c.mouse)),
        MkcellError,
        "looks normalized or log-transformed",
        id="map-log-values",
    ),
    pytest.param(
        lambda c: mk.pp.highly_variable_genes(log_normalized(c.concat)),
        MkcellError,
        "looks normalized or log-transformed",
        id="hvg-log-values",
    ),
    pytest.param(
        lambda c: mk.tl.score(log_normalized(c.concat)),
        MkcellError,
        "looks normalized or log-transformed",
        id="score-non-count-data",
    ),
    pytest.param(
        lambda c: mk.pp.map_orthologs(with_value(c.mouse, -1)),
        MkcellError,
        "contains negative values",
        id="map-negative",
    ),
    pytest.param(
        lambda c: mk.tl.score(with_value(c.concat, -2)),
        MkcellError,
        "contains negative values",
        id="score-negative",
    ),
    pytest.param(
        lambda c: mk.pp.map_orthologs(with_value(c.mouse, np.nan)),
        MkcellError,
        "contains NaN or inf",
        id="map-nan",
    ),
    pytest.param(
        lambda c: mk.pp.concat_species({"human": with_value(c.human, np.inf)}),
        MkcellError,
        "contains NaN or inf",
        id="concat-inf",
    ),
    # empty, one cell, one gene
    pytest.param(
        lambda c: mk.pp.concat_species({"mouse": c.mouse[:0].copy(), "human": c.human}),
        MkcellError,
        "has 0 cells",
        id="concat-0-cells",
    ),
    pytest.param(
        lambda c: mk.pp.map_orthologs(c.mouse[:, :0].copy()),
        MkcellError,
        "0 genes; need at least",
        id="map-0-genes",
    ),
    pytest.param(
        lambda c: mk.pp.highly_variable_genes(c.concat[:1].copy()),
        MkcellError,
        "has 1 cells",
        id="hvg-1-cell",
    ),
    pytest.param(
        lambda c: mk.pp.highly_variable_genes(c.concat[:, :1].copy()),
        MkcellError,
        "1 genes; need at least 2",
        id="hvg-1-gene",
    ),
    pytest.param(
        lambda c: mk.pp.map_orthologs(c.mouse.X),
        TypeError,
        "must be an AnnData",
        id="map-not-anndata",
    ),
    # names
    pytest.param(
        lambda c: mk.pp.concat_species({"mouse": duplicate_first("obs")(c.mouse)}),
        MkcellError,
        "duplicated cell names",
        id="concat-duplicated-cells",
    ),
    pytest.param(
        lambda c: mk.pp.map_orthologs(duplicate_first("var")(c.mouse)),
        MkcellError,
        "duplicated genes",
        id="map-duplicated-genes",
    ),
    # species
    pytest.param(
        lambda c: mk.pp.concat_species({"mouse": c.human, "human": c.mouse}),
        MkcellError,
        "are the mouse and human inputs swapped",
        id="concat-species-swapped",
    ),
    pytest.param(
        lambda c: mk.pp.map_orthologs(c.human, source="mouse"),
        MkcellError,
        "are the species swapped",
        id="map-human-genes-as-mouse",
    ),
    pytest.param(
        lambda c: mk.pp.concat_species({"mouse": upper_genes(c.mouse), "human": c.human}),
        MkcellError,
        "human-style gene symbols",
        id="concat-mouse-upper-cased",
    ),
    pytest.param(
        lambda c: mk.pp.concat_species({"rat": c.mouse}),
        MkcellError,
        "unknown species ['rat']",
        id="concat-unknown-species",
    ),
    pytest.param(
        lambda c: mk.pp.map_orthologs(c.mouse, source="mouse", target="mouse"),
        MkcellError,
        "nothing to map",
        id="map-same-species",
    ),
    # obs columns and contrasts
    pytest.param(
        lambda c: mk.pp.highly_variable_genes(c.concat, batch_key="smaple"),
        MkcellError,
        "no batch column `adata.obs['smaple']`",
        id="hvg-misspelled-batch-key",
    ),
    pytest.param(
        lambda c: mk.tl.progenitor_pool(c.annotated, sample_key="donor"),
        MkcellError,
        "no sample column `adata.obs['donor']`",
        id="pool-missing-sample-key",
    ),
    pytest.param(
        lambda c: mk.tl.progenitor_pool(c.annotated, condition_key="Condition"),
        MkcellError,
        "no condition column `adata.obs['Condition']`",
        id="pool-misspelled-condition-key",
    ),
    pytest.param(
        lambda c: mk.tl.progenitor_pool(c.annotated, contrasts=[["MDS", "ctrl"]]),
        MkcellError,
        "condition(s) ['ctrl'] of contrast 'MDS vs ctrl' not found",
        id="pool-absent-condition",
    ),
    pytest.param(
        lambda c: mk.tl.progenitor_pool(c.annotated, contrasts=[["MDS_drug", "healthy"]]),
        MkcellError,
        "no species has both conditions",
        id="pool-conditions-in-different-species",
    ),
    pytest.param(
        lambda c: mk.tl.progenitor_pool(c.annotated, contrasts=[["MDS", "MDS"]]),
        MkcellError,
        "not a pair of two different conditions",
        id="pool-self-contrast",
    ),
    pytest.param(
        lambda c: mk.tl.progenitor_pool(nan_sample(c.annotated)),
        MkcellError,
        "has missing values",
        id="pool-nan-sample",
    ),
    pytest.param(
        lambda c: mk.tl.progenitor_pool(c.annotated, denominator="cells"),
        MkcellError,
        "denominator='cells' is not known",
        id="pool-bad-denominator",
    ),
    # files
    pytest.param(
        lambda c: mk.io.read(truncated_h5ad(c)),
        MkcellError,
        "check that the file is complete",
        id="read-truncated-h5ad",
    ),
    pytest.param(
        lambda c: mk.io.read(c.tmp / "nope.h5ad"),
        MkcellFileNotFoundError,
        "no such file or folder",
        id="read-missing-file",
    ),
    pytest.param(
        lambda c: mk.tl.score(
            c.concat, gmt=write_gmt(c.tmp, "A\tdesc\tMCM2\tMCM3\n\nB MCM4 MCM5\n")
        ),
        MkcellError,
        "sets.gmt:3: not a GMT line",
        id="score-gmt-unparsable",
    ),
    pytest.param(
        lambda c: mk.tl.score(c.concat, gmt=write_gmt(c.tmp, b"A\tdesc\tMCM2\n\x89PNG\xff\xfe\n")),
        MkcellError,
        "sets.gmt:2: not UTF-8 text",
        id="score-gmt-binary",
    ),
    pytest.param(
        lambda c: mk.tl.score(c.concat, gmt=write_gmt(c.tmp, "A\td\tMCM2\nA\td\tMCM3\n")),
        MkcellError,
        "sets.gmt:2: gene set 'A' is defined twice",
        id="score-gmt-duplicate-set",
    ),
    pytest.param(
        lambda c: mk.tl.score(c.concat, method="gsva"),
        MkcellError,
        "choose one of ['score_genes', 'aucell', 'ulm']",
        id="score-unknown-method",
    ),
    # order of steps
    pytest.param(
        lambda c: mk.tl.annotate(c.concat),
        MkcellError,
        "run mk.integrate.scvi(adata) first",
        id="annotate-before-integration",
    ),
    pytest.param(
        lambda c: mk.tl.annotate(c.concat, labels_key="true_branch"),
        MkcellError,
        "not mkcell states",
        id="annotate-labels-not-states",
    ),
    pytest.param(
        lambda c: mk.tl.trajectory(without_mkp(c.annotated)),
        MkcellError,
        "no MkP cells",
        id="trajectory-without-mkp",
    ),
    pytest.param(
        lambda c: mk.tl.trajectory(drop_obs(c.annotated, "mk_state")),
        MkcellError,
        "run mk.tl.annotate(adata) first",
        id="trajectory-before-annotate",
    ),
    # own labels, gene identifiers, marker coverage (issue 14)
    pytest.param(
        lambda c: mk.tl.read_labels(labels_csv(c.tmp, c.human), label_column="cluster"),
        ArgumentError,
        "labels file labels.csv: no label column 'cluster' (columns: ['cell', 'cell type'])",
        id="labels-file-wrong-column",
    ),
    pytest.param(
        lambda c: mk.tl.annotate(c.human, labels=labels_csv(c.tmp, c.human)),
        MkcellError,
        "labels that are not mkcell states: "
        "['HSCs & MPPs', 'MEP / early ery', 'Megakaryocyte progenitors']",
        id="labels-not-mappable",
    ),
    pytest.param(
        lambda c: mk.tl.annotate(
            c.human,
            labels=labels_csv(c.tmp, c.human),
            label_map=label_map_csv(c.tmp, "Megakaryocyte"),
        ),
        MkcellError,
        "targets ['Megakaryocyte'] are not mkcell states",
        id="label-map-target-not-a-state",
    ),
    pytest.param(
        lambda c: mk.tl.annotate(c.human, labels=c.tmp / "nope.csv"),
        MkcellError,
        "labels file",
        id="labels-file-missing",
    ),
    pytest.param(
        read_fake_ensembl,
        MkcellError,
        "pass gene_symbols=COLUMN (data.gene_symbols=COLUMN on the command line)",
        id="ensembl-ids-unmappable",
    ),
    pytest.param(
        lambda c: mk.io.read(
            c.tmp / "x.h5ad" if c.human.write_h5ad(c.tmp / "x.h5ad") else c.tmp / "x.h5ad",
            gene_symbols="symbol",
        ),
        MkcellError,
        "gene_symbols='symbol': no such column",
        id="gene-symbols-column-absent",
    ),
    pytest.param(
        lambda c: mk.tl.annotate(without_mkp_markers(c.annotated)),
        MkcellError,
        "too few MkP marker genes to call MkP",
        id="annotate-no-mkp-markers",
    ),
    # registry
    pytest.param(
        lambda c: mk.io.load("paul15_tradeseqq"),
        MkcellError,
        "did you mean 'paul15_tradeseq'",
        id="load-unknown-registry-id",
    ),
]  # fmt: skip (a table: one case per line, read across)


@pytest.mark.parametrize(("call", "exc", "phrase"), API_CASES)
def test_api_bad_input(call, exc, phrase, ctx):
    with pytest.raises(exc, match=re.escape(phrase)) as info:
        call(ctx)
    # exactly this type: e.g. a missing file is MkcellFileNotFoundError, not a bare MkcellError
    assert type(info.value) is exc
    assert "\n" not in str(info.value)  # one line, as the CLI shows it


# --------------------------------------------------------------------------- CLI cases


@pytest.fixture(scope="module")
def cli_files(marrow, tmp_path_factory):
    """Input files for the CLI cases: good ones and one of each kind of bad file."""
    d = tmp_path_factory.mktemp("cli_inputs")
    m, h = marrow.mouse, marrow.human
    m.write_h5ad(d / "mouse.h5ad")
    h.write_h5ad(d / "human.h5ad")
    (d / "text.h5ad").write_text("cell,Pf4\nc1,3\n")
    data = (d / "mouse.h5ad").read_bytes()
    (d / "cut.h5ad").write_bytes(data[: len(data) // 2])
    (d / "counts.csv").write_text("cell,Pf4\nc1,3\n")
    m[:0].copy().write_h5ad(d / "empty.h5ad")
    duplicate_first("obs")(m.copy()).write_h5ad(d / "dupcells.h5ad")
    log_normalized(m.copy()).write_h5ad(d / "lognorm.h5ad")
    with_value(m.copy(), np.nan).write_h5ad(d / "nan.h5ad")
    upper_genes(m.copy()).write_h5ad(d / "upper.h5ad")
    write_gmt(d, "SET_A\tdesc\tMCM2\tMCM3\n\nSET_B MCM4 MCM5\n")
    (d / "a_file").write_text("not a folder")
    labels_csv(d, m)
    labels_csv(d, m, name="labels_states.csv", mkp_label="MkP")
    label_map_csv(d, "Megakaryocyte")
    fake_ensembl(h.copy()).write_h5ad(d / "ensembl.h5ad")
    without_mkp_markers(h.copy()).write_h5ad(d / "no_mkp_markers.h5ad")
    fake_reference(d / "ref_ok", marrow.annotated)
    tampered = fake_reference(d / "ref_tampered", marrow.annotated)
    (tampered / "tables" / "pool_per_sample.csv").write_text("sample,species\nx,human\n")
    mouse_only = fake_reference(d / "ref_mouse", marrow.annotated)
    manifest = json.loads((mouse_only / "reference" / "manifest.json").read_text())
    (mouse_only / "reference" / "manifest.json").write_text(
        json.dumps({**manifest, "species": ["mouse"]})
    )
    few_genes(m.copy()).write_h5ad(d / "few_genes.h5ad")
    samples_files(d, sorted(m.obs["sample"].astype(str).unique()))
    return d


def samples_files(d: Path, samples: list[str]) -> None:
    """A good samples file of the mouse input and one of each kind of bad one."""
    rows = [f"{s},{100 + 10 * i},{i % 2}" for i, s in enumerate(samples)]
    head = "sample,platelets,litter"
    (d / "samples.csv").write_text("\n".join([head, *rows]) + "\n")
    (d / "samples_missing.csv").write_text("\n".join([head, *rows[1:]]) + "\n")
    (d / "samples_extra.csv").write_text("\n".join([head, *rows, "mouse_ghost_9,120,1"]) + "\n")
    (d / "samples_dup.csv").write_text("\n".join([head, *rows, rows[0]]) + "\n")
    text = [rows[0].replace(",100,", ",low,"), *rows[1:]]
    (d / "samples_text.csv").write_text("\n".join([head, *text]) + "\n")


def fake_reference(folder: Path, annotated: ad.AnnData) -> Path:
    """A reference run folder as the workflow writes it, with a stand-in model (mapping fails
    before it is read)."""
    (folder / "model").mkdir(parents=True)
    (folder / "tables").mkdir()
    np.savez(folder / "model" / "weights.npz", w=np.zeros(1))
    setup = {
        "model": "scvi",
        "model_class": "SCVI",
        "features": list(map(str, annotated.var_names)),
    }
    (folder / "model" / "setup.json").write_text(json.dumps(setup))
    a = annotated.copy()
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "control"]])
    a.uns["mk_pool"]["per_sample"].to_csv(folder / "tables" / "pool_per_sample.csv", index=False)
    mk.tl.write_reference(a, folder)
    return folder


def few_genes(a: ad.AnnData) -> ad.AnnData:
    """The marker-panel genes and a fifth of the others: most reference features are missing."""
    panel = set(mk.datasets.marker_panels()["mouse"])
    names = list(map(str, a.var_names))
    keep = [g in panel or i % 5 == 0 for i, g in enumerate(names)]
    return a[:, keep].copy()


FILES = ["debug=tiny", "data=files", "pool.contrasts=[[MDS,control]]"]
MOUSE = [*FILES, "data.inputs.mouse={d}/mouse.h5ad"]

# (arguments, phrase of the message, where it fails: config = before Hydra starts, load /
# map = in that stage; {d} = the folder of cli_files)
CLI_CASES = [
    pytest.param(
        ["data=files", "debug=tiny"],
        "data=files needs an input: pass data.inputs.mouse=PATH",
        "config",
        id="files-both-inputs-null",
    ),
    pytest.param(
        [*FILES, "data.inputs.human={d}/nope.h5ad"],
        "data.inputs.human={d}/nope.h5ad: no such file or folder",
        "config",
        id="missing-file",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/text.h5ad"],
        "text.h5ad as an .h5ad file",
        "load",
        id="not-hdf5-with-h5ad-extension",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/cut.h5ad"],
        "check that the file is complete",
        "load",
        id="truncated-h5ad",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/counts.csv"],
        "unsupported file type '.csv'",
        "load",
        id="unsupported-extension",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/empty.h5ad"],
        "holds an empty matrix (0 cells",
        "load",
        id="empty-h5ad",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/dupcells.h5ad"],
        "duplicated cell names",
        "load",
        id="duplicated-cell-names",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/lognorm.h5ad"],
        "looks normalized or log-transformed",
        "orthologs",
        id="log-normalized-values",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/nan.h5ad"],
        "contains NaN or inf",
        "orthologs",
        id="nan-values",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/upper.h5ad"],
        "the mouse input has human-style gene symbols",
        "orthologs",
        id="mouse-genes-upper-cased",
    ),
    pytest.param(
        [
            "debug=tiny",
            "data=files",
            "data.inputs.mouse={d}/human.h5ad",
            "data.inputs.human={d}/mouse.h5ad",
        ],
        "are the mouse and human inputs swapped",
        "orthologs",
        id="species-swapped",
    ),
    pytest.param(
        [*MOUSE, "data.sample_key=smaple"],
        "no sample column 'smaple' in the input obs",
        "load",
        id="misspelled-sample-key",
    ),
    pytest.param(
        [*MOUSE, "data.condition_key=Condition"],
        "no condition column 'Condition' in the input obs",
        "load",
        id="misspelled-condition-key",
    ),
    pytest.param(
        [*MOUSE, "pool.contrasts=[[MDS,ctrl]]"],
        "pool.contrasts: condition(s) ['ctrl'] of contrast 'MDS vs ctrl' not found",
        "load",
        id="contrast-condition-absent",
    ),
    pytest.param(
        [*MOUSE, "annotate.labels_key=celltype"],
        "annotate.labels_key=celltype: no such column",
        "load",
        id="labels-key-absent",
    ),
    pytest.param(
        [*MOUSE, "annotate.labels_file={d}/labels.csv", "annotate.labels_column=cluster"],
        "labels file labels.csv: no label column 'cluster' (columns: ['cell', 'cell type']); "
        "set annotate.labels_column",
        "load",
        id="labels-file-wrong-column",
    ),
    pytest.param(
        [*MOUSE, "annotate.labels_file={d}/labels.csv"],
        "labels that are not mkcell states: "
        "['HSCs & MPPs', 'MEP / early ery', 'Megakaryocyte progenitors']",
        "load",
        id="label-not-mappable",
    ),
    pytest.param(
        [*MOUSE, "annotate.labels_file={d}/labels.csv", "annotate.label_map_file={d}/map.csv"],
        "annotate.label_map_file: label map map.csv: "
        "targets ['Megakaryocyte'] are not mkcell states",
        "load",
        id="label-map-target-not-a-state",
    ),
    pytest.param(
        [*MOUSE, "annotate.labels_file={d}/nope.csv"],
        "annotate.labels_file={d}/nope.csv: no such file",
        "config",
        id="labels-file-missing",
    ),
    pytest.param(
        [*FILES, "data.inputs.human={d}/ensembl.h5ad"],
        "pass gene_symbols=COLUMN (data.gene_symbols=COLUMN on the command line)",
        "load",
        id="ensembl-ids-no-symbols",
    ),
    pytest.param(
        [
            "debug=tiny",
            "data=files",
            "pool.contrasts=[[MDS,healthy]]",
            "data.inputs.human={d}/no_mkp_markers.h5ad",
        ],
        "no MkP markers in the human input",
        "load",
        id="no-mkp-markers",
    ),
    pytest.param(
        ["debug=tiny", "score.gmt={d}/sets.gmt"],
        "sets.gmt:3: not a GMT line",
        "config",
        id="gmt-unparsable",
    ),
    pytest.param(
        ["debug=tiny", "data=registry", "data.id=paul15_tradeseqq"],
        "did you mean 'paul15_tradeseq'",
        "load",
        id="unknown-registry-id",
    ),
    pytest.param(
        ["debug=tiny", "data=registry"],
        "data=registry needs a dataset id",
        "config",
        id="registry-without-id",
    ),
    pytest.param(
        ["debug=tiny", "seed=abc"],
        "'seed=abc': Value 'abc' of type 'str' could not be converted to Integer",
        "config",
        id="seed-not-an-integer",
    ),
    pytest.param(
        ["debug=tiny", "pool.contrast=[[MDS,control]]"],
        "unknown config key 'pool.contrast'",
        "config",
        id="unknown-config-key",
    ),
    pytest.param(
        ["debug=tiny", "pool.contrasts=[[MDS_drug,MDS,MDS_drug,control]]"],
        "pool.contrasts: contrast ['MDS_drug', 'MDS', 'MDS_drug', 'control'] is not an "
        "interaction of four different conditions",
        "config",
        id="interaction-repeats-a-condition",
    ),
    pytest.param(
        [*MOUSE, "pool.contrasts=[[MDS_drug,MDS,control_drug,control]]"],
        "pool.contrasts: condition(s) ['control_drug'] of contrast "
        "'(MDS_drug vs MDS) vs (control_drug vs control)' not found",
        "load",
        id="interaction-arm-absent",
    ),
    pytest.param(
        ["debug=tiny", "pool.denominator=cells"],
        "pool.denominator=cells: choose one of",
        "config",
        id="unknown-denominator",
    ),
    pytest.param(
        ["debug=tiny", "design=batch"],
        "design='batch' must be a formula starting with '~'",
        "config",
        id="bad-design",
    ),
    pytest.param(
        ["debug=tiny", "hydra.run.dir={d}/a_file/run"],
        "cannot create the output folder",
        "config",
        id="unwritable-output-folder",
    ),
    # mode=map: the reference must be a trustworthy run folder holding the query's species and
    # features (issue 15)
    pytest.param(
        [*MOUSE, "mode=map"],
        "mode=map needs a reference: pass reference.dir=RUN_DIR",
        "config",
        id="map-without-reference",
    ),
    pytest.param(
        [*MOUSE, "mode=map", "reference.dir={d}"],
        "is not an mkcell reference: no reference/manifest.json",
        "config",
        id="map-wrong-folder",
    ),
    pytest.param(
        [*MOUSE, "mode=map", "reference.dir={d}/ref_tampered"],
        "tables/pool_per_sample.csv does not match its checksum",
        "config",
        id="map-tampered-reference",
    ),
    pytest.param(
        [
            "debug=tiny",
            "data=files",
            "pool.contrasts=[[MDS,healthy]]",
            "data.inputs.human={d}/human.h5ad",
            "mode=map",
            "reference.dir={d}/ref_mouse",
        ],
        "holds ['mouse'] cells only, but the query has human cells",
        "config",
        id="map-species-the-reference-lacks",
    ),
    # a samples file (issue 28): checked in the load stage, one line each
    pytest.param(
        [*MOUSE, "data.samples_file={d}/samples_missing.csv"],
        "1 sample(s) of the data are not in the samples table: ['mouse_MDS_1']",
        "load",
        id="samples-file-lacks-a-sample",
    ),
    pytest.param(
        [*MOUSE, "data.samples_file={d}/samples_extra.csv"],
        "are not in the data: ['mouse_ghost_9']",
        "load",
        id="samples-file-extra-sample",
    ),
    pytest.param(
        [*MOUSE, "data.samples_file={d}/samples_dup.csv"],
        "data.samples_file={d}/samples_dup.csv",
        "load",
        id="samples-file-duplicated-sample",
    ),
    pytest.param(
        [*MOUSE, "data.samples_file={d}/samples_text.csv"],
        "'low'",
        "load",
        id="samples-file-text-in-numeric-column",
    ),
    pytest.param(
        [*MOUSE, "data.samples_file={d}/samples.csv", "design='~ condition + day'"],
        "names column(s) ['day']",
        "load",
        id="design-column-absent",
    ),
    pytest.param(
        [*MOUSE, "data.samples_file={d}/nope.csv"],
        "data.samples_file={d}/nope.csv: no such file",
        "config",
        id="samples-file-missing",
    ),
    pytest.param(
        [*MOUSE, "gsea.split=platelets"],
        "gsea.split='platelets': write COLUMN OP NUMBER",
        "config",
        id="gsea-split-malformed",
    ),
    pytest.param(
        ["mode=bulk"],
        "mode=bulk needs a samples x genes table",
        "config",
        id="bulk-without-input",
    ),
    pytest.param(
        [*FILES, "data.inputs.mouse={d}/few_genes.h5ad", "mode=map", "reference.dir={d}/ref_ok"],
        "the query holds only",
        "orthologs",
        id="map-other-features",
    ),
]  # fmt: skip (a table: one case per line, read across)


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MKCELL_DEBUG", "HYDRA_FULL_ERROR", "PYTHONWARNINGS"}
    }
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.parametrize(("args", "phrase", "where"), CLI_CASES)
def test_cli_bad_input(args, phrase, where, cli_files, tmp_path):
    run_dir = tmp_path / "run"
    args = [a.format(d=cli_files) for a in args]
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={run_dir}")
    before = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in cli_files.iterdir()
        if p.is_file()
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkcell", *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    after = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in cli_files.iterdir()
        if p.is_file()
    }
    assert after == before  # no input file is changed (or added next to the inputs)
    err = proc.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode != 0, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert last.startswith("mkcell: error: "), err[-2000:]
    assert phrase.format(d=cli_files) in last, last
    assert sum(line.startswith("mkcell: error") for line in lines) == 1, err[-2000:]
    assert proc.stdout == ""  # stdout carries only the run folder of a successful run
    assert elapsed < CLI_SECONDS, (
        f"took {elapsed:.1f} s: validation must come before expensive steps"
    )
    if where == "config":  # checked before Hydra starts: one line, nothing written
        assert len(lines) == 1, err
        assert proc.returncode == 2
        assert not run_dir.exists()
        return
    done = {p.name.removesuffix(".done.json") for p in run_dir.glob("stages/*.done.json")}
    assert done <= ({"load"} if where == "orthologs" else set()), done
    assert not (run_dir / "model").exists()
    assert not (run_dir / "tables").exists() or where == "orthologs"


# --------------------------------------------------------------------------- warnings, not errors


def test_one_sample_per_condition_warns_and_gives_nan(marrow):
    """A contrast with one sample on a side: point estimate, NaN CI and p-value, a warning."""
    a = marrow.annotated.copy()
    keep = a.obs["sample"].isin(["mouse_control_1", "mouse_MDS_1", "mouse_MDS_2"])
    a = a[keep.to_numpy()].copy()
    with pytest.warns(
        MkcellWarning, match="no replicate-aware test possible: control has 1 sample"
    ):
        mk.tl.progenitor_pool(a, contrasts=[["MDS", "control"]])
    row = a.uns["mk_pool"]["contrasts"].iloc[0]
    assert (row["n_samples_a"], row["n_samples_b"]) == (2, 1)
    assert np.isfinite(row["effect_log2"])
    assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"]) and np.isnan(row["p_value"])
    assert "control has 1 sample" in row["note"]
    assert len(a.uns["mk_pool"]["per_sample"]) == 3


def test_small_samples_warn_and_are_kept(marrow):
    m = marrow.mouse[:30].copy()  # the first sample, cut to 30 cells, and ...
    m = ad.concat([m, marrow.mouse[marrow.mouse.obs["sample"] == "mouse_MDS_1"][:5]])
    with pytest.warns(MkcellWarning, match=r"fewer than 20 cells \(kept\): .*'mouse_MDS_1': 5"):
        out = mk.pp.concat_species({"mouse": m})
    assert out.n_obs == m.n_obs


def test_gene_set_mostly_missing_warns(marrow):
    a = marrow.concat.copy()
    with pytest.warns(MkcellWarning, match="gene set MY_SET .*1/3 genes present"):
        mk.tl.score(a, gmt={"MY_SET": ["MCM2", "NOT_A_GENE", "NOR_THIS"]})
    assert "mk_score_my_set" in a.obs  # scored with the genes present (on_missing='score')


def test_gene_symbols_disagreeing_with_casing_warns(marrow):
    a = marrow.concat.copy()  # human symbols
    with warnings.catch_warnings(record=True) as caught:  # also the missing-gene warnings
        warnings.simplefilter("always", MkcellWarning)
        mk.tl.score(a, gene_symbols="mouse", on_missing="skip")
    messages = [str(w.message) for w in caught if issubclass(w.category, MkcellWarning)]
    assert any("gene_symbols='mouse' but the symbols look human" in m for m in messages), messages


# ---------------------------------------------------------------------- inputs never modified (API)


def _snapshot(a: ad.AnnData) -> dict:
    X = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
    return {
        "X": X.copy(),
        "obs": a.obs.copy(),
        "var": a.var.copy(),
        "layers": {
            k: (v.toarray() if sp.issparse(v) else np.asarray(v)).copy()
            for k, v in a.layers.items()
        },
        "obs_names": a.obs_names.copy(),
        "var_names": a.var_names.copy(),
        "uns": set(a.uns),
    }


def _assert_same(
    a: ad.AnnData,
    before: dict,
    *,
    var_added: set[str] = frozenset(),
    obs_added: set[str] = frozenset(),
    layers_added: set[str] = frozenset(),
) -> None:
    after = _snapshot(a)
    np.testing.assert_array_equal(after["X"], before["X"])
    assert set(after["layers"]) - set(before["layers"]) == set(layers_added)
    for k in before["layers"]:
        np.testing.assert_array_equal(after["layers"][k], before["layers"][k])
    pd.testing.assert_index_equal(after["obs_names"], before["obs_names"])
    pd.testing.assert_index_equal(after["var_names"], before["var_names"])
    assert set(after["obs"].columns) - set(before["obs"].columns) == set(obs_added)
    pd.testing.assert_frame_equal(after["obs"][before["obs"].columns], before["obs"])
    assert set(after["var"].columns) - set(before["var"].columns) == set(var_added)
    pd.testing.assert_frame_equal(after["var"][before["var"].columns], before["var"])


def test_map_and_concat_leave_inputs_untouched(marrow):
    m, h = marrow.mouse.copy(), marrow.human.copy()
    bm, bh = _snapshot(m), _snapshot(h)
    mk.pp.map_orthologs(m)
    _assert_same(m, bm)
    assert set(m.uns) == bm["uns"]
    mk.pp.concat_species({"mouse": m, "human": h}, keep_species_specific=True)
    _assert_same(m, bm)
    _assert_same(h, bh)
    assert set(m.uns) == bm["uns"] and set(h.uns) == bh["uns"]


def test_hvg_writes_only_var(marrow):
    a = marrow.concat.copy()
    before = _snapshot(a)
    mk.pp.highly_variable_genes(a, n_top_genes=200)
    _assert_same(a, before, var_added={"mk_highly_variable"})
    assert set(a.uns) - before["uns"] <= {"mk_highly_variable"}  # its parameters, scanpy-style


def test_score_does_not_touch_x(marrow):
    a = marrow.concat.copy()
    counts_only_in_x(a)  # the counts are read from X itself
    before = _snapshot(a)
    mk.tl.score(a)
    added = {"S_score", "G2M_score", "phase"} | {
        c for c in a.obs.columns if c.startswith("mk_score_")
    }
    # the one log-normalisation is cached next to the counts (mkcell/pp/_normalize.py)
    _assert_same(a, before, obs_added=added, layers_added={"mk_lognorm"})


# --------------------------------------------------------------------------- security basics

# Loading pickles / torch checkpoints executes code from the file. mkcell may load only
# what it wrote itself in the run folder (e.g. a model under <run>/model); add such a
# line to ALLOWED as "relative/path.py: stripped source line" with that justification.
UNSAFE = re.compile(
    r"\bpickle\.loads?\(|\bcloudpickle\.|\bdill\.|\bjoblib\.load\(|\btorch\.load\(|"
    r"\bread_pickle\(|allow_pickle\s*=\s*True|\byaml\.(unsafe_)?load\(|\byaml\.full_load\(|"
    r"\.load_from_checkpoint\(|\b(SCVI|SysVI|SCANVI|model\.\w+)\.load\(|(?<![.\w])eval\(|(?<![.\w])exec\("
)
ALLOWED: set[str] = (
    set()
)  # builtin eval/exec only: a torch module's .eval() (inference mode) is not a deserialiser


def test_no_unsafe_deserialisation_of_user_files():
    hits = []
    for root in ("mkcell", "workflows"):
        for path in sorted((REPO / root).rglob("*.py")):
            for line in path.read_text().splitlines():
                code = line.split("#", 1)[0]
                if UNSAFE.search(code):
                    hits.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert [h for h in hits if h not in ALLOWED] == []


def test_load_refuses_checksum_mismatch_before_reading(tmp_path, monkeypatch):
    """A registry download that fails its checksum is deleted and never read.

    mk.io.fetch itself: tests/test_io.py::test_fetch_checksum_mismatch_leaves_nothing and
    ::test_fetch_uses_hand_placed_file (a tampered cached file is refused).
    """
    import yaml

    reg = tmp_path / "registry"
    reg.mkdir()
    monkeypatch.setenv("MKCELL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_registry, "registry_dir", lambda: reg)
    entry = {
        "id": "toy",
        "title": "Toy",
        "species": "mouse",
        "tissue": "bone marrow",
        "assay": "10x",
        "urls": ["https://example.org/toy.h5ad"],
        "sha256": hashlib.sha256(b"the real file").hexdigest(),
        "format": "h5ad",
        "shape": {"n_obs": None, "n_vars": None},
        "obs_columns": {"sample": None, "cell_type": None},
        "citation_doi": "10.1000/toy",
        "license": "CC0",
    }
    (reg / "toy.yaml").write_text(yaml.safe_dump(entry))
    monkeypatch.setattr(
        _fetch, "_download", lambda url, path, **kw: Path(path).write_bytes(b"tampered")
    )
    read = []
    monkeypatch.setattr(_registry, "_read_file", lambda *a, **kw: read.append(a))
    with pytest.raises(MkcellError, match="checksum mismatch for https://example.org/toy.h5ad"):
        mk.io.load("toy", progress=False)
    assert read == []
    folder = tmp_path / "cache" / "toy"
    assert not folder.exists() or list(folder.iterdir()) == []
    # a tampered file placed in the cache by hand is refused too, without being read
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.h5ad").write_bytes(b"tampered")
    with pytest.raises(MkcellError, match="does not match its checksum"):
        mk.io.load("toy", progress=False)
    assert read == []


def test_load_warns_and_says_what_still_runs_without_mature_mk_markers(marrow, caplog):
    """No Mk panel genes (a targeted panel without PF4, PPBP, GP9 ...): a warning at load, not
    an error."""
    import logging

    from omegaconf import OmegaConf

    from mkcell.workflow._checks import _check_markers

    panels = mk.datasets.marker_panels()
    h = marrow.human
    h = h[:, ~h.var_names.isin(set(panels.loc[panels["state"] == "Mk", "human"]))].copy()
    cfg = OmegaConf.create({"annotate": {"labels_key": None, "labels_file": None}})
    with caplog.at_level(logging.WARNING, logger="mkcell"):
        _check_markers(cfg, {"human": h})
    assert "no mature-Mk markers in the human input" in caplog.text
    assert "HSC/MPP -> MEP -> MkP" in caplog.text and "annotate.labels_file=" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mkcell"):
        _check_markers(cfg, {"human": marrow.human})  # whole panel: silent
    assert "mature-Mk" not in caplog.text
