"""Shared benchmark plumbing: machine description, JSON results, peak memory."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def save(name: str, result: dict, path: Path | None = None) -> Path:
    """Write ``result`` with the machine description to ``path`` (default
    ``results/<name>.json``), atomically."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(
            {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), **result},
            indent=2,
            default=float,
        )
    )
    tmp.replace(path)
    print(f"wrote {path}")
    return path


def thread_env(cores: int) -> dict[str, str]:
    """This environment with every thread pool capped at ``cores`` (and no plotting window)."""
    env = {k: v for k, v in os.environ.items() if k not in {"MKCELL_DEBUG", "HYDRA_FULL_ERROR"}}
    threads = str(cores)
    env.update(
        {
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "NUMBA_NUM_THREADS": threads,
            "MPLBACKEND": "Agg",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def total_memory_gb() -> float:
    """Physical memory of this machine (GB)."""
    import psutil

    return psutil.virtual_memory().total / 1024**3


def run_watched(
    cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, cap_gb: float
) -> dict:
    """Run ``cmd``, sampling the resident memory of it and its children every 0.2 s.

    Past ``cap_gb`` the process group is killed and the run is marked
    ``"out_of_memory"``: that is how a 24 GB machine ends it, without taking the
    benchmark (and everything else on the machine) down with it.

    Returns wall seconds, exit status, status (``ok``, ``failed``, ``out_of_memory``),
    peak RSS (GB) and the stdout lines.
    """
    import signal
    import subprocess
    import threading

    import psutil

    lines: list[str] = []
    t0 = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        reader = threading.Thread(
            target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
        )
        reader.start()
        peak, killed, root = 0.0, False, psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = (
                    sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                    / 1024**3
                )
            except psutil.Error:
                rss = 0.0
            peak = max(peak, rss)
            if rss > cap_gb:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                proc.wait()
                break
            time.sleep(0.2)
        reader.join(timeout=10)
    wall = time.perf_counter() - t0
    status = "out_of_memory" if killed else ("ok" if proc.returncode == 0 else "failed")
    out = {
        "command": " ".join(cmd[1:]),
        "seconds": round(wall, 2),
        "returncode": proc.returncode,
        "status": status,
        "peak_rss_gb": round(peak, 3),
        "stdout": [s.rstrip("\n") for s in lines],
    }
    if status == "failed":
        out["error"] = log.read_text().strip().splitlines()[-3:]
    if killed:
        out["killed_at_rss_gb"] = round(peak, 3)
    print(
        f"  {status}: {out['seconds']} s, peak {out['peak_rss_gb']} GB  ({' '.join(cmd[1:3])})",
        flush=True,
    )
    return out


def stage_seconds(run_dir: Path) -> dict[str, float | None]:
    """Seconds per stage of an ``mkcell`` run folder, from its stage markers."""
    out = {}
    for marker in sorted((run_dir / "stages").glob("*.done.json")):
        data = json.loads(marker.read_text())
        out[data["stage"]] = data.get("seconds")
    return out
