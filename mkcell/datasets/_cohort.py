"""A simulated patient cohort: bulk HSPC-like profiles, per-patient cells and platelet counts.

The seed study's patient-level claim, planted with known truth: patients with fewer
platelets carry a stronger E2F / G2M proliferation programme (with AURKA, AURKB, PLK1)
and a larger MkP pool, and a subset of them (``truth_low_platelet_subset``) is planted
with low platelets. ``null=True`` keeps every programme but makes platelets unrelated to
it (they are shuffled across patients), for calibration.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._genesets import AURORA, builtin_sets, hallmark_sets
from .._settings import MkcellError, logger
from .._utils import rng

#: Platelet counts (x 10^9/L): median of the planted low subset and of the other patients.
LOW_MEDIAN, NORMAL_MEDIAN = 60.0, 250.0
#: Share of each cell state in a patient of average programme activity (sums to 1).
STATE_SHARES = {
    K.HSC_MPP: 0.30,
    K.MEP: 0.15,
    K.MKP: 0.08,
    K.MK: 0.12,
    K.ERYTHROID: 0.20,
    K.MYELOID: 0.15,
}
#: Genes of the cell panel beyond the proliferation sets.
N_PANEL_OTHER = 200


def _genes(n_genes: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Gene symbols (Hallmark genes first, then fillers), E2F(+Aurora) and G2M-only masks."""
    e2f = set(builtin_sets()["HALLMARK_E2F_TARGETS"]) | set(AURORA)
    g2m = set(builtin_sets()["HALLMARK_G2M_CHECKPOINT"]) - e2f
    hall = sorted({g for v in hallmark_sets().values() for g in v} | e2f)
    prolif = sorted(e2f | g2m)
    rest = [g for g in hall if g not in e2f and g not in g2m]
    genes = prolif + rest
    if n_genes < len(prolif) + 50:
        msg = f"n_genes={n_genes}; give at least {len(prolif) + 50} (the E2F and G2M sets + 50)"
        raise MkcellError(msg)
    genes = genes[:n_genes] + [f"SIMG{i:05d}" for i in range(max(0, n_genes - len(genes)))]
    return genes, np.isin(genes, sorted(e2f)), np.isin(genes, sorted(g2m))


def simulate_cohort(
    n_patients: int = 24,
    *,
    platelet_effect: float = 1.0,
    n_genes: int = 6000,
    n_cells: int = 300,
    low_fraction: float = 1 / 3,
    null: bool = False,
    seed: int = 0,
) -> dict[str, AnnData | pd.DataFrame | None]:
    """Simulate a cohort of patients with platelet counts and a planted proliferation axis.

    Each patient ``i`` has a programme activity ``a_i = platelet_effect * (-z_i) +
    N(0, 0.5)``, ``z_i`` the standardised log2 platelet count. It raises the Hallmark E2F
    targets and AURKA / AURKB / PLK1 (loadings 0.3 to 0.7 log2 units per unit of ``a``),
    the other G2M genes (0.2 to 0.5), the MkP share of the cells (``exp(0.5 a)``), the E2F,
    G2M and Aurora scores of MkP cells, and lowers the Mk maturation pseudotime. A share
    ``low_fraction`` of the patients is planted with low platelets (median 60 x 10^9/L,
    the others 250). Genes also share 5 random latent factors (correlated genes, as in
    real data).

    Parameters
    ----------
    n_patients
        Number of patients (samples).
    platelet_effect
        Strength of the platelet -> programme link (0: none).
    n_genes
        Genes of the bulk table (Hallmark genes, then ``SIMG…`` fillers).
    n_cells
        Cells per patient of the single-cell part (0: none).
    low_fraction
        Share of patients in the planted low-platelet subset.
    null
        Shuffle the platelet counts (and the subset truth with them) across patients after
        simulating: platelets then say nothing of the programme.
    seed
        Random seed.

    Returns
    -------
    ``{"bulk": AnnData, "cells": AnnData | None, "samples": DataFrame}``. ``bulk``:
    patients x genes counts in ``X`` (and ``layers['counts']``), log2(CPM + 1) in
    ``layers['log_expression']``, ``obs`` the sample table. ``cells``: cells x a panel of
    genes (counts), ``obs`` with sample, species, condition, ``mk_state``, the
    ``mk_score_*`` columns and ``mk_pseudotime``, as if annotated and scored (the platelet
    counts are not in it: join ``samples`` with :func:`mkcell.io.join_samples`).
    ``samples``: one row per patient (platelets, age, sex, condition,
    ``truth_low_platelet_subset``, ``truth_activity``).
    """
    if n_patients < 4 or not 0 < low_fraction < 1:
        msg = f"n_patients={n_patients}, low_fraction={low_fraction}; need >= 4 and 0 < share < 1"
        raise MkcellError(msg)
    r = rng(seed)
    samples = _patients(n_patients, platelet_effect, low_fraction, null, r)
    genes, e2f, g2m = _genes(n_genes)
    log_cpm, counts = _bulk(samples["truth_activity"].to_numpy(), e2f, g2m, r)
    bulk = AnnData(
        X=counts.astype(np.float32),
        obs=samples.copy(),
        var=pd.DataFrame(index=pd.Index(genes, name="gene")),
    )
    bulk.layers[K.COUNTS] = bulk.X.copy()
    lib = counts.sum(1, keepdims=True)
    bulk.layers[K.LOG_EXPRESSION] = np.log2(counts / lib * 1e6 + 1).astype(np.float32)
    truth = {
        "platelet_effect": float(platelet_effect),
        "null": bool(null),
        "e2f_genes": [g for g, m in zip(genes, e2f, strict=True) if m],
        "seed": seed,
    }
    bulk.uns[K.TRUTH] = truth
    bulk.uns[K.BULK] = {"path": "", "format": "simulated", "kind": "counts", "orientation": ""}
    cells = None
    if n_cells > 0:
        cells = _cells(samples, log_cpm, genes, e2f | g2m, n_cells, r)
        cells.uns[K.TRUTH] = truth
    logger.info(
        "simulated cohort: %d patients (%d in the low-platelet subset), %d genes, %d cells%s",
        n_patients,
        int(samples["truth_low_platelet_subset"].sum()),
        n_genes,
        0 if cells is None else cells.n_obs,
        " (null: platelets shuffled)" if null else "",
    )
    return {"bulk": bulk, "cells": cells, "samples": samples}


