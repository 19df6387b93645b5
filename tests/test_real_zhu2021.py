"""Zhu et al. 2021 (177 human CD34+ cells, Ensembl IDs, one donor per condition) from the
command line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._utils import data_path

SHIPPED = data_path("real", "zhu2021_cd34.h5ad")


def test_shipped_file_and_accessor():
    assert SHIPPED.stat().st_size < 3 * 1024**2
    raw = mk.datasets.zhu2021_cd34(symbols=False)
    assert raw.shape == (177, 39031)
    assert raw.var_names[0].startswith("ENSG")
    assert raw.obs.groupby(["donor", "condition"], observed=True).size().to_dict() == {
        ("Ctrl3", "control"): 91,
        ("P17", "nonSAA"): 86,
    }
    X = raw.X
    assert np.issubdtype(X.dtype, np.integer) and (np.asarray(X.sum(0)).ravel() > 0).all()
    a = mk.datasets.zhu2021_cd34()
    assert {"ITGA2B", "GATA1", "CD34", "PF4"} <= set(a.var_names)
    assert a.X.sum() == raw.X.sum()  # IDs sharing a symbol are summed, nothing is lost
    genes = a.uns["mk_gene_ids"]["genes"]
    assert list(genes.columns) == ["id", "symbol", "status"] and len(genes) == raw.n_vars
    assert mk.io.load("zhu2021_cd34").shape == a.shape  # the registry entry


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MKCELL_DEBUG", "HYDRA_FULL_ERROR"}}
    env["MPLBACKEND"] = "Agg"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _mkcell(*args: str, cwd) -> tuple[subprocess.CompletedProcess, float]:  # noqa: ANN001
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkcell", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return proc, time.perf_counter() - t0


@pytest.mark.slow
def test_zhu2021_end_to_end_cli(tmp_path, record_property):
    """Ensembl IDs mapped on reading, no replicates: the contrast says so; then the same run with
    labels from files."""
    digest = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    run_dir = tmp_path / "run"
    common = (
        "data=files",
        f"data.inputs.human={SHIPPED}",
        "data.sample_key=donor",
        "data.condition_key=condition",
        "pool.contrasts=[[nonSAA,control]]",
        f"hydra.run.dir={run_dir}",
    )
    proc, elapsed = _mkcell(*common, cwd=tmp_path)
    record_property("seconds", round(elapsed, 1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == digest  # input untouched
    con = pd.read_csv(run_dir / "tables" / "pool_contrasts.csv")
    assert len(con) == 1 and con.loc[0, "contrast"] == "nonSAA vs control"
    assert np.isnan(con.loc[0, "p_value"]) and np.isnan(con.loc[0, "ci_low"])
    assert "no replicate-aware test possible" in con.loc[0, "note"]
    per = pd.read_csv(run_dir / "tables" / "pool_per_sample.csv")
    assert set(per["sample"]) == {"P17", "Ctrl3"}
    ids = pd.read_csv(run_dir / "tables" / "gene_id_report.csv")
    assert {"id", "symbol", "status", "species"} <= set(ids.columns) and len(ids) == 39031
    adata = ad.read_h5ad(run_dir / "mkcell.h5ad")
    assert adata.n_obs == 177 and "X_mk_scvi" in adata.obsm
    report = (run_dir / "report.html").read_text()
    assert "pool" in report
    assert all(
        (run_dir / "figures" / f"{f}.png").stat().st_size > 0
        for f in ("embedding", "pseudotime_density", "score_trends", "pool")
    )
    traj = adata.uns["mk_trajectory"]
    if traj.get(
        "skipped"
    ):  # too few MkP / Mk / MEP: score, pool and report still finish, and say so
        assert "Trajectory skipped" in report and adata.obs["mk_pseudotime"].isna().all()
        assert not (run_dir / "tables" / "score_trends.csv").exists()
    else:
        assert adata.obs["mk_pseudotime"].notna().any()

    # own labels with spaces and punctuation, from files: annotation skipped, integration reused
    names = {
        "HSC/MPP": "HSCs & MPPs",
        "MEP": "MEP / early erythroid",
        "MkP": "Megakaryocyte progenitors",
        "Mk": "Mk + platelets",
        "erythroid": "Erythroid",
        "myeloid": "Myeloid",
        "other": "Unknown cells",
    }
    labels = adata.obs["mk_state"].astype(str).map(names)
    labels_csv, map_csv = tmp_path / "my labels.csv", tmp_path / "map.csv"
    pd.DataFrame({"barcode": adata.obs_names, "cell type": labels}).to_csv(labels_csv, index=False)
    pd.DataFrame(
        {
            "label": [v for k, v in names.items() if k != "myeloid"],
            "state": [k for k in names if k != "myeloid"],
        }
    ).to_csv(map_csv, index=False)
    before = labels_csv.read_bytes(), map_csv.read_bytes()
    proc, _ = _mkcell(
        *common,
        f"annotate.labels_file={labels_csv}",
        "annotate.labels_cell_column=barcode",
        "annotate.labels_column='cell type'",
        f"annotate.label_map_file={map_csv}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (labels_csv.read_bytes(), map_csv.read_bytes()) == before
    assert "stage integrate  skipped" in proc.stderr
    b = ad.read_h5ad(run_dir / "mkcell.h5ad")
    want = adata.obs["mk_state"].astype(str).replace({"myeloid": "other"})
    assert (b.obs["mk_state"].astype(str) == want).all()
    assert b.uns["mk_annotate"]["n_unmapped"] == int((adata.obs["mk_state"] == "myeloid").sum())
    assert "Labels mapped to no state" in (run_dir / "report.html").read_text()
