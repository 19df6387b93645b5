"""Benchmark of the `mkcell` workflow on 2 CPU cores.

1. the full workflow on ~20k simulated cells (wall time, peak memory, stage timings);
2. the unchanged re-run in the same folder (every stage skipped: mostly loading);
3. a two-job `hydra/launcher=submitit_local` multirun (``seed=1,2``).

Writes ``benchmarks/results/workflow.json``.

    .venv/bin/python benchmarks/bench_workflow.py                 # 20k cells
    .venv/bin/python benchmarks/bench_workflow.py --n-cells 5000 --multirun-args debug=tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import stage_seconds, thread_env  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "workflow.json"


def run(args: list[str], *, cwd: Path, cores: int, log: Path) -> dict:
    """Run ``mkcell args``; return wall time, exit status and the folder it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "mkcell", *args],
            cwd=cwd,
            env=thread_env(cores),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            check=False,
        )
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = {
        "command": "mkcell " + " ".join(args),
        "seconds": round(wall, 2),
        "returncode": proc.returncode,
        "folder": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else None,
        "peak_rss_gb_max_child": round(max(peak, before) / 1024**2, 3),
    }
    if proc.returncode != 0:
        out["error"] = log.read_text().strip().splitlines()[-1:] or None
    print(f"{out['command']}: {out['seconds']} s (exit {proc.returncode})", flush=True)
    return out


def main() -> None:
    """Run the three benchmarks and write ``benchmarks/results/workflow.json``."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n-cells", type=int, default=20_000)
    p.add_argument("--cores", type=int, default=2, help="CPU cores to pin the runs to (default 2)")
    p.add_argument(
        "--multirun-args", default="debug=tiny", help="extra overrides of the two-seed multirun"
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the run folders here (default: a temp folder)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--extra",
        default="",
        help="extra overrides of the full run, e.g. 'integrate.max_epochs=20'",
    )
    a = p.parse_args()

    if hasattr(os, "sched_setaffinity"):
        avail = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(avail[: a.cores]))  # children inherit the affinity
    work = a.workdir or Path(tempfile.mkdtemp(prefix="mkcell-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / f"full_{a.n_cells}"
    shutil.rmtree(run_dir, ignore_errors=True)

    full_args = [f"data.n_cells={a.n_cells}", *a.extra.split(), f"hydra.run.dir={run_dir}"]
    full = run(full_args, cwd=work, cores=a.cores, log=work / "full.log")
    full["stage_seconds"] = stage_seconds(run_dir)
    rerun = run(full_args, cwd=work, cores=a.cores, log=work / "rerun.log")
    sweep = work / "sweep"
    shutil.rmtree(sweep, ignore_errors=True)
    multi_args = [
        "-m",
        "hydra/launcher=submitit_local",
        "seed=1,2",
        *a.multirun_args.split(),
        f"hydra.sweep.dir={sweep}",
    ]
    multi = run(multi_args, cwd=work, cores=a.cores, log=work / "multirun.log")
    multi["jobs"] = {p.name: stage_seconds(p) for p in sorted(sweep.glob("[0-9]*")) if p.is_dir()}

    import mkcell

    result = {
        "benchmark": "mkcell workflow",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mkcell": mkcell.__version__,
        "python": platform.python_version(),
        "machine": {
            "platform": platform.platform(),
            "cores_used": a.cores,
            "cpu_count": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
        },
        "n_cells": a.n_cells,
        "extra_overrides": a.extra.split(),
        "full_run": full,
        "unchanged_rerun": rerun,
        "multirun_submitit_local_two_seeds": multi,
        "workdir": str(work),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(a.out)
    print(f"wrote {a.out}")
    if a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
