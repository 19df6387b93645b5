"""The Slurm launchers against a running Slurm (`make slurm-up`): a sweep through sbatch, a requeued
job that resumes, the GPU request, and Slurm's refusals as one line.

Tests marked `slurm` are skipped, with the reason, when no Slurm node is idle (tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_workflow import (
    FIGURES,
    METRICS,
    POOL_CONTRAST,
    POOL_SAMPLE,
    _env,
    _last_line,
    _same_tables,
    _stage_lines,
    mkcell,
)

from mkcell.workflow import STAGES, compose
from mkcell.workflow._slurm import launcher_problem, refusal_message, sbatch_refusal

# slurm_cpu asks for 16 CPUs and 64 GB: the local node has 2 cores, so each job takes one.
LOCAL = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=3"]


def _job_ids(sweep: Path) -> list[str]:
    """Slurm ids of a sweep's jobs (``<id>`` or ``<array id>_<task>``), from submitit's folders."""
    return sorted(p.parent.name for p in (sweep / ".submitit").glob("*/*_submitted.pkl"))


def _sacct(job: str) -> list[list[str]]:
    """Every run of ``job`` (requeued runs included): JobID, State, ExitCode, Elapsed."""
    out = subprocess.run(
        ["sacct", "-X", "-D", "-n", "-P", "-o", "JobID,State,ExitCode,Elapsed", "-j", job],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def _final_states(job: str, timeout: float = 90) -> list[str]:
    """The states of ``job``'s runs once the last one has ended (accounting lags a few seconds)."""
    deadline = time.time() + timeout
    while True:
        states = [row[1] for row in _sacct(job)]
        if states and states[-1] not in {"PENDING", "RUNNING", "REQUEUED", "COMPLETING"}:
            return states
        if time.time() > deadline:
            return states
        time.sleep(2)


