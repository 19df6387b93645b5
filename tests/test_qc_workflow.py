"""The qc stage: flagged cells left out of the MkP / Mk calls and the pool, its table, the
report's QC section and Findings line, qc.enabled=false, and the command end to end."""

from __future__ import annotations

import hashlib
import logging
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import mkcell as mk
from mkcell import _keys as K
from mkcell._settings import MkcellError
from mkcell.pp._qc import stands_out
from mkcell.workflow._config import config_dir
from mkcell.workflow._qc_report import qc_findings_html, qc_html
from mkcell.workflow._qc_stage import QC_SAMPLE_COLUMNS, qc, qc_key


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="t"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def _marrow():
    s = mk.datasets.simulate_marrow(
        900, n_genes=800, n_species_only=0, species=("human",), n_samples=2, seed=11
    )["human"]
    import scanpy as sc

    from mkcell.pp._normalize import log_normalize_matrix

    s.obsm["X_mk_pca"] = sc.pp.pca(log_normalize_matrix(s.X), n_comps=15, random_state=0)
    return s


def test_annotate_gives_flagged_cells_no_mkp_or_mk_call(_marrow):
    plain = mk.tl.annotate(_marrow, use_rep="X_mk_pca", copy=True)
    calls = plain.obs[K.STATE].astype(str)
    mk_cells = np.flatnonzero(calls.isin(K.MK_LINEAGE).to_numpy())
    flagged = mk_cells[:10]
    a = _marrow.copy()
    a.obs[K.QC] = pd.Categorical([K.QC_PASS] * a.n_obs, categories=[K.QC_PASS, *K.QC_REASONS])
    a.obs.iloc[flagged, a.obs.columns.get_loc(K.QC)] = K.QC_DOUBLET
    out = mk.tl.annotate(a, use_rep="X_mk_pca", copy=True)
    states = out.obs[K.STATE].astype(str)
    assert (states.iloc[flagged] == K.OTHER).all()
    rest = np.setdiff1d(np.arange(a.n_obs), flagged)
    assert (states.iloc[rest].to_numpy() == calls.iloc[rest].to_numpy()).all()
    assert out.uns[K.ANNOTATE]["n_flagged_not_called"] == 10
    kept = mk.tl.annotate(a, use_rep="X_mk_pca", qc_key=None, copy=True)
    assert (kept.obs[K.STATE].astype(str) == calls).all()


def _pool_obs(n_per: int = 40) -> ad.AnnData:
    rng = np.random.default_rng(0)
    rows = []
    for cond in ("MDS", "control"):
        for i in range(3):
            states = rng.choice([K.MKP, K.MK, K.MEP, K.HSC_MPP], n_per)
            rows += [(f"{cond}_{i}", cond, "mouse", s) for s in states]
    obs = pd.DataFrame(rows, columns=[K.SAMPLE, K.CONDITION, K.SPECIES, K.STATE])
    obs.index = obs.index.astype(str)
    return ad.AnnData(obs=obs)


@pytest.mark.parametrize("den", ["mk_lineage", "all"])
def test_pool_leaves_flagged_cells_out_of_every_count(den):
    a = _pool_obs()
    verdict = np.full(a.n_obs, K.QC_PASS, dtype=object)
    verdict[::7] = K.QC_PLATELET
    a.obs[K.QC] = verdict
    mk.tl.progenitor_pool(a, denominator=den, contrasts=[["MDS", "control"]])
    got = a.uns[K.POOL]["per_sample"].set_index("sample")
    passed = a.obs[verdict == K.QC_PASS]
    want_mkp = passed.groupby(K.SAMPLE)[K.STATE].apply(lambda s: (s == K.MKP).sum())
    assert (got["n_mkp"] == want_mkp.reindex(got.index)).all()
    assert got["n_cells"].sum() == len(passed)
    assert a.uns[K.POOL]["params"]["n_flagged_left_out"] == int((verdict != K.QC_PASS).sum())
    mk.tl.progenitor_pool(a, denominator=den, contrasts=[["MDS", "control"]], qc_key=None)
    assert a.uns[K.POOL]["per_sample"]["n_cells"].sum() == a.n_obs


def test_stands_out_is_robust():
    assert not stands_out(np.array([0.05, 0.30])).any()  # 2 samples: no judgement
    assert stands_out(np.array([0.04, 0.05, 0.06, 0.05, 0.30])).tolist() == [0, 0, 0, 0, 1]
    assert not stands_out(np.array([0.0, 0.0, 0.0, 0.01])).any()  # one or two cells
    assert not stands_out(np.array([0.10, 0.20, 0.30, 0.40])).any()  # spread, no outlier


@pytest.fixture(scope="module")
def _checked():
    s = mk.datasets.simulate_marrow(
        700, n_genes=800, n_species_only=0, species=("human",), n_samples=3, seed=12
    )["human"]
    s = mk.datasets.coat_with_platelets(s, fraction=0.4, samples=["human_MDS_1"], seed=1)
    mk.pp.qc(s, doublet_min_cells=50)
    return s