def _patients(
    n: int, effect: float, low_fraction: float, null: bool, r: np.random.Generator
) -> pd.DataFrame:
    n_low = max(1, round(n * low_fraction))
    low = np.zeros(n, bool)
    low[r.choice(n, n_low, replace=False)] = True
    platelets = np.where(
        low, LOW_MEDIAN * np.exp(r.normal(0, 0.35, n)), NORMAL_MEDIAN * np.exp(r.normal(0, 0.3, n))
    ).round()
    x = np.log2(platelets)
    activity = effect * -(x - x.mean()) / x.std() + r.normal(0, 0.5, n)
    if null:
        order = r.permutation(n)
        platelets, low = platelets[order], low[order]
    condition = np.where(low | (r.random(n) < 0.5), "MDS", "control")
    ids = pd.Index([f"P{i + 1:03d}" for i in range(n)], name=K.SAMPLE)
    return pd.DataFrame(
        {
            "platelets": platelets.astype(float),
            "age": r.uniform(40, 85, n).round(),
            "sex": r.choice(["F", "M"], n),
            K.CONDITION: condition,
            "truth_low_platelet_subset": low,
            "truth_activity": activity,
        },
        index=ids,
    )


def _bulk(
    activity: np.ndarray, e2f: np.ndarray, g2m: np.ndarray, r: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient log2 expression (relative) and Poisson counts of the bulk table."""
    n, G = activity.size, e2f.size
    base = np.clip(r.normal(4.0, 2.0, G), -1, 11)
    load = np.zeros(G)
    load[e2f] = r.uniform(0.3, 0.7, int(e2f.sum()))
    load[g2m] = r.uniform(0.2, 0.5, int(g2m.sum()))
    factors = r.normal(0, 1, (n, 5)) @ r.normal(0, 0.15, (5, G))
    log_expr = base + activity[:, None] * load + factors + r.normal(0, 0.25, (n, G))
    rel = np.exp2(log_expr)
    rel /= rel.sum(1, keepdims=True)
    lib = r.uniform(1.5e7, 3e7, n)
    return log_expr, r.poisson(rel * lib[:, None]).astype(np.float64)


def _cells(
    samples: pd.DataFrame,
    log_expr: np.ndarray,
    genes: list[str],
    prolif: np.ndarray,
    n_cells: int,
    r: np.random.Generator,
) -> AnnData:
    """Annotated, scored cells per patient; counts of a gene panel from the patient profile."""
    others = np.flatnonzero(~prolif)
    panel = np.sort(
        np.concatenate(
            [
                np.flatnonzero(prolif),
                r.choice(others, min(N_PANEL_OTHER, others.size), replace=False),
            ]
        )
    )
    states = np.array(list(STATE_SHARES))
    obs, blocks = [], []
    for i, (sample, row) in enumerate(samples.iterrows()):
        a = float(row["truth_activity"])
        share = np.array(list(STATE_SHARES.values()))
        share[states == K.MKP] *= np.exp(0.5 * a + r.normal(0, 0.15))
        st = r.choice(states, n_cells, p=share / share.sum())
        mkp, mk = st == K.MKP, st == K.MK
        off = r.normal(0, 0.15, 3)
        df = pd.DataFrame(
            {K.SAMPLE: sample, K.SPECIES: "human", K.CONDITION: row[K.CONDITION]},
            index=range(n_cells),
        )
        df[K.STATE] = st
        for j, (name, w) in enumerate(
            (("e2f_targets", 0.4), ("g2m_checkpoint", 0.3), ("aurora", 0.3))
        ):
            df[K.SCORE_PREFIX + name] = r.normal(0, 0.6, n_cells) + mkp * (0.3 + w * a + off[j])
        t = np.full(n_cells, np.nan)
        t[mkp] = r.uniform(0, 0.35, int(mkp.sum()))
        t[mk] = np.clip(r.beta(4, 2, int(mk.sum())) - 0.06 * a, 0.3, 1.0)
        df[K.PSEUDOTIME] = t
        obs.append(df)
        rate = np.exp2(log_expr[i, panel])
        rate = rate / rate.sum() * 2000
        size = r.lognormal(0, 0.3, n_cells)
        blocks.append(sp.csr_matrix(r.poisson(size[:, None] * rate[None, :]).astype(np.float32)))
    obs_df = pd.concat(obs, ignore_index=True)
    obs_df.index = [f"c{i}" for i in range(len(obs_df))]
    obs_df[K.STATE] = pd.Categorical(obs_df[K.STATE], categories=list(K.STATES))
    return AnnData(
        X=sp.vstack(blocks).tocsr(),
        obs=obs_df,
        var=pd.DataFrame(index=pd.Index([genes[j] for j in panel], name="gene")),
    )


def write_geo_series_matrix(
    adata: AnnData,
    path: str | os.PathLike,
    *,
    layer: str | None = K.LOG_EXPRESSION,
    duplicate_share: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Write samples x genes as a GEO series-matrix file (gzipped for a ``.gz`` path), for tests.

    Each gene becomes a probe ``<n>_at``; a share ``duplicate_share`` of the genes gets a
    second probe (``<n>_s_at``, values lowered by 1, so that ``max_mean`` keeps the
    first). ``obs`` columns become ``!Sample_characteristics_ch1`` lines (``key: value``).

    Parameters
    ----------
    adata
        Samples x genes (e.g. ``simulate_cohort()["bulk"]``).
    path
        Output file.
    layer
        Layer written (``None``: ``X``).
    duplicate_share
        Share of genes with a second, lower probe.
    seed
        Which genes get a second probe.

    Returns
    -------
    The probe annotation (columns ``ID`` and ``Gene Symbol``) for
    :func:`mkcell.io.read_bulk`'s ``probe_annotation``.
    """
    X = np.asarray(adata.X if layer is None else adata.layers[layer], dtype=float)
    genes = adata.var_names.astype(str)
    probes = [f"{i + 1}_at" for i in range(genes.size)]
    dup = rng(seed).random(genes.size) < duplicate_share
    rows = [X.T]
    names, symbols = list(probes), list(genes)
    if dup.any():
        rows.append(X.T[dup] - 1.0)
        names += [f"{i + 1}_s_at" for i in np.flatnonzero(dup)]
        symbols += list(genes[dup])
    values = np.vstack(rows)
    samples = adata.obs_names.astype(str)
    q = lambda v: f'"{v}"'  # noqa: E731
    lines = [
        "!Series_title\t" + q("mkcell simulated cohort"),
        "!Series_geo_accession\t" + q("GSE000000"),
        "!Sample_title\t" + "\t".join(q(s) for s in samples),
        "!Sample_geo_accession\t" + "\t".join(q(s) for s in samples),
    ]
    for col in adata.obs.columns:
        vals = adata.obs[col].astype(str)
        lines.append("!Sample_characteristics_ch1\t" + "\t".join(q(f"{col}: {v}") for v in vals))
    lines.append("!series_matrix_table_begin")
    lines.append("\t".join([q("ID_REF"), *(q(s) for s in samples)]))
    lines += [
        q(p) + "\t" + "\t".join(f"{v:.4f}" for v in row)
        for p, row in zip(names, values, strict=True)
    ]
    lines.append("!series_matrix_table_end")
    text = "\n".join(lines) + "\n"
    path = Path(path)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    logger.info("wrote series matrix %s: %d probes x %d samples", path, len(names), samples.size)
    return pd.DataFrame({"ID": names, "Gene Symbol": symbols})
