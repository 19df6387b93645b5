"""Same seed, inputs and package versions give identical results on CPU; inputs are never modified.

Two ``mkcell debug=tiny seed=3`` runs on the same user files (``data=files``: mouse and
human h5ad plus a GMT of extra gene sets) go to two folders. Every table must be
identical, exactly: on CPU, scVI training is bit-reproducible across processes here —
measured on 2 cores (torch CPU): max |difference| 0.0 between two runs for every
column of every table (the CSV files were byte-identical) and for ``obsm['X_mk_scvi']``.

The same two runs check that the input files are never modified (sha256, size,
modification time, mode) and that nothing is written next to them. The bad-input
corpus is in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import mkcell as mk

TABLES = [
    "pool_per_sample",
    "pool_contrasts",
    "integration_metrics",
    "score_contrasts",
    "score_trends",
    "maturation_shift",
    "ortholog_report",
]
GMT = "MK_TEST_PLATELET\tplatelet genes\tPF4\tPPBP\tITGA2B\tGP9\tGP1BA\tVWF\n"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MKCELL_DEBUG", "HYDRA_FULL_ERROR"}}
    env["MPLBACKEND"] = "Agg"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _files_state(folder: Path) -> dict[str, tuple]:
    """sha256, size, mtime and mode of every file in ``folder`` (and nothing else there)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(folder))] = (digest, st.st_size, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    for species, adata in mk.datasets.simulate_marrow(800, n_genes=800, seed=0).items():
        adata.write_h5ad(folder / f"{species}.h5ad")
    (folder / "sets.gmt").write_text(GMT)
    return folder


@pytest.fixture(scope="module")
def two_runs(user_files, tmp_path_factory):
    """Two identical tiny runs on the user files; the input folder's state before and after."""
    base = tmp_path_factory.mktemp("repro")
    before = _files_state(user_files)
    runs = []
    for name in ("a", "b"):
        run_dir = base / name
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mkcell",
                "debug=tiny",
                "compute=cpu",
                "seed=3",
                "data=files",
                f"data.inputs.mouse={user_files / 'mouse.h5ad'}",
                f"data.inputs.human={user_files / 'human.h5ad'}",
                f"score.gmt={user_files / 'sets.gmt'}",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=base,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        runs.append((run_dir, proc, time.perf_counter() - t0))
    return runs, before, _files_state(user_files)


@pytest.mark.slow
def test_runs_succeed(two_runs, record_property):
    runs, _, _ = two_runs
    for run_dir, proc, seconds in runs:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert Path(proc.stdout.strip().splitlines()[-1]) == run_dir.resolve()
        record_property(f"seconds_{run_dir.name}", round(seconds, 1))


@pytest.mark.slow
@pytest.mark.parametrize("table", TABLES)
def test_same_seed_same_tables(two_runs, table):
    (a, pa, _), (b, pb, _) = two_runs[0]
    assert pa.returncode == 0 and pb.returncode == 0
    x = pd.read_csv(a / "tables" / f"{table}.csv")
    y = pd.read_csv(b / "tables" / f"{table}.csv")
    assert len(x) > 0
    pd.testing.assert_frame_equal(x, y, check_exact=True)


@pytest.mark.slow
def test_same_seed_same_cells(two_runs):
    (a, pa, _), (b, pb, _) = two_runs[0]
    assert pa.returncode == 0 and pb.returncode == 0
    x, y = ad.read_h5ad(a / "mkcell.h5ad"), ad.read_h5ad(b / "mkcell.h5ad")
    pd.testing.assert_index_equal(x.obs_names, y.obs_names)
    np.testing.assert_array_equal(x.obsm["X_mk_scvi"], y.obsm["X_mk_scvi"])
    keys = [
        "mk_state",
        "mk_pseudotime",
        "mk_fate",
        "S_score",
        "G2M_score",
        "phase",
        "mk_score_mk_test_platelet",
    ]
    pd.testing.assert_frame_equal(x.obs[keys], y.obs[keys], check_exact=True)


@pytest.mark.slow
def test_inputs_never_modified(two_runs, user_files):
    """sha256, size, mtime and mode of every input unchanged, and no file added next to them."""
    runs, before, after = two_runs
    assert all(proc.returncode == 0 for _, proc, _ in runs)
    assert set(before) == {"mouse.h5ad", "human.h5ad", "sets.gmt"}
    assert after == before
    assert (user_files / "sets.gmt").read_text() == GMT


# --------------------------------------------------------------------------- API


def test_simulate_marrow_same_seed_identical():
    a = mk.datasets.simulate_marrow(600, n_genes=700, seed=5)
    b = mk.datasets.simulate_marrow(600, n_genes=700, seed=5)
    c = mk.datasets.simulate_marrow(600, n_genes=700, seed=6)
    for species in ("mouse", "human"):
        x, y = a[species], b[species]
        assert (x.X != y.X).nnz == 0
        pd.testing.assert_frame_equal(x.obs, y.obs, check_exact=True)
        pd.testing.assert_frame_equal(x.var, y.var, check_exact=True)
        assert x.X.shape == c[species].X.shape
        assert (x.X != c[species].X).nnz > 0  # another seed, other counts


def test_progenitor_pool_deterministic():
    sim = mk.datasets.simulate_marrow(600, n_genes=700, seed=5)
    obs = pd.concat([sim["mouse"].obs, sim["human"].obs])
    obs["mk_state"] = obs["true_state"].astype(str)
    adata = ad.AnnData(obs=obs)
    contrasts = [["MDS", "control"], ["MDS_drug", "MDS"], ["MDS", "healthy"]]
    first = mk.tl.progenitor_pool(adata, contrasts=contrasts, copy=True).uns["mk_pool"]
    again = mk.tl.progenitor_pool(adata, contrasts=contrasts, copy=True).uns["mk_pool"]
    order = np.random.default_rng(0).permutation(adata.n_obs)
    shuffled = mk.tl.progenitor_pool(adata[order].copy(), contrasts=contrasts, copy=True).uns[
        "mk_pool"
    ]
    keys = {
        "per_sample": ["species", "sample"],
        "contrasts": ["species", "contrast"],
        "per_condition": ["species", "condition"],
    }
    for table, key in keys.items():
        pd.testing.assert_frame_equal(first[table], again[table], check_exact=True)
        # shuffled cells: the same numbers (rows follow the conditions' first appearance, and
        # the GLM sees the samples in another order: measured max relative difference 3e-16)
        x, y = (t[table].sort_values(key).reset_index(drop=True) for t in (first, shuffled))
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-12, atol=1e-14)
    assert first["contrasts"]["p_value"].notna().all()
