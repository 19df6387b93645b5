"""The workflow: resumable runner (toy stages), and the `mkcell` command end to end (debug=tiny)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from mkcell.workflow import STAGES, Stage, fingerprints, is_done, run_workflow
from mkcell.workflow._fingerprints import file_signature
from mkcell.workflow._runner import load_data, run_lock

POOL_SAMPLE = ["sample", "species", "condition", "n_cells", "n_mkp", "mkp_fraction"]
POOL_CONTRAST = ["species", "contrast", "effect_log2", "ci_low", "ci_high", "p_value"]
METRICS = ["metric", "value", "baseline_value"]
STAGE_NAMES = [s.name for s in STAGES]
FIGURES = ["embedding", "pseudotime_density", "score_trends", "pool", "qc"]


# --------------------------------------------------------------------------- runner, toy stages


def _toy_stages(calls: list[str], fail: set[str] | None = None) -> tuple[Stage, ...]:
    fail = fail if fail is not None else set()

    def make(name: str):
        def func(cfg, data, run_dir):
            calls.append(name)
            if name in fail:
                raise RuntimeError(f"{name} failed")
            if data is None:
                return {
                    "a": ad.AnnData(np.ones((3, 2), dtype=np.float32)),
                    "b": ad.AnnData(np.ones((2, 2), dtype=np.float32)),
                }
            if isinstance(data, dict):
                data = ad.concat(data, index_unique="-")
            data = data.copy()
            data.uns[name] = float(cfg[name].value)
            (run_dir / "tables").mkdir(exist_ok=True)
            (run_dir / "tables" / f"{name}.csv").write_text("x\n1\n")
            return data

        return func

    return tuple(
        Stage(n, make(n), (n, "seed"), () if n == "one" else (f"tables/{n}.csv",))
        for n in ("one", "two", "three")
    )


def _toy_cfg(**values):
    base = {"one": {"value": 1}, "two": {"value": 2}, "three": {"value": 3}, "seed": 0}
    for k, v in values.items():
        base[k]["value"] = v
    return OmegaConf.create(base)


def test_runner_runs_then_skips(tmp_path):
    calls: list[str] = []
    stages = _toy_stages(calls)
    status = run_workflow(_toy_cfg(), tmp_path, stages)
    assert status == {"one": "ran", "two": "ran", "three": "ran"}
    assert calls == ["one", "two", "three"]
    assert (tmp_path / "stages" / "one.a.h5ad").exists()
    assert (tmp_path / "stages" / "three.done.json").exists()
    marker = json.loads((tmp_path / "stages" / "two.done.json").read_text())
    assert marker["fingerprint"] == fingerprints(_toy_cfg(), stages)["two"]
    calls.clear()
    assert set(run_workflow(_toy_cfg(), tmp_path, stages).values()) == {"skipped"}
    assert calls == []
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


def test_runner_config_change_reruns_stage_and_later(tmp_path):
    calls: list[str] = []
    stages = _toy_stages(calls)
    run_workflow(_toy_cfg(), tmp_path, stages)
    calls.clear()
    status = run_workflow(_toy_cfg(two=5), tmp_path, stages)
    assert status == {"one": "skipped", "two": "ran", "three": "ran"}
    assert calls == ["two", "three"]
    assert load_data(tmp_path, "three").uns["two"] == 5
    calls.clear()
    run_workflow(_toy_cfg(two=5, three=9), tmp_path, stages)
    assert calls == ["three"]
    # the seed enters every fingerprint
    calls.clear()
    run_workflow(OmegaConf.merge(_toy_cfg(two=5, three=9), {"seed": 1}), tmp_path, stages)
    assert calls == ["one", "two", "three"]


def test_runner_resumes_after_failure(tmp_path):
    calls: list[str] = []
    with pytest.raises(RuntimeError, match="three failed"):
        run_workflow(_toy_cfg(), tmp_path, _toy_stages(calls, fail={"three"}))
    assert not (tmp_path / "stages" / "three.done.json").exists()
    calls.clear()
    status = run_workflow(_toy_cfg(), tmp_path, _toy_stages(calls))
    assert status == {"one": "skipped", "two": "skipped", "three": "ran"}
    assert calls == ["three"]


def test_runner_missing_output_reruns(tmp_path):
    calls: list[str] = []
    stages = _toy_stages(calls)
    run_workflow(_toy_cfg(), tmp_path, stages)
    (tmp_path / "tables" / "two.csv").unlink()
    calls.clear()
    run_workflow(_toy_cfg(), tmp_path, stages)
    assert calls == ["two", "three"]
    fps = fingerprints(_toy_cfg(), stages)
    assert all(is_done(tmp_path, st, fps[st.name]) for st in stages)


def test_input_signature_changes_with_the_file(tmp_path):
    f = tmp_path / "x.h5ad"
    f.write_text("a")
    sig = file_signature(f)
    stages = _toy_stages([])
    fp1 = fingerprints(_toy_cfg(), stages, inputs=sig)
    os.utime(f, ns=(1, 1))
    fp2 = fingerprints(_toy_cfg(), stages, inputs=file_signature(f))
    assert fp1["one"] != fp2["one"] and fp1["three"] != fp2["three"]
    with pytest.raises(FileNotFoundError):
        file_signature(tmp_path / "missing")


def test_ddp_worker_runs_only_the_ddp_stage(tmp_path, monkeypatch):
    """A DDP worker restarted by Lightning (LOCAL_RANK > 0) trains and writes nothing to the run."""
    import dataclasses

    calls: list[str] = []
    stages = list(_toy_stages(calls))
    run_workflow(_toy_cfg(), tmp_path, stages)  # the main process leaves `one`'s data behind
    stages[1] = dataclasses.replace(stages[1], ddp=True)
    markers = {p: p.stat().st_mtime_ns for p in (tmp_path / "stages").glob("*.done.json")}
    calls.clear()
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MKCELL_RUN_DIR", str(tmp_path))
    assert run_workflow(_toy_cfg(two=7), tmp_path / "elsewhere", stages) == {}
    assert calls == ["two"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "stages").glob("*.done.json")} == markers
    assert not (tmp_path / "elsewhere").exists()


def test_run_folder_lock(tmp_path):
    from mkcell._settings import MkcellError

    with run_lock(tmp_path), pytest.raises(MkcellError, match="another mkcell run"):
        run_workflow(_toy_cfg(), tmp_path, _toy_stages([]))


# --------------------------------------------------------------------------- the command line


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MKCELL_DEBUG", "HYDRA_FULL_ERROR"}}
    env["MPLBACKEND"] = "Agg"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def mkcell(
    *args: str, cwd: Path, timeout: float = 900
) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkcell", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc, time.perf_counter() - t0


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _stage_lines(stderr: str) -> dict[str, str]:
    """``{stage: 'skipped' | 'done'}`` from the stage log lines."""
    out = {}
    for line in stderr.splitlines():
        for name in STAGE_NAMES:
            if f"stage {name} " in line or f"stage {name:<10} " in line:
                if "skipped" in line:
                    out[name] = "skipped"
                elif "done in" in line:
                    out[name] = "done"
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One `mkcell debug=tiny` run (the reference for the other end-to-end tests)."""
    base = tmp_path_factory.mktemp("tiny")
    run_dir = base / "run"
    proc, elapsed = mkcell("debug=tiny", f"hydra.run.dir={run_dir}", cwd=base)
    return run_dir, proc, elapsed


