"""Patient-level pre-ranked GSEA of Hallmark sets on a samples x genes table.

The table is bulk RNA-seq or a pseudobulk of cells (:func:`pseudobulk`); genes are
ranked by a signal-to-noise ratio or a t statistic between two groups of samples and
tested with gseapy ``prerank``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._genesets import hallmark_sets, read_gmt
from .._settings import MkcellError, MkcellWarning, logger
from .._species import detect_species
from .._utils import check_adata, check_obs_key, get_counts
from ._score import translate_genes

RANKINGS = ("signal_to_noise", "t_test")
COLUMNS = [
    "term",
    "nes",
    "es",
    "p_value",
    "fdr",
    "fwer",
    "set_size",
    "tag",
    "lead_genes",
    "genes",
]


def pseudobulk(
    adata: AnnData,
    sample_key: str = K.SAMPLE,
    *,
    state: str | Sequence[str] | None = None,
    state_key: str = K.STATE,
    species: str | None = None,
    species_key: str = K.SPECIES,
    layer: str | None = None,
    min_cells: int = 10,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum counts per sample and return log2(CPM + 1) with per-sample metadata.

    Parameters
    ----------
    adata
        Cells with raw counts (``layer``, ``layers['counts']`` or ``X``).
    sample_key
        ``adata.obs`` column of samples.
    state
        Only cells of this state (or states) in ``adata.obs[state_key]``; ``None`` all cells.
    state_key
        ``adata.obs`` column of states.
    species
        Only cells of this species in ``adata.obs[species_key]``.
    species_key
        ``adata.obs`` column of species.
    layer
        Layer of raw counts.
    min_cells
        Samples with fewer cells are dropped (logged).

    Returns
    -------
    ``(table, meta)``: samples x genes log2(CPM + 1), and per-sample metadata (the
    ``obs`` columns constant within each sample, plus ``n_cells`` and ``total_counts``).
    """
    check_adata(adata)
    check_obs_key(adata, sample_key, what="sample column")
    counts = get_counts(adata, layer)
    mask = np.ones(adata.n_obs, dtype=bool)
    if state is not None:
        check_obs_key(
            adata, state_key, what="state annotation (run mk.tl.annotate first or pass state_key=)"
        )
        states = [state] if isinstance(state, str) else list(state)
        mask &= adata.obs[state_key].astype(str).isin(states).to_numpy()
    if species is not None:
        check_obs_key(adata, species_key, what="species column")
        mask &= (adata.obs[species_key].astype(str) == species).to_numpy()
    if not mask.any():
        msg = f"no cells left after choosing state={state!r}, species={species!r}"
        raise MkcellError(msg)
    obs = adata.obs.loc[mask]
    samples, codes = np.unique(obs[sample_key].astype(str).to_numpy(), return_inverse=True)
    agg = sp.csr_matrix(
        (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(samples.size, codes.size)
    )
    summed = agg @ counts[mask]
    summed = summed.toarray() if sp.issparse(summed) else np.asarray(summed)
    n_cells = np.bincount(codes, minlength=samples.size)
    keep = n_cells >= min_cells
    if not keep.all():
        logger.info(
            "pseudobulk: dropped samples with fewer than %d cells: %s",
            min_cells,
            list(samples[~keep]),
        )
    if not keep.any():
        msg = f"no sample has >= {min_cells} cells; lower min_cells"
        raise MkcellError(msg)
    total = summed.sum(axis=1)
    cpm = summed / np.maximum(total, 1)[:, None] * 1e6
    table = pd.DataFrame(
        np.log2(cpm + 1),
        index=pd.Index(samples, name="sample"),
        columns=adata.var_names.astype(str),
    )
    grp = obs.groupby(obs[sample_key].astype(str), observed=True)
    const = [
        c for c in obs.columns if c != sample_key and (grp[c].nunique(dropna=False) <= 1).all()
    ]
    meta = grp[const].first().reindex(samples) if const else pd.DataFrame(index=samples)
    meta = meta.assign(n_cells=n_cells, total_counts=total)
    meta.index.name = "sample"
    return table[keep], meta[keep]


def _align(
    table: pd.DataFrame, sample_meta: pd.DataFrame, group_key: str, groups: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(table, pd.DataFrame) or not isinstance(sample_meta, pd.DataFrame):
        msg = (
            "table and sample_meta must be pandas DataFrames (samples x genes; samples x metadata)"
        )
        raise TypeError(msg)
    if group_key not in sample_meta.columns:
        msg = f"no column {group_key!r} in sample_meta; columns: {list(sample_meta.columns)}"
        raise MkcellError(msg)
    if len(groups) != 2 or groups[0] == groups[1]:
        msg = f"groups={groups!r}; give two different groups (A, B) of sample_meta[{group_key!r}]"
        raise MkcellError(msg)
    idx = table.index.astype(str)
    meta_idx = sample_meta.index.astype(str)
    missing = idx.difference(meta_idx)
    if len(missing):
        msg = (
            f"{len(missing)} samples of the table are not in sample_meta's index "
            f"(e.g. {list(missing[:3])}); "
            "index sample_meta by the table's sample names (rows of table)"
        )
        raise MkcellError(msg)
    g = sample_meta.set_axis(meta_idx).loc[idx, group_key].astype(str).to_numpy()
    a, b = g == str(groups[0]), g == str(groups[1])
    if a.sum() < 2 or b.sum() < 2:
        msg = (
            f"groups {groups[0]!r} and {groups[1]!r} have {a.sum()} and {b.sum()} samples in "
            f"sample_meta[{group_key!r}]; need at least 2 each (values: {sorted(set(g))})"
        )
        raise MkcellError(msg)
    return a, b


def _to_log(table: pd.DataFrame, transform: str) -> pd.DataFrame:
    if transform not in ("auto", "none", "log_cpm"):
        msg = f"transform={transform!r}; choose 'auto', 'none' or 'log_cpm'"
        raise MkcellError(msg)
    X = table.to_numpy(dtype=float)
    if not np.isfinite(X).all():
        msg = "the expression table holds NaN or inf; fill or drop those genes first"
        raise MkcellError(msg)
    looks_counts = bool((X >= 0).all() and np.allclose(X, np.round(X)) and X.max() > 100)
    if transform == "log_cpm" or (transform == "auto" and looks_counts):
        if (X < 0).any():
            msg = "transform='log_cpm' needs non-negative counts"
            raise MkcellError(msg)
        logger.info("expression table looks like counts: using log2(CPM + 1)")
        X = np.log2(X / np.maximum(X.sum(1, keepdims=True), 1) * 1e6 + 1)
        return pd.DataFrame(X, index=table.index, columns=table.columns)
    return table


def rank_genes(
    table: pd.DataFrame,
    a: np.ndarray,
    b: np.ndarray,
    *,
    method: Literal["signal_to_noise", "t_test"] = "signal_to_noise",
) -> pd.Series:
    """Rank genes between two groups of samples (rows of ``table``).

    Parameters
    ----------
    table
        Samples x genes log-scale expression.
    a, b
        Boolean masks of the samples of groups A and B.
    method
        ``"signal_to_noise"`` ((mean_A - mean_B) / (sd_A + sd_B), GSEA's floor
        sd >= 0.2 |mean|) or ``"t_test"`` (Welch t with the same floor).

    Returns
    -------
    The statistic per gene, sorted decreasing (genes constant in both groups dropped).
    """
    if method not in RANKINGS:
        msg = f"method={method!r}; choose one of {list(RANKINGS)}"
        raise MkcellError(msg)
    X = table.to_numpy(dtype=float)
    xa, xb = X[a], X[b]
    ma, mb = xa.mean(0), xb.mean(0)
    sa, sb = xa.std(0, ddof=1), xb.std(0, ddof=1)
    sa = np.maximum(sa, np.where(ma == 0, 0.2, 0.2 * np.abs(ma)))
    sb = np.maximum(sb, np.where(mb == 0, 0.2, 0.2 * np.abs(mb)))
    stat = (
        (ma - mb) / (sa + sb)
        if method == "signal_to_noise"
        else (ma - mb) / np.sqrt(sa**2 / a.sum() + sb**2 / b.sum())
    )
    varies = (xa.std(0) > 0) | (xb.std(0) > 0) | (ma != mb)
    out = pd.Series(stat[varies], index=table.columns.astype(str)[varies], name=method)
    out = out[~out.index.duplicated()]
    return out.sort_values(ascending=False)


def _gene_sets(
    gene_sets: str | os.PathLike | Mapping[str, Sequence[str]], genes: pd.Index
) -> dict[str, list[str]]:
    if isinstance(gene_sets, Mapping):
        sets = {str(k): list(map(str, v)) for k, v in gene_sets.items()}
    elif str(gene_sets).lower() == "hallmark":
        sets = hallmark_sets()
    elif Path(gene_sets).suffix.lower() == ".gmt" or Path(gene_sets).is_file():
        sets = read_gmt(gene_sets)
    else:
        msg = f"gene_sets={gene_sets!r}; pass 'hallmark', a .gmt path or a {{name: genes}} dict"
        raise MkcellError(msg)
    table_sp = detect_species(list(genes))
    sets_sp = detect_species([g for v in sets.values() for g in v])
    if table_sp and sets_sp and table_sp != sets_sp:
        given = len({g for v in sets.values() for g in v} & set(genes))
        sets = {k: translate_genes(v, sets_sp, table_sp)[0] for k, v in sets.items()}
        after = len({g for v in sets.values() for g in v} & set(genes))
        how = (
            "as expected for the built-in human Hallmarks"
            if str(gene_sets).lower() == "hallmark"
            else ""
        )
        text = (
            f"gene sets are in {sets_sp} symbols and the table in {table_sp} symbols: "
            f"{given} genes overlap as given, {after} after mapping to {table_sp} orthologs "
            "(HGNC HCOP + Ensembl); used the mapped sets"
        )
        if how:
            logger.info("%s (%s)", text, how)
        else:
            warnings.warn(text, MkcellWarning, stacklevel=3)
    return sets


def gsea(
    table: pd.DataFrame,
    sample_meta: pd.DataFrame,
    group_key: str,
    groups: Sequence[str] = ("MDS", "healthy"),
    *,
    gene_sets: str | os.PathLike | Mapping[str, Sequence[str]] = "hallmark",
    method: Literal["signal_to_noise", "t_test"] = "signal_to_noise",
    permutations: int = 1000,
    min_size: int = 15,
    max_size: int = 500,
    transform: Literal["auto", "none", "log_cpm"] = "auto",
    seed: int = 0,
    threads: int = 1,
) -> pd.DataFrame:
    """Pre-ranked GSEA (gseapy ``prerank``) of two groups of samples.

    Parameters
    ----------
    table
        Samples x genes expression (bulk or :func:`pseudobulk`), log scale; raw counts are
        detected (``transform="auto"``) and turned into log2(CPM + 1).
    sample_meta
        Per-sample metadata indexed by the table's sample names.
    group_key
        Column of ``sample_meta`` with the groups.
    groups
        ``(A, B)``: positive NES means higher in A.
    gene_sets
        ``"hallmark"`` (the 50 MSigDB Hallmark sets), a GMT path or ``{name: genes}``.
        Human sets on a mouse table are mapped to mouse orthologs.
    method
        Gene ranking: ``"signal_to_noise"`` or ``"t_test"``; see :func:`rank_genes`.
    permutations
        Gene-set permutations of gseapy.
    min_size, max_size
        Sizes of the sets tested (after matching the table's genes).
    transform
        ``"auto"``, ``"none"`` or ``"log_cpm"``.
    seed
        Seed of the permutations.
    threads
        gseapy threads.

    Returns
    -------
    term, nes, es, p_value, fdr, fwer, set_size, tag (hits / set size), lead_genes
    (``;``-joined), genes (the set's genes found in the table, after mapping to its
    species; ``;``-joined, what :func:`mkcell.pl.e2f_heatmap` draws), sorted by NES;
    parameters in ``.attrs['params']`` (the ranking itself: :func:`rank_genes`).
    """
    import gseapy

    a, b = _align(table, sample_meta, group_key, groups)
    table = _to_log(table, transform)
    ranks = rank_genes(table, a, b, method=method)
    sets = _gene_sets(gene_sets, ranks.index)
    logger.info(
        "GSEA prerank: %d genes, %d sets, %d permutations", ranks.size, len(sets), permutations
    )
    res = gseapy.prerank(
        rnk=ranks,
        gene_sets=sets,
        min_size=min_size,
        max_size=max_size,
        permutation_num=permutations,
        seed=seed,
        threads=threads,
        outdir=None,
        no_plot=True,
        verbose=False,
    )
    r = res.res2d
    tag = r["Tag %"].astype(str)
    out = pd.DataFrame(
        {
            "term": r["Term"].astype(str),
            "nes": pd.to_numeric(r["NES"]),
            "es": pd.to_numeric(r["ES"]),
            "p_value": pd.to_numeric(r["NOM p-val"]),
            "fdr": pd.to_numeric(r["FDR q-val"]),
            "fwer": pd.to_numeric(r["FWER p-val"]),
            "set_size": tag.str.split("/").str[1].astype(int),
            "tag": tag,
            "lead_genes": r["Lead_genes"].astype(str),
        }
    )
    in_table = set(table.columns.astype(str))
    found = {k: ";".join(g for g in dict.fromkeys(v) if g in in_table) for k, v in sets.items()}
    out["genes"] = out["term"].map(found).fillna("")
    out = out.sort_values("nes", ascending=False, ignore_index=True)[COLUMNS]
    out.attrs["params"] = {
        "group_key": group_key,
        "groups": [str(g) for g in groups],
        "n_a": int(a.sum()),
        "n_b": int(b.sum()),
        "gene_sets": gene_sets if isinstance(gene_sets, str) else "custom",
        "method": method,
        "permutations": permutations,
        "min_size": min_size,
        "max_size": max_size,
        "seed": seed,
    }
    return out
