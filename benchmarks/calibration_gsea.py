"""Calibration of mk.tl.gsea on null and true-effect cohorts (issue 25, item 3).

Each draw is a fresh cohort of ``2 * n`` people whose share of proliferating cells differs
per person (logit-normal). Genes of the Hallmark E2F and G2M sets, plus unlisted genes
(30% as many, in no tested set), follow log2 of that share with gene-specific loadings,
as a pseudobulk does; the other genes are noise around their own means (~2,000 genes).
Samples are split at random into A and B. Null: nothing else differs. Effect: the E2F
genes of group A move up by ``shift`` (log2 units).

Tested sets: E2F_TARGETS, G2M_CHECKPOINT, MITOTIC_SPINDLE and 10 other Hallmark sets
(:func:`mkcell._genesets.hallmark_sets`).

Per scenario, group size and method (``gene_permutation``: the old prerank path; ``auto``:
the new default; ``camera``; ``phenotype`` where gseapy can permute labels, >= 3 per group):

* ``fpr``: share of null draws where E2F or G2M has p < 0.05 (target <= 0.10), ``fpr_se``
  its Monte-Carlo standard error;
* ``fdr25``: null: share of draws where E2F or G2M has FDR < 0.25; effect: share where
  E2F has FDR < 0.25 and is up in A;
* ``power``: share of effect draws where E2F has p < 0.05 and is up in A;
* ``fpr_other``: mean over the 10 sets unrelated to proliferation (all but E2F, G2M and
  mitotic spindle) of the share of draws where the set has p < 0.05 (target 0.05).

``camera_classic`` is :func:`mkcell.tl._camera.camera` with ``rest_correlation=False``
(Wu & Smyth's variance, the other genes taken as independent), not a ``mk.tl.gsea`` test.

``auto`` resolves to camera below 7 per group and to phenotype permutation from 7 on; its
row reuses that method's results on the same draws (the same call with the same seed).

Usage: ``.venv/bin/python benchmarks/calibration_gsea.py [--n-splits 60] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import mkcell as mk
from mkcell._genesets import hallmark_sets
from mkcell.tl._camera import camera
from mkcell.tl._gsea import _resolve_test

PROLIF = ("HALLMARK_E2F_TARGETS", "HALLMARK_G2M_CHECKPOINT")
OTHER = (
    "HALLMARK_MITOTIC_SPINDLE",
    "HALLMARK_HYPOXIA",
    "HALLMARK_APOPTOSIS",
    "HALLMARK_INTERFERON_ALPHA_RESPONSE",
    "HALLMARK_TGF_BETA_SIGNALING",
    "HALLMARK_NOTCH_SIGNALING",
    "HALLMARK_PEROXISOME",
    "HALLMARK_HEME_METABOLISM",
    "HALLMARK_PROTEIN_SECRETION",
    "HALLMARK_CHOLESTEROL_HOMEOSTASIS",
    "HALLMARK_ANGIOGENESIS",
)
E2F, G2M = PROLIF
UNRELATED = OTHER[1:]
N_GENES = 2000
UNLISTED_SHARE = 0.3
SHIFT = 0.5
PERMUTATIONS = 1000
METHODS = ("gene_permutation", "auto", "camera", "camera_classic", "phenotype")


def gene_sets() -> dict[str, list[str]]:
    """The 13 tested Hallmark sets."""
    hall = hallmark_sets()
    return {k: list(hall[k]) for k in (*PROLIF, *OTHER)}


def universe(sets: dict[str, list[str]]) -> tuple[list[str], np.ndarray]:
    """Genes of the table (set genes, then unlisted genes up to ``N_GENES``) and the mask
    of genes that follow proliferation (E2F, G2M and 30% as many unlisted genes)."""
    listed = list(dict.fromkeys(g for v in sets.values() for g in v))
    genes = listed + [f"UNLISTED{i:04d}" for i in range(max(N_GENES - len(listed), 0))]
    core = set(sets[E2F]) | set(sets[G2M])
    prolif = np.isin(genes, list(core))
    unlisted = np.flatnonzero(np.char.startswith(np.array(genes), "UNLISTED"))
    rng = np.random.default_rng(12345)
    n_extra = round(UNLISTED_SHARE * prolif.sum())
    prolif[rng.choice(unlisted, n_extra, replace=False)] = True
    return genes, prolif


def cohort(
    n_per_group: int,
    rng: np.random.Generator,
    genes: list[str],
    prolif: np.ndarray,
    e2f: np.ndarray,
    shift: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One cohort of ``2 * n_per_group`` samples (log2 pseudobulk-like) split at random."""
    n, G = 2 * n_per_group, len(genes)
    share = 1.0 / (1.0 + np.exp(-rng.normal(np.log(0.2 / 0.8), 0.7, n)))
    mu = rng.normal(6.0, 2.0, G)
    load = np.where(prolif, rng.uniform(0.4, 1.0, G), 0.0)
    sd = 0.3 * np.exp(rng.normal(0.0, 0.4, G))
    X = mu + np.log2(share)[:, None] * load + rng.normal(0.0, 1.0, (n, G)) * sd
    grp = rng.permutation(np.repeat(np.array(["A", "B"]), n_per_group))
    X[np.ix_(grp == "A", e2f)] += shift
    idx = [f"p{i:02d}" for i in range(n)]
    return pd.DataFrame(X, index=idx, columns=genes), pd.DataFrame({"group": grp}, index=idx)