def test_cfg_job_prints_config(tmp_path):
    proc, _ = mkcell("--cfg", "job", "debug=tiny", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.data.source == "demo" and cfg.data.max_cells == 1500
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["data=files", "data.inputs.mouse=does/not/exist.h5ad"], "no such file"),
        (["integrat.max_epochs=3"], "unknown config key"),
        (["seed=abc"], "could not be converted to Integer"),
        (["hydra.run.dir={blocker}/run"], "output folder"),
    ],
    ids=["missing-file", "unknown-key", "wrong-type", "unwritable-dir"],
)
def test_bad_input_one_line(args, expect, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = [a.format(blocker=blocker) for a in args]
    proc, elapsed = mkcell(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("mkcell: error:") and expect in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "outputs").exists()


def test_missing_obs_column_one_line(tmp_path):
    import mkcell as mk

    sim = mk.datasets.simulate_marrow(600, n_genes=700, species=("human",), n_samples=2, seed=0)[
        "human"
    ]
    path = tmp_path / "human.h5ad"
    sim.write_h5ad(path)
    proc, _ = mkcell(
        "data=files",
        f"data.inputs.human={path}",
        "data.sample_key=donor",
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode != 0
    last = _last_line(proc.stderr)
    assert last.startswith("mkcell: error:") and "'donor'" in last and "available columns" in last
    assert "Traceback" not in proc.stderr


def test_tiny_run_outputs(tiny_run, record_property):
    run_dir, proc, elapsed = tiny_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(_last_line(proc.stdout)) == run_dir.resolve()
    record_property("seconds", round(elapsed, 1))
    assert elapsed < 300
    for name in (
        "mkcell.h5ad",
        "report.html",
        "mkcell.log",
        *(f"figures/{f}.png" for f in FIGURES),
    ):
        assert (run_dir / name).is_file(), name
    for name, cols in (
        ("integration_metrics", METRICS),
        ("pool_per_sample", POOL_SAMPLE),
        ("pool_contrasts", POOL_CONTRAST),
    ):
        df = pd.read_csv(run_dir / "tables" / f"{name}.csv")
        assert list(df.columns[: len(cols)]) == cols, name
        assert len(df) > 0, name
    contrasts = pd.read_csv(run_dir / "tables" / "pool_contrasts.csv")
    assert set(contrasts["contrast"]) <= {"MDS vs control", "MDS_drug vs MDS", "MDS vs healthy"}
    assert (run_dir / "tables" / "ortholog_report.csv").is_file()
    assert (run_dir / "tables" / "qc_per_sample.csv").is_file()
    html = (run_dir / "report.html").read_text()
    patient_figures = [
        f
        for f in ("associations", "gsea", "e2f_clusters")
        if (run_dir / "figures" / f"{f}.png").is_file()
    ]
    assert {"gsea", "e2f_clusters"} <= set(patient_figures)  # the demo's contrasts
    assert html.count("data:image/png;base64,") == len(FIGURES) + len(patient_figures)
    assert "src='http" not in html and "<link" not in html
    assert html.index("<h2 id='findings'>") < html.index("<h2 id='inputs'>")
    for section in (
        "Findings",
        "Integration",
        "MkP pool",
        "Configuration",
        "Package versions",
        "Stage timings",
    ):
        assert section in html
    adata = ad.read_h5ad(run_dir / "mkcell.h5ad")
    for key in (
        "species",
        "sample",
        "condition",
        "mk_state",
        "mk_pseudotime",
        "mk_fate",
        "S_score",
        "G2M_score",
        "phase",
        "mk_qc",
    ):
        assert key in adata.obs, key
    for key in ("e2f_targets", "g2m_checkpoint", "cytokinesis", "aurora"):
        assert f"mk_score_{key}" in adata.obs
    assert "X_mk_scvi" in adata.obsm
    assert {"MkP", "Mk"} <= set(adata.obs["mk_state"].astype(str))
    pt = adata.obs["mk_pseudotime"].dropna()
    assert pt.between(0, 1).all()
    assert adata.obs_names.is_unique and adata.n_obs <= 1500
    assert "true_state" in adata.obs  # the input's own obs columns are kept
    for name in STAGE_NAMES:
        assert (run_dir / "stages" / f"{name}.done.json").is_file()
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left behind"


def test_lightning_lines_printed_once(tiny_run):
    """Each Lightning line once on the console (no second, ``INFO: ...`` copy) and in the log."""
    run_dir, proc, _ = tiny_run
    assert proc.returncode == 0
    lines = proc.stderr.splitlines()
    assert not [line for line in lines if line.startswith("INFO: ")]
    gpu = [line for line in lines if "GPU available:" in line]
    assert len(gpu) == 1, gpu
    log = (run_dir / "mkcell.log").read_text()
    assert log.count("GPU available:") == 1


def test_rerun_skips_every_stage(tiny_run):
    run_dir, first, _ = tiny_run
    assert first.returncode == 0
    markers = {p.name: p.stat().st_mtime_ns for p in (run_dir / "stages").glob("*.done.json")}
    proc, elapsed = mkcell("debug=tiny", f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert _stage_lines(proc.stderr) == dict.fromkeys(STAGE_NAMES, "skipped")
    assert {
        p.name: p.stat().st_mtime_ns for p in (run_dir / "stages").glob("*.done.json")
    } == markers
    assert elapsed < 60
    assert Path(_last_line(proc.stdout)) == run_dir.resolve()


def test_changed_stage_config_reruns_it_and_later(tiny_run, tmp_path):
    run_dir, first, _ = tiny_run
    assert first.returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    proc, _ = mkcell("debug=tiny", "annotate.resolution=0.6", f"hydra.run.dir={copy}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = _stage_lines(proc.stderr)
    i = STAGE_NAMES.index("annotate")
    assert lines == {
        **dict.fromkeys(STAGE_NAMES[:i], "skipped"),
        **dict.fromkeys(STAGE_NAMES[i:], "done"),
    }
    marker = json.loads((copy / "stages" / "annotate.done.json").read_text())
    assert marker["config"]["annotate"]["resolution"] == 0.6


def test_code_edit_reruns_stage_and_later(tiny_run, tmp_path):
    """Edit a helper deep in the tools' imports in a scratch package copy.

    tl/_inference.py is imported by tl/_compare.py (score) and tl/_pool.py (pool), which no
    list names: score, pool and report re-run, nothing before.
    """
    import mkcell

    run_dir, first, _ = tiny_run
    assert first.returncode == 0
    package = Path(mkcell.__file__).resolve().parent
    scratch = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(package, scratch / "mkcell", ignore=skip)
    for name in ("configs",):  # configs/ sits next to the package in a checkout
        if (package.parent / name).is_dir():
            shutil.copytree(package.parent / name, scratch / name, ignore=skip)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    tool = scratch / "mkcell" / "tl" / "_inference.py"
    with tool.open("a") as fh:
        fh.write("# an edit that changes no number\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mkcell", "debug=tiny", f"hydra.run.dir={copy}"],
        cwd=scratch,
        env={**_env(), "PYTHONPATH": str(scratch)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    i = STAGE_NAMES.index("score")
    assert _stage_lines(proc.stderr) == {
        **dict.fromkeys(STAGE_NAMES[:i], "skipped"),
        **dict.fromkeys(STAGE_NAMES[i:], "done"),
    }
    assert "its code changed (tl/_inference.py)" in proc.stderr
    for name in ("score", "pool"):
        marker = json.loads((copy / "stages" / f"{name}.done.json").read_text())
        assert marker["code"]["tl/_inference.py"] == hashlib.sha256(tool.read_bytes()).hexdigest()
    _same_tables(run_dir, copy)


def _same_tables(a: Path, b: Path) -> None:
    for name, key in (
        ("integration_metrics", ["metric"]),
        ("pool_per_sample", ["sample"]),
        ("pool_contrasts", ["species", "contrast"]),
    ):
        x = pd.read_csv(a / "tables" / f"{name}.csv").sort_values(key).reset_index(drop=True)
        y = pd.read_csv(b / "tables" / f"{name}.csv").sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("after", ["orthologs", "integrate", "score"])
def test_killed_run_resumes(tiny_run, tmp_path, after):
    """SIGKILL as soon as stage ``after`` is done (so mid-way through the next one), then resume."""
    ref, first, _ = tiny_run
    assert first.returncode == 0
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mkcell", "debug=tiny", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    marker = run_dir / "stages" / f"{after}.done.json"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the run never finished its first stages"
    assert not (run_dir / "stages" / "report.done.json").exists()
    done_before = {p.name.split(".")[0] for p in (run_dir / "stages").glob("*.done.json")}
    resumed, _ = mkcell("debug=tiny", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = _stage_lines(resumed.stderr)
    assert {s for s, v in lines.items() if v == "skipped"} == done_before
    assert lines["report"] == "done"
    _same_tables(ref, run_dir)


@pytest.mark.slow
def test_multirun_submitit_local(tmp_path, record_property):
    sweep = tmp_path / "sweep"
    proc, elapsed = mkcell(
        "-m",
        "hydra/launcher=submitit_local",
        "seed=1,2",
        "debug=tiny",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(_last_line(proc.stdout)) == sweep.resolve()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "report.html").exists())
    assert len(jobs) == 2
    seeds = {OmegaConf.load(j / ".hydra" / "config.yaml").seed for j in jobs}
    assert seeds == {1, 2}
    a, b = (pd.read_csv(j / "tables" / "pool_per_sample.csv") for j in jobs)
    assert not a.equals(b)  # different seeds, different simulated marrow
    record_property("seconds", round(elapsed, 1))


@pytest.mark.slow
def test_user_files_mouse_only(tmp_path):
    """data=files with the user's own column names, mouse alone, the crizotinib experiment."""
    import mkcell as mk

    mouse = mk.datasets.simulate_marrow(1500, n_genes=700, species=("mouse",), n_samples=3, seed=4)[
        "mouse"
    ]
    mouse.obs = mouse.obs.rename(columns={"sample": "donor", "condition": "group"})
    path = tmp_path / "mouse.h5ad"
    mouse.write_h5ad(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run_dir = tmp_path / "run"
    proc, _ = mkcell(
        "experiment=mds_mouse_crizotinib",
        "debug=tiny",
        "data=files",
        f"data.inputs.mouse={path}",
        "data.sample_key=donor",
        "data.condition_key=group",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # input untouched
    adata = ad.read_h5ad(run_dir / "mkcell.h5ad")
    assert {"donor", "group", "sample", "condition"} <= set(adata.obs.columns)
    assert set(adata.obs["species"].astype(str)) == {"mouse"}
    assert set(adata.obs_names) <= set(mouse.obs_names)
    contrasts = pd.read_csv(run_dir / "tables" / "pool_contrasts.csv")
    assert set(contrasts["contrast"]) == {"MDS vs control", "MDS_drug vs MDS"}
