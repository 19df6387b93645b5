"""Mapping new samples onto a reference run (issue 15): API, honest limits, refused references."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import mkcell as mk
from mkcell import _keys as K
from mkcell._settings import MkcellError
from mkcell.io._fetch import file_sha256

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ref_run(tmp_path_factory):
    """A debug=tiny workflow run on two samples per condition; the third is the query."""
    d = tmp_path_factory.mktemp("map")
    sim = mk.datasets.simulate_marrow(2400, n_genes=700, n_samples=3, seed=0, n_cycle_genes=20)
    args = []
    query = {}
    for s, a in sim.items():
        q = a.obs["sample"].astype(str).str.endswith("_3").to_numpy()
        a[~q].copy().write_h5ad(d / f"ref_{s}.h5ad")
        query[s] = a[q].copy()
        args.append(f"data.inputs.{s}={d / f'ref_{s}.h5ad'}")
    run = d / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkcell",
            "debug=tiny",
            "data=files",
            *args,
            f"hydra.run.dir={run}",
        ],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "reference" / "manifest.json").is_file()
    return {"run": run, "query": mk.pp.concat_species(query), "dir": d}


def test_maps_held_out_samples(ref_run):
    q = ref_run["query"].copy()
    mk.tl.map_to_reference(q, ref_run["run"], max_epochs=10)
    ref = ad.read_h5ad(ref_run["run"] / "mkcell.h5ad")
    ref_agree = (ref.obs[K.STATE].astype(str) == ref.obs["true_state"].astype(str)).mean()
    st = q.obs[K.STATE].astype(str)
    agree = (st == q.obs["true_state"].astype(str)).mean()
    assert agree >= ref_agree - 0.1, (agree, ref_agree)  # as good as the reference's own calls
    assert (st == K.UNKNOWN).mean() < 0.05
    assert q.obsm[K.LATENT].shape == (q.n_obs, ref.obsm[K.LATENT].shape[1])
    lin = q.obs[K.PSEUDOTIME].notna().to_numpy()
    assert lin.sum() > 20 and q.obs.loc[lin, K.PSEUDOTIME].between(0, 1).all()
    assert q.obs.loc[lin, K.PSEUDOTIME_SPREAD].notna().all()
    assert set(st[lin]) <= {K.MKP, K.MK}
    res = q.uns[K.MAP]
    assert res["n_missing_features"] == 0 and 0.5 < res["share_confident"] <= 1
    mk.tl.pool_vs_reference(q, ref_run["run"])
    tab = q.uns[K.POOL_VS_REFERENCE]
    own = tab[tab["own_condition"]]
    assert len(own) == q.obs[K.SAMPLE].nunique()  # every query sample against its own condition
    assert own["percentile"].between(0, 1).all()
    assert (own["denominator"] == ref.uns[K.POOL]["per_sample"]["denominator"].iloc[0]).all()


def test_missing_features_still_map(ref_run):
    ref = mk.tl.load_reference(ref_run["run"])
    q = ref_run["query"].copy()
    drop = set(
        np.random.default_rng(0).choice(ref.features, int(0.3 * len(ref.features)), replace=False)
    )
    q = q[:, [g not in drop for g in q.var_names]].copy()
    mk.tl.map_to_reference(q, ref, max_epochs=10)
    assert q.uns[K.MAP]["n_missing_features"] == len(drop)
    st = q.obs[K.STATE].astype(str)
    assert (st == q.obs["true_state"].astype(str)).mean() > 0.5
    assert (st == K.UNKNOWN).mean() < 0.1


def test_unrelated_cells_are_unknown(ref_run):
    q = ref_run["query"].copy()
    perm = np.random.default_rng(1).permutation(q.n_vars)  # expression unlike any marrow state
    q.X = q.X[:, perm]
    for layer in list(q.layers):
        q.layers[layer] = q.layers[layer][:, perm]
    mk.tl.map_to_reference(q, ref_run["run"], max_epochs=10)
    assert (q.obs[K.STATE].astype(str) == K.UNKNOWN).mean() >= 0.9
    assert q.uns[K.MAP]["share_unknown"] >= 0.9
    assert q.obs.loc[q.obs[K.STATE] == K.UNKNOWN, K.PSEUDOTIME].isna().all()


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("stages", "*.h5ad", "figures"))
    shutil.copy(run / "reference" / "cells.h5ad", dest / "reference" / "cells.h5ad")
    shutil.copy(run / "reference" / "profiles.h5ad", dest / "reference" / "profiles.h5ad")
    return dest


def _tamper(p: Path) -> Path:
    (p / "tables" / "pool_per_sample.csv").write_text("sample,species\nx,human\n")
    return p


def _edit_manifest(p: Path, **changes: object) -> Path:
    m = json.loads((p / "reference" / "manifest.json").read_text())
    m.update(changes)
    (p / "reference" / "manifest.json").write_text(json.dumps(m))
    return p


def _other_features(p: Path) -> Path:
    setup = json.loads((p / "model" / "setup.json").read_text())
    setup["features"] = [f"{g}_x" for g in setup["features"]]
    (p / "model" / "setup.json").write_text(json.dumps(setup))
    m = json.loads((p / "reference" / "manifest.json").read_text())
    m["files"]["model/setup.json"] = file_sha256(p / "model" / "setup.json")
    (p / "reference" / "manifest.json").write_text(json.dumps(m))
    return p


BAD = [
    pytest.param(
        lambda run, tmp: tmp,
        "is not an mkcell reference: no reference/manifest.json",
        id="wrong-folder",
    ),
    pytest.param(lambda run, tmp: tmp / "nope", "no such folder", id="no-folder"),
    pytest.param(
        lambda run, tmp: _tamper(_copy(run, tmp / "r")),
        "tables/pool_per_sample.csv does not match its checksum",
        id="tampered-file",
    ),
    pytest.param(
        lambda run, tmp: (_copy(run, tmp / "r") / "model" / "weights.npz").unlink() or tmp / "r",
        "model/weights.npz is missing",
        id="missing-file",
    ),
    pytest.param(
        lambda run, tmp: _edit_manifest(_copy(run, tmp / "r"), mkcell_version="7.0.0"),
        "another major version",
        id="other-major-version",
    ),
    pytest.param(
        lambda run, tmp: _other_features(_copy(run, tmp / "r")),
        "features differ from the",
        id="model-features-differ",
    ),
    pytest.param(
        lambda run, tmp: _edit_manifest(_copy(run, tmp / "r"), species=["mouse"]),
        "the query holds human cells but the reference",
        id="species-lacking",
    ),
]


@pytest.mark.parametrize(("make", "phrase"), BAD)
def test_bad_reference_is_refused(make, phrase, ref_run, tmp_path):
    ref = make(ref_run["run"], tmp_path)
    with pytest.raises(MkcellError, match=phrase) as info:
        mk.tl.map_to_reference(ref_run["query"].copy(), ref, max_epochs=1)
    assert type(info.value) is MkcellError
    assert "\n" not in str(info.value)


def test_query_with_other_genes_is_refused(ref_run):
    q = ref_run["query"].copy()
    q.var_names = [f"G{i}" for i in range(q.n_vars)]
    with pytest.raises(MkcellError, match="the query holds only 0 of the reference's"):
        mk.tl.map_to_reference(q, ref_run["run"], max_epochs=1)


def test_cli_map_writes_the_outputs(ref_run, tmp_path):
    d = ref_run["dir"]
    q = ref_run["query"]
    args = []
    for s in ("mouse", "human"):
        sim = mk.datasets.simulate_marrow(2400, n_genes=700, n_samples=3, seed=0, n_cycle_genes=20)[
            s
        ]
        sim[sim.obs["sample"].astype(str).str.endswith("_3").to_numpy()].copy().write_h5ad(
            tmp_path / f"{s}.h5ad"
        )
        args.append(f"data.inputs.{s}={tmp_path / f'{s}.h5ad'}")
    out = tmp_path / "mapped"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkcell",
            "mode=map",
            f"reference.dir={ref_run['run']}",
            "data=files",
            "reference.max_epochs=5",
            *args,
            f"hydra.run.dir={out}",
        ],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out.resolve())
    for rel in (
        "tables/pool_vs_reference.csv",
        "tables/pool_per_sample.csv",
        "tables/map_per_sample.csv",
        "figures/reference_map.png",
        "report.html",
        "mkcell.h5ad",
    ):
        assert (out / rel).is_file(), rel
    assert "Mapping onto the reference" in (out / "report.html").read_text()
    mapped = ad.read_h5ad(out / "mkcell.h5ad")
    assert mapped.n_obs == q.n_obs and K.LATENT in mapped.obsm
    assert not (out / "reference").exists()  # a mapped run is not itself a reference