def _methods(n_per_group: int) -> list[str]:
    return [
        m
        for m in METHODS
        if m != "phenotype" or n_per_group >= 3  # gseapy needs >= 3 per group to permute labels
    ]


def _camera_classic(tab: pd.DataFrame, meta: pd.DataFrame, sets: dict) -> pd.DataFrame:
    from scipy.stats import false_discovery_control

    X = tab.to_numpy(float)
    pos = {g: i for i, g in enumerate(tab.columns)}
    index = {k: [pos[g] for g in v if g in pos] for k, v in sets.items()}
    a = (meta["group"] == "A").to_numpy()
    res = camera(X, a, ~a, index, rest_correlation=False)
    p = res["p_value"].to_numpy()
    return pd.DataFrame(
        {
            "term": res["term"],
            "nes": res["statistic"],
            "p_value": p,
            "fdr": false_discovery_control(p, method="bh"),
        }
    )


def _summary(res: pd.DataFrame) -> dict:
    r = res.set_index("term")
    return {
        "p": r.loc[list(PROLIF), "p_value"].to_numpy(float),
        "fdr": r.loc[list(PROLIF), "fdr"].to_numpy(float),
        "up": r.loc[list(PROLIF), "nes"].to_numpy(float) > 0,
        "p_other": r["p_value"].reindex(list(UNRELATED)).to_numpy(float),
    }


def _rate(hits: list[bool]) -> tuple[float, float]:
    n = len(hits)
    p = float(np.mean(hits)) if n else float("nan")
    return p, math.sqrt(p * (1 - p) / n) if n else float("nan")


def run(
    n_splits: int = 60,
    seed: int = 0,
    sizes: Sequence[int] = (3, 6, 12),
    *,
    permutations: int = PERMUTATIONS,
    shift: float = SHIFT,
) -> list[dict]:
    """Null and effect cohorts for every group size; one row per scenario, size and method.

    Parameters
    ----------
    n_splits
        Draws (fresh cohort, random split) per scenario and group size.
    seed
        Seed of the draws.
    sizes
        Samples per group.
    permutations
        Permutations of the GSEA tests (gene or sample labels).
    shift
        Shift of the E2F genes in group A in the effect scenario (log2 units).
    """
    sets = gene_sets()
    genes, prolif = universe(sets)
    e2f = np.isin(genes, sets[E2F])
    rows = []
    for n_per in sizes:
        methods = _methods(n_per)
        auto_to = _resolve_test("auto", n_per, n_per)
        for s_idx, (scenario, sh) in enumerate((("null", 0.0), ("effect", shift))):
            out: dict[str, list[dict]] = {m: [] for m in methods if m != "auto"}
            secs: dict[str, float] = dict.fromkeys(out, 0.0)
            for draw in range(n_splits):
                rng = np.random.default_rng([seed, n_per, s_idx, draw])
                tab, meta = cohort(n_per, rng, genes, prolif, e2f, shift=sh)
                for m in out:
                    t0 = time.perf_counter()
                    if m == "camera_classic":
                        res = _camera_classic(tab, meta, sets)
                    else:
                        res = mk.tl.gsea(
                            tab,
                            meta,
                            "group",
                            ("A", "B"),
                            test=m,
                            gene_sets=sets,
                            permutations=permutations,
                            transform="none",
                            seed=draw,
                        )
                    secs[m] += time.perf_counter() - t0
                    out[m].append(_summary(res))
            for m in methods:
                base = auto_to if m == "auto" else m
                draws = out[base]
                if scenario == "null":
                    fpr, fpr_se = _rate([bool((d["p"] < 0.05).any()) for d in draws])
                    fdr25, _ = _rate([bool((d["fdr"] < 0.25).any()) for d in draws])
                    power = None
                else:
                    fpr = fpr_se = None
                    fdr25, _ = _rate([bool(d["fdr"][0] < 0.25 and d["up"][0]) for d in draws])
                    power, _ = _rate([bool(d["p"][0] < 0.05 and d["up"][0]) for d in draws])
                other = np.array([d["p_other"] < 0.05 for d in draws])
                fpr_other = float(np.nanmean(other.mean(0))) if draws else float("nan")
                rows.append(
                    {
                        "test": "gsea",
                        "scenario": scenario,
                        "n_per_group": n_per,
                        "method": m if m != "auto" else f"auto ({auto_to})",
                        "n_draws": len(draws),
                        "fpr": fpr,
                        "fpr_se": fpr_se,
                        "fdr25": fdr25,
                        "power": power,
                        "fpr_other": fpr_other,
                        "seconds_per_draw": secs[base] / max(len(draws), 1),
                    }
                )
    return rows


def table(rows: list[dict]) -> str:
    """Rows as a fixed-width text table."""
    df = pd.DataFrame(rows)
    return df.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-splits", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 6, 12])
    ap.add_argument("--permutations", type=int, default=PERMUTATIONS)
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(args.n_splits, args.seed, tuple(args.sizes), permutations=args.permutations)
    wall = time.perf_counter() - t0
    print(table(rows))
    print(f"\n{args.n_splits} splits per scenario and size: {wall:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "wall_s": wall,
                    "n_splits": args.n_splits,
                    "permutations": args.permutations,
                    "shift": SHIFT,
                },
                indent=2,
            )
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