def _wait_for(check, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not check():
        assert proc.poll() is None, f"mkcell ended before {what}: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.2)


@contextmanager
def _seed0_job_past_map(tmp_path: Path, folder: Path, *overrides: str):
    """Submit ``debug=tiny seed=0`` through slurm_cpu and wait until its map stage is done.

    Yields (process, job id); on leaving, a job still running is killed and cancelled.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mkcell",
            "-m",
            "hydra/launcher=slurm_cpu",
            "debug=tiny",
            "seed=0",
            *LOCAL,
            *overrides,
            f"hydra.sweep.dir={folder}",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            lambda: (folder / "0" / "stages" / "orthologs.done.json").exists(),
            proc,
            "the orthologs stage",
        )
        (job,) = _job_ids(folder)
        yield proc, job
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["scancel", *_job_ids(folder)], check=False, timeout=30)


def _contract_files(run: Path) -> None:
    for name in ("mkcell.h5ad", "report.html", *(f"figures/{f}.png" for f in FIGURES)):
        assert (run / name).is_file(), f"{run.name}/{name}"
    for name, cols in (
        ("integration_metrics", METRICS),
        ("pool_per_sample", POOL_SAMPLE),
        ("pool_contrasts", POOL_CONTRAST),
    ):
        df = pd.read_csv(run / "tables" / f"{name}.csv")
        assert list(df.columns[: len(cols)]) == cols and len(df) > 0, f"{run.name}/{name}"


def _attempts(log: str) -> list[dict[str, str]]:
    """Stage lines of mkcell.log, one dict per start of the run (each start runs or skips
    `load`)."""
    parts: list[list[str]] = []
    for line in log.splitlines():
        if "stage load " in line and "done in" not in line:
            parts.append([])
        if parts:
            parts[-1].append(line)
    return [_stage_lines("\n".join(p)) for p in parts]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """`mkcell -m hydra/launcher=slurm_cpu debug=tiny seed=0,1` on the running Slurm."""
    base = tmp_path_factory.mktemp("slurm")
    folder = base / "sweep"
    args = ["-m", "hydra/launcher=slurm_cpu", "debug=tiny", "seed=0,1", *LOCAL]
    proc, elapsed = mkcell(*args, f"hydra.sweep.dir={folder}", cwd=base, timeout=900)
    return folder, proc, elapsed


# --------------------------------------------------------------------------- on a running Slurm


def _one_line(stderr: str) -> str:
    """mkcell's one line, the last; before it only the tools' own words may stand.

    Those are Slurm's (``sbatch: error: ...``, which submitit echoes) and Hydra's naming of a
    sweep's failed job; mkcell neither hides nor rewrites them.
    """
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("mkcell: error: "), stderr
    own = ("sbatch: ", "Error executing job with overrides: ")
    assert all(line.startswith(own) for line in lines[:-1]), stderr
    return lines[-1]


@pytest.mark.slurm
@pytest.mark.slow
def test_sweep_runs_through_sbatch(sweep, record_property):
    folder, proc, elapsed = sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(_last_line(proc.stdout)) == folder.resolve()
    record_property("seconds", round(elapsed, 1))
    jobs = _job_ids(folder)
    # one array, a task per seed
    assert len(jobs) == 2 and len({j.split("_")[0] for j in jobs}) == 1
    for job in jobs:
        assert _final_states(job) == ["COMPLETED"], _sacct(job)
    seeds = set()
    for run in (folder / "0", folder / "1"):
        _contract_files(run)
        seeds.add(OmegaConf.load(run / ".hydra" / "config.yaml").seed)
    assert seeds == {0, 1}
    assert elapsed < 300


@pytest.mark.slurm
@pytest.mark.slow
def test_requeued_job_resumes(sweep, tmp_path):
    """Requeued twice, the job comes back, skips its finished stages and ends with the same tables
    as the sweep's uninterrupted seed=0 run."""
    reference = sweep[0] / "0"
    assert sweep[1].returncode == 0, sweep[1].stderr[-3000:]
    folder = tmp_path / "requeued"
    run = folder / "0"
    with _seed0_job_past_map(tmp_path, folder) as (proc, job):
        # 1. the signal Slurm sends signal_delay_s before the time limit: submitit requeues the job
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
        # 2. back in the queue and running again, it is requeued by force (as a preemption or a
        # node failure would) in the middle of the integrate stage
        log = run / "mkcell.log"
        _wait_for(lambda: log.read_text().count("resuming after stage") == 1, proc, "the restart")
        time.sleep(5)
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
        out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert Path(_last_line(out)) == folder.resolve()
    assert _final_states(job) == ["REQUEUED", "REQUEUED", "COMPLETED"], _sacct(job)
    first, second, last = _attempts(log.read_text())
    assert first == {"load": "done", "orthologs": "done"}
    assert second == {"load": "skipped", "orthologs": "skipped"}
    assert {"load", "orthologs"} <= {s for s, v in last.items() if v == "skipped"}
    assert last["report"] == "done" and len(last) == len(STAGES)
    assert not list(run.rglob(".*.tmp")), "temporary files left behind"
    _contract_files(run)
    _same_tables(reference, run)


@pytest.mark.slurm
@pytest.mark.slow
def test_time_up_without_requeue_one_line(tmp_path):
    """The time-limit signal with no requeue left: one line saying so; finished stages are kept."""
    folder = tmp_path / "time_up"
    run = folder / "0"
    overrides = ("hydra.launcher.timeout_min=5", "hydra.launcher.max_num_timeout=0")
    with _seed0_job_past_map(tmp_path, folder, *overrides) as (proc, job):
        # the signal Slurm sends signal_delay_s before the limit (submitit counts it as a time-out
        # when timeout_min <= 10); with max_num_timeout=0 the job is not requeued
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    err = _one_line(err)
    assert err.startswith("mkcell: error: the Slurm job stopped at its time limit")
    assert "timed-out too many times; hydra.launcher.timeout_min=5, max_num_timeout=0" in err
    assert (run / "stages" / "orthologs.done.json").exists()
    assert not (run / "stages" / "report.done.json").exists()


@pytest.mark.slurm
def test_gpu_launcher_asks_for_the_config(tmp_path):
    """compute.devices=2 becomes 2 GPUs per task; CPUs, memory and time are the launcher's.

    `test_only` makes the generated script an `sbatch --test-only` one: Slurm answers whether and
    when it would start the job and starts nothing. The script stays in `.submitit/`.
    """
    folder = tmp_path / "gpu"
    proc, _ = mkcell(
        "-m",
        "hydra/launcher=slurm_gpu",
        "compute=gpu",
        "compute.devices=2",
        "debug=tiny",
        "hydra.launcher.cpus_per_task=2",
        "hydra.launcher.mem_gb=5",
        "hydra.launcher.timeout_min=17",
        "+hydra.launcher.additional_parameters.test_only=true",
        f"hydra.sweep.dir={folder}",
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode != 0  # the test-only submission never gives a job id
    _one_line(proc.stderr)
    (script,) = (folder / ".submitit").glob(".submission_file_*.sh")
    lines = set(script.read_text().splitlines())
    for line in ("--gpus-per-task=2", "--cpus-per-task=2", "--mem=5GB", "--time=17", "--test-only"):
        assert f"#SBATCH {line}" in lines, line
    assert "#SBATCH --ntasks-per-node=1" in lines and not any("gpus-per-node" in x for x in lines)
    answer = subprocess.run(["sbatch", str(script)], capture_output=True, text=True, timeout=60)
    gres = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True).stdout
    if "gpu" in gres:  # the node can answer: it has GPUs
        assert answer.returncode == 0 and "to start at" in answer.stderr, answer.stderr
    else:  # a node without GPUs refuses the GPU request, and mkcell says so in its one line
        assert answer.returncode != 0 and "gres" in answer.stderr, answer.stderr
        assert "2 GPU(s) per task (compute.devices)" in proc.stderr


@pytest.mark.slurm
@pytest.mark.parametrize("setting", ["partition", "account"])
def test_wrong_partition_or_account_one_line(setting, tmp_path):
    folder = tmp_path / "refused"
    proc, _ = mkcell(
        "-m",
        "hydra/launcher=slurm_cpu",
        "debug=tiny",
        *LOCAL,
        f"hydra.launcher.{setting}=nope",
        f"hydra.sweep.dir={folder}",
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert line.startswith("mkcell: error: Slurm refused the job (")
    assert f"hydra.launcher.{setting}=nope: pass " in line
    assert "Traceback" not in proc.stderr
    assert _job_ids(folder) == []  # nothing was submitted


# --------------------------------------------------------------------------- without a cluster


def test_launcher_problems_named_before_submitting(monkeypatch, tmp_path):
    no_m = compose(["hydra/launcher=slurm_cpu"])
    assert "submits only with -m" in launcher_problem(no_m, multirun=False)
    cpu = compose(["hydra/launcher=slurm_gpu"])
    assert "add compute=gpu" in launcher_problem(cpu, multirun=True)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    gpu = compose(["hydra/launcher=slurm_gpu", "compute=gpu", "compute.devices=2"])
    assert gpu.hydra.launcher.gpus_per_task == 2
    assert "`sbatch`, which is not on PATH" in launcher_problem(gpu, multirun=True)
    assert launcher_problem(compose(["hydra/launcher=submitit_local"]), multirun=True) is None


def test_sbatch_refusal_names_the_setting():
    launcher = compose(["hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=900"]).hydra.launcher
    err = subprocess.CalledProcessError(
        1,
        ["sbatch", "x.sh"],
        stderr=(
            "sbatch: error: Memory specification can not be satisfied\n"
            "sbatch: error: Batch job submission failed: Requested node configuration is "
            "not available"
        ),
    )
    exc = RuntimeError("wrapped")
    exc.__cause__ = err
    reason = sbatch_refusal(exc)
    assert reason == "Requested node configuration is not available"
    msg = refusal_message(reason, launcher)
    assert "cpus_per_task=16 mem_gb=900: no node of the partition is that large" in msg
    other = RuntimeError("wrapped")
    other.__cause__ = subprocess.CalledProcessError(1, ["srun"], stderr="srun: error")
    assert sbatch_refusal(other) is None


def test_slurm_launcher_without_sbatch_one_line(tmp_path):
    env = _env() | {"PATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "mkcell", "-m", "hydra/launcher=slurm_cpu", "debug=tiny"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "`sbatch`, which is not on PATH" in proc.stderr
    assert not (tmp_path / "multirun").exists()
