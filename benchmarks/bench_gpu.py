"""scVI training speed on a GPU: batch sizes, mkcell vs plain scvi-tools, and 1M cells.

1. ``--cells`` simulated cells: ``mk.integrate.scvi`` for a few epochs at each
   ``--batch-sizes`` (sparse minibatches sent to the GPU); the steady cells/s per epoch
   (median epoch after the first) and peak GPU memory of each;
2. the same data through plain scvi-tools as the tutorials run it (``SCVI(adata).train()``,
   batch size 128, dense minibatches) for the same epochs: the reference;
3. the integration stage (scVI at its default epochs, latent space) on those cells
   repeated ``--tile`` times (default 4: 1M cells) with ``--large-batch-size``. The
   copies are the same cells under new names: simulating 1M cells afresh takes
   minutes of CPU that a GPU lease cannot spare, and speed does not depend on it.

Writes ``benchmarks/results/gpu.json`` (or ``--out``) after each step. Needs a CUDA GPU.

    python benchmarks/bench_gpu.py
    python benchmarks/bench_gpu.py --cells 20000 --tile 0 --epochs 2   # quick check
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, peak_rss_gb, save  # noqa: E402


def _data(n_cells: int, seed: int):  # noqa: ANN202
    import mkcell as mk

    t0 = time.perf_counter()
    a = mk.pp.concat_species(mk.datasets.simulate_marrow(n_cells, seed=seed))
    mk.pp.highly_variable_genes(a)
    print(
        f"{a.n_obs} cells x {a.n_vars} genes ready in {time.perf_counter() - t0:.0f} s", flush=True
    )
    return a, time.perf_counter() - t0


def _rate(cells_per_second: float) -> int | None:
    """Rounded cells/s; None when there was no epoch after the first to time."""
    return round(cells_per_second) if np.isfinite(cells_per_second) else None


def _gpu_peak_gb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 1024**3


def _reset_gpu_peak() -> None:
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def mkcell_run(a, batch_size: int, epochs: int, accelerator: str) -> dict:  # noqa: ANN001
    import mkcell as mk

    _reset_gpu_peak() if accelerator == "gpu" else None
    mk.integrate.scvi(
        a, max_epochs=epochs, batch_size=batch_size, early_stopping=False, accelerator=accelerator
    )
    info = a.uns["mk_integrate"]
    return {
        "batch_size": batch_size,
        "epochs": info["epochs_run"],
        "train_seconds": round(info["seconds"], 2),
        "epoch_seconds": info["epoch_seconds"],
        "cells_per_second_steady": _rate(info["cells_per_second_steady"]),
        "cells_per_second_whole_run": round(info["cells_per_second_per_epoch"]),
        "gpu_peak_gb": round(_gpu_peak_gb(), 3) if accelerator == "gpu" else None,
    }


def plain_scvi_run(a, epochs: int, accelerator: str) -> dict:  # noqa: ANN001
    """scvi-tools as its tutorials run it: defaults (batch size 128), dense minibatches."""
    import scvi

    from mkcell.integrate._scvi import _epoch_timer

    sub = a[:, a.var["mk_highly_variable"].to_numpy()].copy()
    sub.X = sub.layers["counts"] if "counts" in sub.layers else sub.X
    scvi.model.SCVI.setup_anndata(sub, batch_key="sample", categorical_covariate_keys=["species"])
    model = scvi.model.SCVI(sub)
    timer = _epoch_timer()
    _reset_gpu_peak() if accelerator == "gpu" else None
    t0 = time.perf_counter()
    model.train(max_epochs=epochs, accelerator=accelerator, callbacks=[timer])
    seconds = time.perf_counter() - t0
    n_train = 0.9 * sub.n_obs
    return {
        "batch_size": 128,
        "epochs": epochs,
        "train_seconds": round(seconds, 2),
        "epoch_seconds": [round(s, 4) for s in timer.seconds],
        "cells_per_second_steady": round(n_train / float(np.median(timer.seconds[1:])))
        if len(timer.seconds) > 1
        else None,
        "cells_per_second_whole_run": round(n_train * epochs / seconds),
        "gpu_peak_gb": round(_gpu_peak_gb(), 3) if accelerator == "gpu" else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cells", type=int, default=250_000)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024, 2048, 4096])
    p.add_argument(
        "--epochs", type=int, default=4, help="epochs per sweep run (the first is not counted)"
    )
    p.add_argument(
        "--tile", type=int, default=4, help="copies of the data in the large run (0: skip it)"
    )
    p.add_argument("--large-batch-size", type=int, default=1024)
    p.add_argument(
        "--large-epochs", type=int, default=None, help="default: mkcell's default for the size"
    )
    p.add_argument(
        "--accelerator", default="gpu", help="'cpu' only to check this script without a GPU"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    a = p.parse_args()

    result: dict = {"benchmark": "scVI on GPU"}

    def checkpoint() -> None:
        save("gpu", result, a.out)

    adata, prep = _data(a.cells, a.seed)
    result["sweep"] = {
        "n_cells": adata.n_obs,
        "n_features": int(adata.var["mk_highly_variable"].sum()),
        "prep_seconds": round(prep, 1),
        "mkcell": [],
    }
    for bs in a.batch_sizes:
        run = mkcell_run(adata, bs, a.epochs, a.accelerator)
        print(
            f"mkcell batch {bs}: {run['cells_per_second_steady']:,} cells/s per epoch, "
            f"GPU peak {run['gpu_peak_gb']} GB",
            flush=True,
        )
        result["sweep"]["mkcell"].append(run)
        checkpoint()
    ref = plain_scvi_run(adata, a.epochs, a.accelerator)
    print(
        f"plain scvi-tools (batch 128): {ref['cells_per_second_steady']:,} cells/s per epoch",
        flush=True,
    )
    result["sweep"]["plain_scvi_tools"] = ref
    checkpoint()

    if a.tile:
        import anndata as ad

        import mkcell as mk
        from mkcell.integrate._scvi import default_epochs

        adata = ad.concat(
            {str(i): adata for i in range(a.tile)},
            index_unique="-",
            merge="same",
            uns_merge="first",
        )
        _reset_gpu_peak() if a.accelerator == "gpu" else None
        t0 = time.perf_counter()
        mk.integrate.scvi(
            adata,
            max_epochs=a.large_epochs,
            batch_size=a.large_batch_size,
            early_stopping=False,
            accelerator=a.accelerator,
        )
        stage = time.perf_counter() - t0
        info = adata.uns["mk_integrate"]
        result["large"] = {
            "n_cells": adata.n_obs,
            "tiled": f"{a.tile} copies of the {a.cells} simulated cells",
            "batch_size": a.large_batch_size,
            "epochs": info["epochs_run"],
            "default_epochs": default_epochs(adata.n_obs),
            "integrate_seconds": round(stage, 1),
            "train_seconds": round(info["seconds"], 1),
            "cells_per_second_steady": _rate(info["cells_per_second_steady"]),
            "gpu_peak_gb": round(_gpu_peak_gb(), 3) if a.accelerator == "gpu" else None,
            "peak_rss_gb": round(peak_rss_gb(), 2),
        }
        print("large:", result["large"], flush=True)
        checkpoint()


if __name__ == "__main__":
    main()