def test_pl_qc_only_reads(_checked):
    before = (set(_checked.obs.columns), set(_checked.uns))
    fig = mk.pl.qc(_checked)
    assert len(fig.axes) == 4
    assert (set(_checked.obs.columns), set(_checked.uns)) == before
    with pytest.raises(MkcellError, match="run mk.pp.qc first"):
        mk.pl.qc(ad.AnnData(obs=pd.DataFrame(index=["a"])))


def test_report_section_and_findings_line(_checked):
    a = _checked.copy()
    table = a.uns[K.QC]["per_sample"].copy()
    table["stands_out"] = [True] + [False] * (len(table) - 1)
    a.uns[K.QC]["per_sample"] = table
    line = qc_findings_html(a)
    assert str(table["sample"].iloc[0]) in line and "stands out" in line
    table["stands_out"] = False
    assert qc_findings_html(a) == ""
    assert "cells flagged" in qc_html(a, {})
    assert "no quality control" in qc_html(ad.AnnData(obs=pd.DataFrame(index=["a"])), {})


def test_stage_writes_table_and_keep_flagged(tmp_path):
    s = mk.datasets.simulate_marrow(
        500, n_genes=800, n_species_only=0, species=("mouse",), n_samples=2, seed=13
    )["mouse"]
    cfg = _cfg("qc.doublet_min_cells=50", "qc.keep_flagged=true")
    assert qc_key(cfg) is None and qc_key(_cfg()) == K.QC
    out = qc(cfg, s, tmp_path)
    table = pd.read_csv(tmp_path / "tables" / "qc_per_sample.csv")
    assert list(table.columns[:2]) == ["sample", "species"]
    assert set(QC_SAMPLE_COLUMNS) <= set(table.columns)
    assert table["cells_in"].sum() == s.n_obs
    assert (out.obs[K.QC].astype(str) != K.QC_PASS).sum() == s.n_obs - table["cells_kept"].sum()


def test_stage_disabled_says_so_and_flags_nothing(tmp_path, caplog):
    s = mk.datasets.simulate_marrow(
        500, n_genes=800, n_species_only=0, species=("mouse",), n_samples=2, seed=14
    )["mouse"]
    with caplog.at_level(logging.INFO, logger="mkcell"):
        out = qc(_cfg("qc.enabled=false"), s, tmp_path)
    assert "qc: skipped (qc.enabled=false)" in caplog.text
    assert K.QC not in out.obs and K.QC not in out.uns
    table = pd.read_csv(tmp_path / "tables" / "qc_per_sample.csv")
    assert (table["cells_kept"] == table["cells_in"]).all()
    assert table["note"].str.contains("not checked").all()


# --------------------------------------------------------------------------- the command


def test_command_flags_keeps_and_leaves_out_then_disabled(tmp_path, run_mkcell):
    """A contaminated human input: QC flags cells, keeps them in mkcell.h5ad, leaves them out
    of MkP / Mk and the pool, never touches the input; qc.enabled=false re-runs from qc."""
    s = mk.datasets.simulate_marrow(
        1500, n_genes=700, n_species_only=0, species=("human",), n_samples=3, seed=15
    )["human"]
    s = mk.datasets.plant_doublets(s, rate=0.05, seed=15)
    s = mk.datasets.coat_with_platelets(s, fraction=0.2, samples=["human_MDS_1"], seed=15)
    path = tmp_path / "human.h5ad"
    s.write_h5ad(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run_dir = tmp_path / "run"
    args = ["debug=tiny", "data=files", f"data.inputs.human={path}", "qc.doublet_min_cells=50"]
    args.append("pool.contrasts=[[MDS,healthy]]")
    proc = run_mkcell(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path, PYTHONWARNINGS="ignore")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # input untouched
    table = pd.read_csv(run_dir / "tables" / "qc_per_sample.csv")
    assert list(table.columns[: len(QC_SAMPLE_COLUMNS)]) == QC_SAMPLE_COLUMNS
    out = ad.read_h5ad(run_dir / "mkcell.h5ad")
    flagged = out.obs[K.QC].astype(str) != K.QC_PASS
    assert out.n_obs == table["cells_in"].sum() and flagged.sum() > 0
    assert not out.obs.loc[flagged, K.STATE].astype(str).isin(K.MK_LINEAGE).any()
    pool = pd.read_csv(run_dir / "tables" / "pool_per_sample.csv")
    assert pool["n_cells"].sum() == table["cells_kept"].sum()
    html = (run_dir / "report.html").read_text()
    assert "<h2 id='qc'>Quality control</h2>" in html
    assert (run_dir / "figures" / "qc.png").is_file()

    copy = tmp_path / "off"
    shutil.copytree(run_dir, copy)
    proc = run_mkcell(
        *args, "qc.enabled=false", f"hydra.run.dir={copy}", cwd=tmp_path, PYTHONWARNINGS="ignore"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "qc: skipped (qc.enabled=false)" in proc.stderr + (copy / "mkcell.log").read_text()
    off = ad.read_h5ad(copy / "mkcell.h5ad")
    assert K.QC not in off.obs
    pool = pd.read_csv(copy / "tables" / "pool_per_sample.csv")
    assert pool["n_cells"].sum() == off.n_obs
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
