"""Benchmark of the local one-node Slurm (`make slurm-up`) and of a sweep through it, on 2 cores.

1. cold start: packages installed, daemons down -> `scripts/slurm_local.sh up` until `sinfo`
   shows the node idle;
2. `mkcell -m hydra/launcher=slurm_cpu debug=tiny seed=0,1` with one CPU and 3 GB per job
   (the two jobs share the node): wall time of the command, and the `sacct` lines of its jobs.

Writes ``benchmarks/results/slurm.json``. Run as root; Slurm is left down if it was down before.

    .venv/bin/python benchmarks/bench_slurm.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import save  # noqa: E402

SCRIPT = ROOT / "scripts" / "slurm_local.sh"
SWEEP = ["-m", "hydra/launcher=slurm_cpu", "debug=tiny", "seed=0,1"]
LOCAL = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=3"]
SACCT = "JobID,JobName,Partition,Account,AllocCPUS,ReqMem,State,ExitCode,Elapsed,MaxRSS"


def slurm(action: str) -> float:
    """Run ``scripts/slurm_local.sh action``; return its wall seconds."""
    t0 = time.perf_counter()
    subprocess.run(["bash", str(SCRIPT), action], check=True)
    return time.perf_counter() - t0


def node_idle() -> bool:
    """Whether `sinfo` answers and shows the node idle."""
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and proc.stdout.split() == ["idle"]


def sacct_lines(jobs: list[str], timeout: float = 90) -> list[str]:
    """``sacct`` lines of ``jobs`` and their steps (every run) once all of them have ended."""
    cmd = ["sacct", "-D", "-o", SACCT, "-j", ",".join(jobs)]
    deadline = time.time() + timeout
    while True:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        running = any(s in out for s in ("RUNNING", "PENDING", "COMPLETING"))
        if not running or time.time() > deadline:
            return out.rstrip().splitlines()
        time.sleep(2)


def sweep(base: Path) -> dict:
    """Run the two-seed sweep; return its wall time, exit status and the sacct lines of its jobs."""
    folder = base / "sweep"
    env = {k: v for k, v in os.environ.items() if k not in {"MKCELL_DEBUG", "HYDRA_FULL_ERROR"}}
    env |= {"MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    args = [*SWEEP, *LOCAL, f"hydra.sweep.dir={folder}"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkcell", *args],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    jobs = sorted(p.parent.name for p in (folder / ".submitit").glob("*/*_submitted.pkl"))
    return {
        "command": "mkcell " + " ".join(args[:-1]),
        "seconds": round(wall, 1),
        "returncode": proc.returncode,
        "error": proc.stderr.strip().splitlines()[-1:] if proc.returncode else None,
        "jobs": jobs,
        "sacct": sacct_lines(jobs) if jobs else [],
    }


def main() -> None:
    """Measure the cold start and the sweep; write ``benchmarks/results/slurm.json``."""
    was_up = node_idle()
    slurm("down")
    start = slurm("up")
    node = subprocess.run(
        ["sinfo", "-N", "-h", "-o", "%N %T cpus=%c mem=%mMB partition=%P"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"cold start (packages present, daemons down): {start:.1f} s; {node}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = sweep(Path(tmp))
    print(f"{result['command']}: {result['seconds']} s (exit {result['returncode']})")
    print("\n".join(result["sacct"]))
    if not was_up:
        slurm("down")
    save(
        "slurm",
        {
            "cold_start_seconds": round(start, 1),
            "node": node,
            "sweep": result,
        },
    )


if __name__ == "__main__":
    main()
