"""Shared fixtures: small simulated marrow (computed once, handed out as copies), the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    """GPU and network tests are opt-in (MKCELL_TEST_GPU=1, MKCELL_TEST_INTERNET=1); Slurm tests
    run when a Slurm node is idle (`make slurm-up`)."""
    gates = {"gpu": "MKCELL_TEST_GPU", "internet": "MKCELL_TEST_INTERNET"}
    for item in items:
        for mark, env in gates.items():
            if mark in item.keywords and os.environ.get(env) != "1":
                item.add_marker(pytest.mark.skip(reason=f"opt-in: set {env}=1"))
    slurm = [item for item in items if "slurm" in item.keywords]
    reason = _slurm_unavailable() if slurm else None
    for item in slurm if reason else ():
        item.add_marker(pytest.mark.skip(reason=reason))


def _slurm_unavailable() -> str | None:
    """Why the `slurm` tests cannot run here, or None when `sinfo` shows an idle node."""
    import shutil
    import subprocess

    hint = "`make slurm-up` starts a one-node Slurm on localhost"
    if shutil.which("sinfo") is None:
        return f"no Slurm here (sinfo is not on PATH); {hint}"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within 20 s; {hint}"
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"sinfo failed ({said}); {hint}"
    states = proc.stdout.split()
    if "idle" not in states:
        return f"no idle Slurm node (sinfo: {', '.join(states) or 'no nodes'}); {hint}"
    return None


@pytest.fixture(scope="session")
def _sim_cache():
    import mkcell as mk

    return {
        "effect": mk.datasets.simulate_marrow(3000, n_genes=800, n_species_only=30, seed=1),
        "null": mk.datasets.simulate_marrow(
            3000, n_genes=800, n_species_only=30, seed=2, null=True
        ),
    }


@pytest.fixture
def sim(_sim_cache):
    """{"mouse": AnnData, "human": AnnData}, 3,000 cells with MDS effects (a fresh copy)."""
    return {k: v.copy() for k, v in _sim_cache["effect"].items()}


@pytest.fixture
def sim_null(_sim_cache):
    """Like ``sim`` but conditions differ in label only."""
    return {k: v.copy() for k, v in _sim_cache["null"].items()}


def _obs_adata(*parts):
    """An obs-only AnnData of one or both species with true labels as mk_state / mk_pseudotime."""
    import anndata as ad
    import pandas as pd

    obs = pd.concat([p.obs for p in parts])
    for col in ("species", "sample", "condition"):
        obs[col] = obs[col].astype(str)
    a = ad.AnnData(obs=obs)
    a.obs["mk_state"] = a.obs["true_state"].astype(str)
    a.obs["mk_pseudotime"] = a.obs["true_time"]
    return a


@pytest.fixture
def obs_adata():
    """Builder ``obs_adata(*parts)``: obs-only AnnData of simulated parts, true labels as calls."""
    return _obs_adata


@pytest.fixture
def builds(monkeypatch):
    """How often a kNN graph is actually built (mkcell._graph.knn_graph calls)."""
    from mkcell import _graph

    n = [0]
    real = _graph.knn_graph

    def counting(*args, **kwargs):
        n[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(_graph, "knn_graph", counting)
    return n


@pytest.fixture
def run_mkcell():
    """``run_mkcell(*args, cwd=..., timeout=900, **env)``: the ``mkcell`` command in a subprocess.

    As a user runs it: without ``MKCELL_DEBUG`` / ``HYDRA_FULL_ERROR``, headless matplotlib,
    ``env`` added. A subprocess, because a Hydra run configures logging for its whole process.
    """

    def run(*args: str, cwd, timeout: int = 900, **env: str) -> subprocess.CompletedProcess:  # noqa: ANN001
        base = {
            k: v for k, v in os.environ.items() if k not in {"MKCELL_DEBUG", "HYDRA_FULL_ERROR"}
        }
        return subprocess.run(
            [sys.executable, "-m", "mkcell", *args],
            cwd=cwd,
            env={**base, "MPLBACKEND": "Agg", **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
