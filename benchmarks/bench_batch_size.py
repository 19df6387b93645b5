"""Issue 18, item 3 (fast settings that keep quality): does a larger scVI minibatch cost quality?

On hard simulated marrow (:data:`HARD`: strong cycling, strong species effect, strong batch
effects), scVI is trained at each ``--batch-sizes`` in two regimes:

* ``equal_epochs``: every batch size trains the same ``--epochs`` (default: the workflow's own
  ``default_epochs`` for the size), early stopping off;
* ``equal_time``: every batch size gets the wall time the reference ``--budget-batch-size``
  (512, the CPU default) took in the equal-epochs regime, as
  ``max(1, round(budget / its own median epoch seconds))`` epochs. A batch size whose epochs
  come out equal to its equal-epochs run is not trained again (``reused_equal_epochs_run``).

``--sqrt-lr`` adds ``equal_epochs_sqrt_lr``: each larger batch size again at equal epochs, with
Adam's learning rate at :func:`mkcell.integrate._scvi.default_lr` (``1e-3 * sqrt(batch size /
128)``, mkcell's default since this sweep) instead of scvi-tools' fixed 1e-3; the two regimes
above keep 1e-3. ``targets`` judge each batch size on that regime when it was run.

Batch size 128 is also trained with a second seed (``--noise-seed``): how far the metrics
move with no change of setting, the scale against which a 0.02 loss is read.

After each training, on that latent space and with the package's own functions only:
cross-species kNN mixing and kNN state purity (as ``bench_integration.py``), MkP F1 of
``mk.tl.annotate``, and per species the Spearman of ``mk.tl.trajectory``'s pseudotime with true
time on true MkP/Mk cells (as ``bench_trajectory.py``; ``spearman_min`` is the worse species),
plus training seconds, epochs and cells/s per epoch. Each regime reports the differences from
batch size 128 (``delta_vs_128`` = value - value at 128, so negative is a loss), and
``targets`` says whether the CPU and GPU default batch sizes lose at most 0.02 of mixing,
purity and ``spearman_min`` against 128 at equal epochs.

Timings are only meaningful with the machine to itself: run it alone.

    .venv/bin/python benchmarks/bench_batch_size.py --sqrt-lr           # 20k cells, CPU
    .venv/bin/python benchmarks/bench_batch_size.py --cells 2000 --epochs 3 \\
        --batch-sizes 128,512 --out /tmp/bs_quick.json                  # quick check
    .venv/bin/python benchmarks/bench_batch_size.py --accelerator gpu   # on a GPU machine

Writes ``benchmarks/results/batch_size.json``; ``--out`` takes a name (under
``benchmarks/results``) or a path ending in ``.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import peak_rss_gb, save
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

import mkcell as mk
from mkcell.integrate._metrics import cross_species_mixing, knn, knn_purity
from mkcell.integrate._scvi import (
    BASE_LR,
    CPU_BATCH_SIZE,
    GPU_BATCH_SIZE,
    default_epochs,
    default_lr,
)

RESULTS = Path(__file__).resolve().parent / "results"

#: The hard simulation every run trains on.
HARD = dict(n_genes=2000, cycle_strength=2.0, species_effect=1.5, batch_sd=0.4)
#: The batch size the others are compared with.
BASE_BATCH_SIZE = 128
#: Metrics compared with :data:`BASE_BATCH_SIZE`.
DELTA_METRICS = ("mixing", "purity", "mkp_f1", "spearman_min")
#: Of those, the ones the targets hold to :data:`MAX_LOSS`.
TARGET_METRICS = ("mixing", "purity", "spearman_min")
MAX_LOSS = 0.02


def _data(n_cells: int, seed: int):  # noqa: ANN202
    sim = mk.datasets.simulate_marrow(n_cells, seed=seed, **HARD)
    a = mk.pp.concat_species(sim)
    del sim
    mk.pp.highly_variable_genes(a)
    return a


def _spearman(o, species: str) -> dict:  # noqa: ANN001
    lin = (o["species"] == species) & o["true_state"].isin(["MkP", "Mk"])
    has = lin & o["mk_pseudotime"].notna()
    rho = (
        float(spearmanr(o.loc[has, "mk_pseudotime"], o.loc[has, "true_time"])[0])
        if has.sum() > 2
        else float("nan")
    )
    return {"spearman": rho, "share_with_pseudotime": float(has.sum() / max(lin.sum(), 1))}


def run_one(  # noqa: PLR0913
    pristine,  # noqa: ANN001
    batch_size: int,
    epochs: int,
    accelerator: str,
    seed: int = 0,
    lr: float = BASE_LR,
) -> dict:
    """Train at ``batch_size`` for ``epochs`` on a fresh copy of ``pristine``; measure."""
    a = pristine.copy()  # no latent space, annotation or trajectory of an earlier run
    t0 = time.perf_counter()
    mk.integrate.scvi(
        a,
        batch_size=batch_size,
        max_epochs=epochs,
        early_stopping=False,
        seed=seed,
        lr=lr,
        accelerator=accelerator,
    )
    info = a.uns["mk_integrate"]
    out = {
        "batch_size": batch_size,
        "lr": lr,
        "epochs": epochs,
        "epochs_run": info["epochs_run"],
        "train_seconds": info["seconds"],
        "median_epoch_seconds": float(np.median(info["epoch_seconds"])),
        "cells_per_second_per_epoch": info["cells_per_second_per_epoch"],
        "cells_per_second_steady": info["cells_per_second_steady"],
        "accelerator": info["params"]["accelerator"],
    }
    species = a.obs["species"].astype(str).to_numpy()
    state = a.obs["true_state"].astype(str).to_numpy()
    idx = knn(a.obsm["X_mk_scvi"])
    out["mixing"] = cross_species_mixing(idx, species, state)
    out["purity"] = knn_purity(idx, state)
    out["mkp_f1"] = out["spearman_min"] = float("nan")
    try:
        t = time.perf_counter()
        mk.tl.annotate(a)
        out["annotate_seconds"] = time.perf_counter() - t
        o = a.obs
        out["mkp_f1"] = float(f1_score(o["true_state"] == "MkP", o["mk_state"] == "MkP"))
        t = time.perf_counter()
        mk.tl.trajectory(a)
        out["trajectory_seconds"] = time.perf_counter() - t
        o = a.obs
        per = {s: _spearman(o, s) for s in ("mouse", "human")}
        out.update(per)
        rhos = [v["spearman"] for v in per.values()]
        out["spearman_min"] = float("nan") if np.isnan(rhos).any() else min(rhos)
    except Exception as err:  # noqa: BLE001 - a failed stage is a result, not the end of the sweep
        out["error"] = f"{type(err).__name__}: {err}"
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def _line(regime: str, r: dict) -> str:
    return (
        f"{regime:12s} bs={r['batch_size']:5d} epochs={r['epochs_run']:3d} "
        f"train={r['train_seconds']:7.1f}s ({r['cells_per_second_per_epoch']:,.0f} cells/s/epoch) "
        f"mixing={r['mixing']:.3f} purity={r['purity']:.3f} mkp_f1={r['mkp_f1']:.3f} "
        f"spearman_min={r['spearman_min']:.3f}"
        + ("  (equal-epochs run reused)" if r.get("reused_equal_epochs_run") else "")
        + (f"  ERROR {r['error']}" if "error" in r else "")
    )


def deltas(runs: dict[str, dict]) -> dict[str, dict]:
    """Per batch size, each of :data:`DELTA_METRICS` minus its value at batch size 128."""
    base = runs.get(str(BASE_BATCH_SIZE))
    if base is None:
        return {}
    return {bs: {m: r[m] - base[m] for m in DELTA_METRICS} for bs, r in runs.items()}


def targets(runs: dict[str, dict]) -> dict[str, dict]:
    """Per batch size, whether it loses at most :data:`MAX_LOSS` against 128 (equal epochs);
    loss = value at 128 - value (a gain is no loss; NaN fails). The current CPU and GPU
    defaults are named."""
    base = runs.get(str(BASE_BATCH_SIZE))
    if base is None:
        return {}
    defaults = {CPU_BATCH_SIZE: "cpu_default", GPU_BATCH_SIZE: "gpu_default"}
    out = {}
    for bs, r in runs.items():
        loss = {m: base[m] - r[m] for m in TARGET_METRICS}
        ok = {f"{m}_loss_le_{MAX_LOSS}": bool(loss[m] <= MAX_LOSS) for m in TARGET_METRICS}
        out[bs] = {"loss_vs_128": loss, **ok, "all": all(ok.values())}
        if int(bs) in defaults:
            out[bs]["default"] = defaults[int(bs)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cells", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--batch-sizes", default="128,512,1024,4096")
    p.add_argument("--epochs", type=int, default=None, help="default: default_epochs(n_obs)")
    p.add_argument(
        "--budget-batch-size", type=int, default=512, help="512: the CPU default until issue 18"
    )
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--resume", action="store_true", help="keep the runs --out already holds")
    p.add_argument(
        "--sqrt-lr",
        action="store_true",
        help="also train each larger batch size with lr 1e-3 * sqrt(batch size / 128)",
    )
    p.add_argument(
        "--noise-seed",
        type=int,
        default=1,
        help="train batch size 128 again with this seed: the seed-to-seed spread (-1: skip)",
    )
    p.add_argument(
        "--out", default="batch_size", help="a name under benchmarks/results, or a path *.json"
    )
    args = p.parse_args()
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    if args.budget_batch_size not in sizes:
        p.error(f"--budget-batch-size {args.budget_batch_size} is not in --batch-sizes")
    out_path = Path(args.out) if args.out.endswith(".json") else None
    out_name = out_path.stem if out_path else args.out

    t0 = time.perf_counter()
    a = _data(args.cells, args.seed)
    epochs = args.epochs or default_epochs(a.n_obs)
    result: dict = {
        "benchmark": "scVI batch size vs quality (issue 18, item 3)",
        "params": {
            "cells": a.n_obs,
            "seed": args.seed,
            "simulation": HARD,
            "n_features": int(a.var["mk_highly_variable"].sum()),
            "batch_sizes": sizes,
            "epochs": epochs,
            "epochs_is_default": args.epochs is None,
            "budget_batch_size": args.budget_batch_size,
            "accelerator": args.accelerator,
            "base_batch_size": BASE_BATCH_SIZE,
            "max_loss": MAX_LOSS,
        },
        "prep_seconds": time.perf_counter() - t0,
        "regimes": {"equal_epochs": {}, "equal_time": {}},
    }

    def checkpoint() -> None:  # complete after every run, so a cut-off sweep still reads
        result["delta_vs_128"] = {k: deltas(v) for k, v in result["regimes"].items()}
        # the defaults train with default_lr: judged on that regime when it was run
        regimes = result["regimes"]
        result["targets"] = targets(regimes.get("equal_epochs_sqrt_lr") or regimes["equal_epochs"])
        result["peak_rss_gb"] = peak_rss_gb()
        save(out_name, result, out_path)

    if args.resume:  # keep the runs --out already holds (same cells, seed and epochs)
        before = json.loads((out_path or RESULTS / f"{out_name}.json").read_text())
        same = all(before["params"][k] == result["params"][k] for k in ("cells", "seed", "epochs"))
        if not same:
            p.error("--resume: the results in --out are for other cells, seed or epochs")
        result["regimes"] = before["regimes"]
        result["seed_noise"] = before.get("seed_noise")
        result["params"]["budget_seconds"] = before["params"].get("budget_seconds")
    eq = result["regimes"]["equal_epochs"]
    for bs in sizes:
        if str(bs) in eq:
            continue
        eq[str(bs)] = r = run_one(a, bs, epochs, args.accelerator)
        print(_line("equal_epochs", r), flush=True)
        checkpoint()
    result["params"]["accelerator_resolved"] = eq[str(sizes[0])]["accelerator"]
    budget = eq[str(args.budget_batch_size)]["train_seconds"]
    result["params"]["budget_seconds"] = budget

    et = result["regimes"]["equal_time"]
    for bs in sizes:
        if str(bs) in et:
            continue
        ref = eq[str(bs)]
        e = max(1, round(budget / ref["median_epoch_seconds"]))
        if e == ref["epochs_run"]:
            r = {**ref, "reused_equal_epochs_run": True}
        else:
            r = run_one(a, bs, e, args.accelerator)
            r["reused_equal_epochs_run"] = False
        r["budget_seconds"], r["epochs_for_budget"] = budget, e
        et[str(bs)] = r
        print(_line("equal_time", r), flush=True)
        checkpoint()

    if args.sqrt_lr:  # Adam's learning rate scaled by sqrt(batch size / 128), equal epochs
        sq = result["regimes"].setdefault("equal_epochs_sqrt_lr", {})
        sq[str(BASE_BATCH_SIZE)] = eq[str(BASE_BATCH_SIZE)]
        for bs in (b for b in sizes if b != BASE_BATCH_SIZE and str(b) not in sq):
            lr = default_lr(bs)
            sq[str(bs)] = r = run_one(a, bs, epochs, args.accelerator, lr=lr)
            print(_line("sqrt_lr", r), flush=True)
            checkpoint()
    if args.noise_seed >= 0 and str(BASE_BATCH_SIZE) in eq and not result.get("seed_noise"):
        # the same batch size and epochs with another training seed: how much the metrics
        # move without any change of setting (the scale to read the 0.02 target against)
        r = run_one(a, BASE_BATCH_SIZE, epochs, args.accelerator, seed=args.noise_seed)
        print(_line(f"seed {args.noise_seed}", r), flush=True)
        base = eq[str(BASE_BATCH_SIZE)]
        result["seed_noise"] = {
            "run": r,
            "abs_difference": {m: abs(r[m] - base[m]) for m in DELTA_METRICS},
        }
        checkpoint()
    result["wall_seconds"] = time.perf_counter() - t0
    print("targets", result["targets"], flush=True)
    checkpoint()


if __name__ == "__main__":
    main()
