"""``mkcell mode=bulk`` end to end on a simulated 200 x 20,000 cohort (issue 28 timing target).

The same command a user types: a samples x genes counts table and a samples file with platelet
counts, associations with platelets (adjusted for age), GSEA of a platelet split (phenotype
permutation at this size, 1,000 permutations) and the E2F clusters. It prints the wall time of
the command (target <= 60 s on 2 cores), the stage times from the run's markers, and what the
run found against the planted truth; writes ``benchmarks/results/bulk_mode.json``.

Usage: ``.venv/bin/python benchmarks/bench_bulk_mode.py [--patients 200] [--genes 20000]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

import mkcell as mk  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    c = mk.datasets.simulate_cohort(args.patients, n_genes=args.genes, n_cells=0, seed=args.seed)
    bulk, truth = c["bulk"], c["samples"]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        counts = pd.DataFrame(bulk.layers["counts"], index=bulk.obs_names, columns=bulk.var_names)
        counts.rename_axis("sample").to_csv(d / "counts.tsv", sep="\t")
        truth[["platelets", "age", "sex"]].rename_axis("sample").to_csv(d / "samples.csv")
        cmd = [
            sys.executable,
            "-m",
            "mkcell",
            "mode=bulk",
            f"data.inputs.bulk={d / 'counts.tsv'}",
            f"data.samples_file={d / 'samples.csv'}",
            "associate.covariates=[platelets]",
            "associate.adjust=[age]",
            "gsea.split='platelets < 150'",
            f"hydra.run.dir={d / 'run'}",
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        run = d / "run"
        stages = {
            p.name.removesuffix(".done.json"): round(json.loads(p.read_text())["seconds"], 2)
            for p in (run / "stages").glob("*.done.json")
        }
        assoc = pd.read_csv(run / "tables" / "associations.csv").set_index("readout")
        gsea = pd.read_csv(run / "tables" / "gsea.csv").reset_index(drop=True)
        clusters = pd.read_csv(run / "tables" / "e2f_clusters.csv").set_index("sample")
    planted = truth["truth_low_platelet_subset"].reindex(clusters.index)
    ranks = gsea["nes"].rank(ascending=False)
    result = {
        "patients": args.patients,
        "genes": args.genes,
        "wall_seconds": round(wall, 1),
        "target_seconds": 60,
        "stage_seconds": stages,
        "e2f_z_vs_log2_platelets": {
            "effect": float(assoc.loc["mk_e2f_z", "effect"]),
            "p_adj": float(assoc.loc["mk_e2f_z", "p_adj"]),
        },
        "cluster_agreement_with_planted_subset": float(
            ((clusters["cluster"] == 1) == planted).mean()
        ),
        "gsea_rank": {
            t: int(ranks[gsea["term"] == t].iloc[0])
            for t in ("HALLMARK_E2F_TARGETS", "HALLMARK_G2M_CHECKPOINT")
        },
        "gsea_method": str(gsea["method"].iloc[0]),
        "note": "2 shared cores; timings beside other jobs are upper bounds",
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    save("bulk_mode", result)


if __name__ == "__main__":
    main()
