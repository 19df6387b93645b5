"""Issue 18: peak host memory and wall time of every workflow stage, each in its own process.

The workflow's own stage functions (``mkcell.workflow.STAGES``) run one at a time, each in a
fresh child process that reads the stage before from ``<run>/stages`` and writes its own, as
the runner does; the parent reads the child's peak RSS from ``os.wait4`` (per process, not
the high-water mark of the whole run). The cells are ``--base`` simulated cells (both
species, ``simulate_marrow``) tiled to each ``--cells`` under new names; the integration
stage trains ``--epochs`` epochs (memory, not convergence, is measured).

Writes ``benchmarks/results/memory.json`` (or ``--out``): per size, per stage, seconds and
peak GB, and the time exponent of each stage between the smallest and largest size.

    .venv/bin/python benchmarks/bench_memory.py --cells 20000,50000 --base 20000   # quick
    .venv/bin/python benchmarks/bench_memory.py --cells 100000,200000 --base 100000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
from _common import save, thread_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _thin(X: sp.csr_matrix, keep: float, rng: np.random.Generator) -> sp.csr_matrix:
    """Binomial thinning of integer counts (each count kept with probability ``keep``)."""
    out = sp.csr_matrix(X, dtype=np.float32, copy=True)
    out.data = rng.binomial(np.round(out.data).astype(np.int64), keep).astype(np.float32)
    out.eliminate_zeros()
    return out


def _inputs(base: int, n_cells: int, work: Path, seed: int, keep: float) -> dict[str, Path]:
    """Per-species raw-count inputs: ``base`` simulated cells tiled to ``n_cells``.

    Each tile is thinned anew (binomial, ``keep``), so tiles are not copies of each other
    and the counts are as sparse as droplet data (``keep=0.3``: 14% non-zeros, ~410
    counts per cell over the 1,600 genes, against 31% and ~1,450 unthinned).
    """
    import anndata as ad

    import mkcell as mk

    work.mkdir(parents=True, exist_ok=True)
    out = {s: work / f"{s}_{n_cells}_keep{keep}.h5ad" for s in ("mouse", "human")}
    if all(p.exists() for p in out.values()):
        return out
    sim = mk.datasets.simulate_marrow(base, seed=seed)
    reps = math.ceil(n_cells / base)
    for species, a in sim.items():
        want = round(n_cells * a.n_obs / base)
        parts = []
        for r in range(reps):
            b = a.copy()
            b.X = _thin(a.X, keep, np.random.default_rng([seed, r]))
            b.obs_names = [f"{c}-t{r}" for c in b.obs_names]
            parts.append(b)
        tiled = ad.concat(parts, merge="same", uns_merge="first")[:want].copy()
        for col in [c for c in tiled.obs.columns if c.startswith("true_")]:
            del tiled.obs[col]  # truth columns are not what users bring
        tiled.write_h5ad(out[species])
    return out


def _overrides(inputs: dict[str, Path], epochs: int) -> list[str]:
    return [
        "data=files",
        *[f"data.inputs.{s}={p}" for s, p in inputs.items()],
        "data.sample_key=sample",
        "data.condition_key=condition",
        f"integrate.max_epochs={epochs}",
    ]


def child(stage_index: int, run_dir: Path, overrides: list[str]) -> None:
    """Run one stage of the workflow on the data the stage before left in ``run_dir``."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mkcell._utils import read_h5ad_stage
    from mkcell.workflow import check_config, stages_for
    from mkcell.workflow._runner import save_data

    with initialize_config_dir(
        config_dir=str(ROOT / "configs"), version_base="1.3", job_name="mkcell"
    ):
        cfg = compose("config", overrides=overrides)
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    check_config(cfg)
    stages = stages_for(cfg)
    st = stages[stage_index]
    index = run_dir / "bench_data.json"  # stage -> its data file(s), as the runner's markers
    saved = json.loads(index.read_text()) if index.exists() else {}
    data = None
    if stage_index:
        rel = saved[stages[stage_index - 1].name]
        read = lambda r: read_h5ad_stage(run_dir / r)  # noqa: E731
        data = read(rel) if isinstance(rel, str) else {k: read(v) for k, v in rel.items()}
    data = st.func(cfg, data, run_dir)
    if st.save_data:
        saved[st.name] = save_data(run_dir, st.name, data)
        index.write_text(json.dumps(saved))


def _run_stage(i: int, run_dir: Path, overrides: list[str], cores: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(i), "--run", str(run_dir), "--", *overrides]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=thread_env(cores), cwd=run_dir)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        msg = f"stage {i} failed with exit status {code}"
        raise RuntimeError(msg)
    return {"seconds": round(seconds, 1), "peak_gb": round(usage.ru_maxrss / 1024**2, 2)}


def measure(n_cells: int, args: argparse.Namespace, out: dict, saved: Callable) -> None:
    """Run every stage at ``n_cells`` into ``out`` (skipping those already in it), saving each."""
    from mkcell.workflow import STAGES

    work = Path(args.work)
    # the inputs are made in a process of their own: Linux keeps a process's peak RSS across
    # exec, so a child forked from a parent that had simulated them would report its peak
    cmd = [sys.executable, __file__, "--inputs-only", f"--cells={n_cells}"]
    cmd += [f"--base={args.base}", f"--work={work}", f"--seed={args.seed}", f"--keep={args.keep}"]
    subprocess.run(cmd, check=True)
    inputs = _inputs(args.base, n_cells, work, args.seed, args.keep)
    run_dir = work / f"run_{n_cells}"
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = _overrides(inputs, args.epochs)
    for i, st in enumerate(STAGES):
        if st.name in out:
            continue
        out[st.name] = _run_stage(i, run_dir, overrides, args.cores)
        print(n_cells, st.name, out[st.name], flush=True)
        saved()


def exponents(by_size: dict[int, dict]) -> dict[str, float]:
    """Time exponent of each stage between the smallest and the largest size."""
    lo, hi = min(by_size), max(by_size)
    return {
        name: round(
            math.log(by_size[hi][name]["seconds"] / by_size[lo][name]["seconds"])
            / math.log(hi / lo),
            2,
        )
        for name in by_size[lo]
        if by_size[lo][name]["seconds"] > 0
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="100000,200000")
    ap.add_argument("--base", type=int, default=100_000, help="simulated cells, tiled to --cells")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--keep", type=float, default=0.3, help="binomial thinning of each tile")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/mkcell_bench_memory")
    ap.add_argument("--out", default="memory")
    ap.add_argument(
        "--resume", action="store_true", help="keep the stages --out already holds for --cells"
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--inputs-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, Path(args.run), args.overrides)
        return
    if args.inputs_only:
        _inputs(args.base, int(args.cells), Path(args.work), args.seed, args.keep)
        return
    sizes = [int(c) for c in args.cells.split(",")]
    result = {"params": vars(args) | {"cells": sizes}, "stages": {}}
    if args.resume:  # keep the stages measured before (their data is still in --work)
        path = Path(args.out) if args.out.endswith(".json") else RESULTS / f"{args.out}.json"
        before = json.loads(path.read_text())
        result["stages"] = {int(n): st for n, st in before["stages"].items() if int(n) in sizes}
    by_size: dict[int, dict] = result["stages"]

    def saved() -> None:
        if len(by_size) > 1 and all(len(v) == len(by_size[sizes[0]]) for v in by_size.values()):
            result["time_exponent"] = exponents(by_size)
        save(args.out, json.loads(json.dumps(result)))

    for n in sizes:
        measure(n, args, by_size.setdefault(n, {}), saved)


if __name__ == "__main__":
    main()
