"""The patient-level analyses through the CLI: a bulk cohort (``mode=bulk``) and a samples file
joined to the scRNA workflow (issue 28)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mkcell as mk

CONTRACT = {  # ../shared/CONTRACT.md
    "associations": "species covariate readout effect ci_low ci_high p_value p_adj n_samples".split(),
    "gsea": "species groups term nes p_value fdr method".split(),
    "e2f_clusters": ["sample", "cluster"],  # + the tested column, species, cut_height
}


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _tables(run: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name, cols in CONTRACT.items():
        df = pd.read_csv(run / "tables" / f"{name}.csv")
        assert list(df.columns[: len(cols)]) == cols, name
        out[name] = df
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """24 simulated patients, low platelets with high E2F: bulk TSV, series matrix, samples."""
    d = tmp_path_factory.mktemp("cohort")
    c = mk.datasets.simulate_cohort(24, n_genes=3000, n_cells=0, seed=1)
    bulk = c["bulk"]
    counts = pd.DataFrame(bulk.layers["counts"], index=bulk.obs_names, columns=bulk.var_names)
    counts.rename_axis("sample").to_csv(d / "counts.tsv", sep="\t")
    samples = c["samples"][["platelets", "age", "sex", "condition"]]
    samples.rename_axis("sample").to_csv(d / "samples.csv")
    annotation = mk.datasets.write_geo_series_matrix(bulk, d / "GSE0_series_matrix.txt.gz")
    annotation.to_csv(d / "probes.csv", index=False)
    return d, c["samples"]


@pytest.mark.slow
def test_bulk_cohort_finds_the_platelet_axis(cohort, tmp_path, run_mkcell):
    d, truth = cohort
    before = _digests(d)
    proc = run_mkcell(
        "mode=bulk",
        f"data.inputs.bulk={d / 'counts.tsv'}",
        f"data.samples_file={d / 'samples.csv'}",
        "associate.covariates=[platelets]",
        "associate.adjust=[age]",
        "gsea.split='platelets < 100'",
        "e2f_clusters.covariate=platelets",
        "e2f_clusters.threshold=100",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(proc.stdout.strip().splitlines()[-1]) == (tmp_path / "run").resolve()
    assert _digests(d) == before  # inputs never modified
    t = _tables(tmp_path / "run")
    e2f = t["associations"].set_index("readout").loc["mk_e2f_z"]
    assert e2f["effect"] < 0 and e2f["p_adj"] < 0.05  # lower platelets, higher E2F
    clusters = t["e2f_clusters"].set_index("sample")
    planted = truth["truth_low_platelet_subset"].reindex(clusters.index)
    high = clusters["cluster"] == 1
    assert (high == planted).mean() >= 0.8
    gsea = t["gsea"].set_index("term")
    assert gsea.loc["HALLMARK_E2F_TARGETS", "nes"] > 0
    assert gsea.loc["HALLMARK_E2F_TARGETS", "fdr"] < 0.05
    assert gsea.loc["HALLMARK_E2F_TARGETS", "groups"] == "platelets < 100 vs not platelets < 100"
    report = (tmp_path / "run" / "report.html").read_text()
    assert "lower platelets" in report and "Fisher p=" in report


@pytest.mark.slow
def test_bulk_series_matrix_with_probe_annotation(cohort, tmp_path, run_mkcell):
    d, _ = cohort
    proc = run_mkcell(
        "mode=bulk",
        f"data.inputs.bulk={d / 'GSE0_series_matrix.txt.gz'}",
        f"bulk.probe_annotation={d / 'probes.csv'}",
        "e2f_clusters.covariate=platelets",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = _tables(tmp_path / "run")
    assert t["associations"].empty  # no covariates asked for
    assert len(t["e2f_clusters"]) == 24 and t["e2f_clusters"]["cut_height"].gt(0).all()
    assert "probes kept" in (tmp_path / "run" / "report.html").read_text()


@pytest.mark.slow
def test_scrna_workflow_with_samples_file(tmp_path, run_mkcell):
    """debug=tiny with per-sample platelets: associations, a covariate GSEA split, clusters."""
    rng = np.random.default_rng(0)
    names = [
        f"{sp}_{cond}_{i}"
        for sp, conds in (("mouse", ("control", "MDS", "MDS_drug")), ("human", ("healthy", "MDS")))
        for cond in conds
        for i in (1, 2, 3)
    ]
    samples = pd.DataFrame(
        {
            "platelets": rng.uniform(30, 300, len(names)).round(),
            "litter": np.arange(len(names)) % 2,
        },
        index=pd.Index(names, name="sample"),
    )
    samples.to_csv(tmp_path / "samples.csv")
    proc = run_mkcell(
        "debug=tiny",
        f"data.samples_file={tmp_path / 'samples.csv'}",
        "associate.covariates=[platelets]",
        "gsea.split='platelets < 150'",
        "design='~ condition + litter'",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = _tables(tmp_path / "run")
    a = t["associations"]
    assert {"mkp_fraction", "mk_score_e2f_targets"} <= set(a["readout"])
    assert set(a["species"]) == {"mouse", "human"} and (a["n_samples"] >= 6).all()
    assert set(t["gsea"]["groups"]) <= {"platelets < 150 vs not platelets < 150"}
    pool = pd.read_csv(tmp_path / "run" / "tables" / "pool_contrasts.csv")
    assert len(pool) > 0  # the design with the samples file's litter column was fitted
