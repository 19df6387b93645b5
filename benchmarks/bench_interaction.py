"""Calibration of the disease x drug interaction contrast (A vs B) vs (C vs D).

Four-arm mouse cohorts (MDS_drug, MDS, control_drug, control), a few mice per arm, drawn
like the pair cohorts of ``bench_calibration.py``: people (mice) differ, cell numbers per
sample spread up to 20-fold, and both the disease and the drug have real main effects.
Under the null the drug changes the readout by the same amount in MDS and in controls (on
the scale the tool reports: log2 MkP fraction, mean pseudotime, mean score), so the
interaction is 0; under the alternative the drug does more in MDS. Each cohort goes through
the public API (``mk.tl.progenitor_pool``, ``mk.tl.maturation_shift``,
``mk.tl.compare_scores`` with ``contrasts=[[MDS_drug, MDS, control_drug, control]]``).

For each scenario: the false-call rate at alpha 0.05 over the null cohorts (with its
Monte-Carlo SE and a one-sided 99% limit), the coverage of the 95% CI, and the power on a
planted interaction (and at twice it). Writes ``benchmarks/results/interaction.json``.

Usage: ``.venv/bin/python benchmarks/bench_interaction.py [--n-null 300] [--n-effect 200]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import mkcell as mk

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402
from bench_calibration import ALPHA, _quiet, sample_sizes  # noqa: E402

ARMS = ("MDS_drug", "MDS", "control_drug", "control")
CONTRAST = [list(ARMS)]
MDS = np.array([1, 1, 0, 0])
DRUG = np.array([1, 0, 1, 0])

# pool: per-sample MkP share = P0 * 2^(disease + drug + interaction + mouse + litter)
P0 = 0.06
POOL_MDS, POOL_DRUG = 1.0, -0.7  # MDS doubles the pool; the drug shrinks it in both
POOL_SD = 0.4 / np.log(2)  # between-mouse sd on log2 (0.4 on the natural log, as the pairs)
LITTER_SD = 0.6  # litter effect (log2), shared by the litter's four mice
# maturation: per-sample mean pseudotime (cells Beta around it)
PT_BASE, PT_MDS, PT_DRUG, PT_SD, PT_CONC = 0.5, -0.08, 0.05, 0.07, 5.0
# scores: per-sample mean E2F score of MkP (cells normal around it)
SC_MDS, SC_DRUG, SC_SD = 0.3, -0.2, 0.3


def _arms(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cond = np.repeat(ARMS, k)
    return cond, np.repeat(MDS, k), np.repeat(DRUG, k)


def _adata(sizes: np.ndarray, cond: np.ndarray, litter: np.ndarray, **cols) -> ad.AnnData:
    obs = pd.DataFrame(
        {
            "sample": np.repeat([f"m{i}" for i in range(sizes.size)], sizes),
            "condition": np.repeat(cond, sizes),
            "litter": np.repeat(litter, sizes),
            **cols,
        }
    )
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=np.zeros((len(obs), 1), np.float32), obs=obs)


def pool(gen, k, spread, interaction, litters=False):
    cond, mds, drug = _arms(k)
    litter = np.tile([f"L{i}" for i in range(k)], 4)  # one mouse of each arm per litter
    lit = gen.normal(0, LITTER_SD, k)[np.tile(np.arange(k), 4)] if litters else 0.0
    log2p = POOL_MDS * mds + POOL_DRUG * drug + interaction * mds * drug
    log2p = log2p + POOL_SD * gen.normal(size=4 * k) + lit
    n = sample_sizes(gen, 4 * k, spread)
    y = gen.binomial(n, np.minimum(P0 * 2.0**log2p, 0.9))
    states = np.concatenate(
        [np.r_[np.full(a, "MkP"), np.full(b - a, "HSC/MPP")] for a, b in zip(y, n, strict=True)]
    )
    a = _adata(n, cond, litter, mk_state=states)
    design = "~ condition + litter" if litters else "~ condition"
    _quiet(mk.tl.progenitor_pool, a, contrasts=CONTRAST, denominator="all", design=design)
    r = a.uns["mk_pool"]["contrasts"].iloc[0]
    return r["p_value"], r["ci_low"], r["ci_high"], r["effect_log2"]


def maturation(gen, k, spread, interaction, litters=False):
    cond, mds, drug = _arms(k)
    m = PT_BASE + PT_MDS * mds + PT_DRUG * drug + interaction * mds * drug
    m = np.clip(m + PT_SD * gen.normal(size=4 * k), 0.05, 0.95)
    n = sample_sizes(gen, 4 * k, spread, base=300)
    pt = np.concatenate(
        [gen.beta(mi * PT_CONC, (1 - mi) * PT_CONC, ni) for mi, ni in zip(m, n, strict=True)]
    )
    a = _adata(n, cond, np.repeat("L", 4 * k), mk_pseudotime=pt)
    _quiet(mk.tl.maturation_shift, a, contrasts=CONTRAST, transition=0.5)
    r = a.uns["mk_maturation"]["contrasts"].iloc[0]
    return r["p_value"], r["mean_shift_ci_low"], r["mean_shift_ci_high"], r["mean_shift"]


def score(gen, k, spread, interaction, litters=False):
    cond, mds, drug = _arms(k)
    mu = SC_MDS * mds + SC_DRUG * drug + interaction * mds * drug
    mu = mu + SC_SD * gen.normal(size=4 * k)
    n = sample_sizes(gen, 4 * k, spread, base=60)
    x = np.concatenate([mi + gen.normal(size=ni) for mi, ni in zip(mu, n, strict=True)])
    a = _adata(
        n, cond, np.repeat("L", 4 * k), mk_state=np.full(x.size, "MkP"), mk_score_e2f_targets=x
    )
    _quiet(mk.tl.compare_scores, a, contrasts=CONTRAST, keys=["mk_score_e2f_targets"], min_cells=1)
    r = a.uns["mk_score_compare"]["table"].iloc[0]
    return r["p_value"], r["ci_low"], r["ci_high"], r["diff"]


#: (readout, function, mice per arm, sizes spread, litter blocking, planted interaction)
SCENARIOS = [
    ("pool", pool, 3, False, False, -1.0),
    ("pool", pool, 3, True, False, -1.0),
    ("pool", pool, 2, True, False, -1.5),
    ("pool", pool, 5, True, False, -1.0),
    ("pool", pool, 3, True, True, -1.0),
    ("maturation", maturation, 3, True, False, -0.15),
    ("score", score, 3, True, False, -0.6),
]


def run(n_null: int, n_effect: int, seed: int) -> list[dict]:
    rows = []
    for i, (name, f, k, spread, litters, effect) in enumerate(SCENARIOS):
        t0 = time.time()
        out = {}
        draws = (("null", n_null, 0.0), ("effect", n_effect, effect), ("x2", n_effect, 2 * effect))
        for j, (kind, n_draw, eff) in enumerate(draws):
            gen = np.random.default_rng([seed, i, j])
            out[kind] = np.array([f(gen, k, spread, eff, litters) for _ in range(n_draw)], float)
        null, alt = out["null"], out["effect"]
        se = float(np.sqrt(ALPHA * (1 - ALPHA) / len(null)))
        rows.append(
            {
                "readout": name,
                "mice_per_arm": k,
                "sizes": "spread 20-fold" if spread else "equal",
                "design": "~ condition + litter (litter effect)" if litters else "~ condition",
                "n_null": len(null),
                "n_effect": len(alt),
                "false_call_rate": float(np.mean(null[:, 0] < ALPHA)),
                "fpr_se": se,
                "fpr_limit": ALPHA + 2.33 * se,
                "coverage_null": float(np.mean((null[:, 1] <= 0) & (null[:, 2] >= 0))),
                "planted_interaction": effect,
                "power": float(np.mean(alt[:, 0] < ALPHA)),
                "power_at_twice": float(np.mean(out["x2"][:, 0] < ALPHA)),
                "coverage_effect": float(np.mean((alt[:, 1] <= effect) & (alt[:, 2] >= effect))),
                "median_estimate": float(np.median(alt[:, 3])),
                "seconds": round(time.time() - t0, 1),
            }
        )
        r = rows[-1]
        print(
            f"{name:10s} {k}/arm {r['sizes']:15s} {r['design']:38s} "
            f"fpr {r['false_call_rate']:.3f} (limit {r['fpr_limit']:.3f}) "
            f"cover0 {r['coverage_null']:.3f} power {r['power']:.3f} / {r['power_at_twice']:.3f} "
            f"coverE {r['coverage_effect']:.3f} est {r['median_estimate']:+.2f} "
            f"({r['seconds']} s)",
            flush=True,
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-null", type=int, default=300)
    ap.add_argument("--n-effect", type=int, default=200)
    ap.add_argument("--seed", type=int, default=28)
    args = ap.parse_args()
    rows = run(args.n_null, args.n_effect, args.seed)
    save(
        "interaction",
        {
            "what": "disease x drug interaction (MDS_drug vs MDS) vs (control_drug vs control)",
            "alpha": ALPHA,
            "null": "the drug changes the readout equally in MDS and controls (main effects "
            f"MDS {POOL_MDS:+} / drug {POOL_DRUG:+} log2 for the pool)",
            "planted_scale": "pool: log2 fraction; maturation: mean pseudotime; score: mean",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
