r"""mkcell's whole workflow side by side with a hand-written reference, 10k -> 200k cells.

For each size: simulate mouse + human marrow once (``simulate_marrow``, not timed) and
write it as two h5ad files; then, one after the other on the same data,

- ``mkcell data=files ...`` (the workflow users run: every stage, metrics, figures, report);
- ``reference_pipeline.py`` (scanpy + scvi-tools + CellRank 2 GPCCA, library defaults).

Both train scVI for the same epochs (mkcell's default for the size, early stopping off
in both). Wall time per stage and peak resident memory (process + children, sampled
every 0.2 s) are recorded; a run whose memory passes ``--mem-cap-gb`` is killed and
marked ``out_of_memory``. The reference runs at 10k and 50k cells by default: at 50k its
dense Schur matrix alone is 8 n^2 bytes = 20 GB, so it cannot finish on a 24 GB
machine, and at 100k (80 GB) or 200k (320 GB) even less; ``--reference-sizes`` runs
it anywhere (each run costs its full scVI training before it fails). The fit of log(time)
on log(cells) over the mkcell runs from 20k cells up is the scaling exponent. Writes
``benchmarks/results/vs_reference.json``.

    .venv/bin/python benchmarks/bench_vs_reference.py                       # 10k..200k (~80 min)
    .venv/bin/python benchmarks/bench_vs_reference.py --sizes 3000 --reference-sizes 3000 \
        --epochs 2 --name check
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, run_watched, save, stage_seconds, thread_env, total_memory_gb  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def simulate(n_cells: int, folder: Path, seed: int) -> dict[str, Path]:
    """Simulated marrow as ``<folder>/<species>.h5ad`` (kept between runs of this script)."""
    import mkcell as mk

    paths = {s: folder / f"{s}.h5ad" for s in ("mouse", "human")}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    data = mk.datasets.simulate_marrow(n_cells, seed=seed)
    for s, a in data.items():
        keep = [c for c in a.obs.columns if c in ("sample", "condition", "species")]
        a.obs = a.obs[keep]  # the truth stays out of both pipelines' input
        a.write_h5ad(paths[s])
    return paths


def reference_stages(stdout: list[str]) -> dict[str, float]:
    """Seconds per reference stage, from its JSON lines."""
    out = {}
    for line in stdout:
        if line.startswith("{"):
            rec = json.loads(line)
            if "stage" in rec:
                out[rec["stage"]] = rec["seconds"]
    return out


def exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """Slope of log(seconds) on log(cells)."""
    if len(sizes) < 2:
        return None
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    from mkcell.integrate._scvi import default_epochs

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000, 200_000]
    )
    p.add_argument("--reference-sizes", type=int, nargs="*", default=[10_000, 50_000])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument(
        "--mem-cap-gb",
        type=float,
        default=None,
        help="kill a run past this RSS (default: 85%% of RAM, at most 20)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep data and run folders here (default: a temp folder)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="scVI epochs for both (default: mkcell's default for the size)",
    )
    p.add_argument("--name", default="vs_reference", help="results/<name>.json")
    p.add_argument(
        "--append",
        action="store_true",
        help="keep the rows of results/<name>.json for sizes not run now",
    )
    a = p.parse_args()

    cap = a.mem_cap_gb or min(20.0, 0.85 * total_memory_gb())
    work = a.workdir or Path(tempfile.mkdtemp(prefix="mkcell-vsref-"))
    env = thread_env(a.cores)
    sizes = sorted(set(a.sizes) | set(a.reference_sizes))
    kept = []
    if a.append and (RESULTS / f"{a.name}.json").exists():
        kept = [
            r
            for r in json.loads((RESULTS / f"{a.name}.json").read_text())["runs"]
            if r["n_cells"] not in sizes
        ]
    rows = list(kept)
    for n in sizes:
        epochs = a.epochs or default_epochs(n)
        folder = work / str(n)
        t0 = time.perf_counter()
        paths = simulate(n, folder / "data", a.seed)
        print(
            f"{n} cells (data in {time.perf_counter() - t0:.0f} s), {epochs} scVI epochs",
            flush=True,
        )
        row = {"n_cells": n, "scvi_epochs": epochs}
        if n in a.sizes:
            run_dir = folder / "mkcell"
            shutil.rmtree(run_dir, ignore_errors=True)
            cmd = [
                sys.executable,
                "-m",
                "mkcell",
                "data=files",
                f"data.inputs.mouse={paths['mouse']}",
                f"data.inputs.human={paths['human']}",
                f"integrate.max_epochs={epochs}",
                "integrate.early_stopping=false",
                f"seed={a.seed}",
                f"hydra.run.dir={run_dir}",
            ]
            res = run_watched(cmd, cwd=ROOT, env=env, log=folder / "mkcell.log", cap_gb=cap)
            res["stage_seconds"] = stage_seconds(run_dir)
            res.pop("stdout")
            row["mkcell"] = res
        if n in a.reference_sizes:
            cmd = [
                sys.executable,
                str(HERE / "reference_pipeline.py"),
                str(paths["mouse"]),
                str(paths["human"]),
                "--epochs",
                str(epochs),
                "--seed",
                str(a.seed),
            ]
            res = run_watched(cmd, cwd=folder, env=env, log=folder / "reference.log", cap_gb=cap)
            res["stage_seconds"] = reference_stages(res.pop("stdout"))
            if res["status"] != "ok":
                done = list(res["stage_seconds"])
                res["failed_after_stage"] = done[-1] if done else None
            row["reference"] = res
        m, r = row.get("mkcell"), row.get("reference")
        if m and r and m["status"] == r["status"] == "ok":
            row["time_ratio_mkcell_over_reference"] = round(m["seconds"] / r["seconds"], 3)
        rows.append(row)
        rows.sort(key=lambda r: r["n_cells"])
        save(
            a.name, _summary(rows, cap, a.cores)
        )  # after every size: a cut-off run keeps what it measured
    if a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def _summary(rows: list[dict], cap: float, cores: int) -> dict:
    ok = [r for r in rows if r.get("mkcell", {}).get("status") == "ok" and r["n_cells"] >= 20_000]
    sizes = [r["n_cells"] for r in ok]
    secs = [r["mkcell"]["seconds"] for r in ok]
    largest = max(rows, key=lambda r: r["n_cells"]) if rows else {}
    return {
        "benchmark": "mkcell workflow vs hand-written reference (benchmarks/reference_pipeline.py)",
        "cores": cores,
        "memory_cap_gb": round(cap, 2),
        "machine_memory_gb": round(total_memory_gb(), 1),
        "runs": rows,
        "mkcell_scaling_exponent_20k_up": exponent(sizes, secs),
        "scaling_sizes": sizes,
        "mkcell_peak_rss_gb_largest": largest.get("mkcell", {}).get("peak_rss_gb"),
        "python_machine": machine(),
    }


if __name__ == "__main__":
    main()
