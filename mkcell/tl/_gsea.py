"""Patient-level GSEA of Hallmark sets on a samples x genes table.

The table is bulk RNA-seq or a pseudobulk of cells (:func:`pseudobulk`). Genes of a set
such as E2F or G2M targets move together across samples (each person's share of cycling
cells), so a test must respect inter-gene correlation: :func:`gsea` runs GSEA with
sample-label (phenotype) permutation, or a CAMERA-style competitive test
(:func:`mkcell.tl._camera.camera`) when the groups are too small to permute. Pre-ranked
GSEA with gene permutation (gseapy ``prerank``) is kept as an explicit option only; it is
not calibrated on such data.
"""

from __future__ import annotations

import math
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
TESTS = ("auto", "phenotype", "camera", "gene_permutation")
#: The ``method`` column of :func:`gsea`'s result, per test.
METHOD_LABELS = {
    "phenotype": "phenotype permutation",
    "camera": "camera (inter-gene correlation from residuals)",
    "gene_permutation": "gene permutation (not calibrated: ignores gene correlation)",
}
#: ``test="auto"`` permutes sample labels from this many samples in each group on: at 6 vs 6
#: (924 relabelings) phenotype permutation held its false-call rate and found more than camera
#: (docs/calibration.md); at 3 vs 3 its 20 relabelings cannot reach p < 0.05.
AUTO_MIN_PER_GROUP = 6
#: gseapy's phenotype permutation needs this many samples per group.
PHENOTYPE_MIN_PER_GROUP = 3
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
    "direction",
    "method",
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


def _resolve_test(test: str, n_a: int, n_b: int) -> str:
    """The test :func:`gsea` runs for ``test`` with ``n_a`` and ``n_b`` samples (logged)."""
    if test not in TESTS:
        msg = (
            f"test={test!r}; choose one of {list(TESTS)} ('auto': phenotype permutation "
            f"from {AUTO_MIN_PER_GROUP} samples per group, camera below)"
        )
        raise MkcellError(msg)
    small = min(n_a, n_b)
    if test == "phenotype" and small < PHENOTYPE_MIN_PER_GROUP:
        msg = (
            f"test='phenotype' permutes sample labels and needs >= {PHENOTYPE_MIN_PER_GROUP} "
            f"samples per group; the groups have {n_a} and {n_b}. Use test='camera'"
        )
        raise MkcellError(msg)
    if test != "auto":
        return test
    if small >= AUTO_MIN_PER_GROUP:
        logger.info(
            "gsea: test='auto' -> phenotype permutation (groups of %d and %d samples, "
            ">= %d each: enough sample relabelings for fine p-values)",
            n_a,
            n_b,
            AUTO_MIN_PER_GROUP,
        )
        return "phenotype"
    logger.info(
        "gsea: test='auto' -> camera (groups of %d and %d samples; below %d per group, "
        "sample-label permutation gives too few relabelings, so the inter-gene correlation "
        "is estimated from the residuals instead)",
        n_a,
        n_b,
        AUTO_MIN_PER_GROUP,
    )
    return "camera"


def _sized_sets(
    sets: Mapping[str, Sequence[str]], genes: pd.Index, min_size: int, max_size: int
) -> dict[str, list[str]]:
    """The sets' genes found in ``genes``, keeping sets of ``min_size`` to ``max_size`` genes."""
    have = set(genes)
    found = {k: [g for g in dict.fromkeys(v) if g in have] for k, v in sets.items()}
    kept = {k: v for k, v in found.items() if min_size <= len(v) <= max_size and len(v) < len(have)}
    if not kept:
        sizes = {k: len(v) for k, v in list(found.items())[:5]}
        msg = (
            f"no gene set has between min_size={min_size} and max_size={max_size} genes in the "
            f"table (sizes found, e.g. {sizes}); lower min_size or check the gene symbols"
        )
        raise MkcellError(msg)
    return kept


def _from_gseapy(r: pd.DataFrame) -> pd.DataFrame:
    tag = r["Tag %"].astype(str)
    return pd.DataFrame(
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


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    adj = np.maximum.accumulate((p.size - np.arange(p.size)) * p[order])
    out = np.empty_like(adj)
    out[order] = np.minimum(adj, 1.0)
    return out


def _run_camera(table: pd.DataFrame, a: np.ndarray, b: np.ndarray, sets: dict) -> pd.DataFrame:
    from ._camera import camera
    from ._inference import bh

    X = table.to_numpy(dtype=float)
    keep = (X.std(0) > 0) & ~table.columns.duplicated()
    genes = table.columns[keep]
    pos = {g: i for i, g in enumerate(genes)}
    index = {k: [pos[g] for g in v if g in pos] for k, v in sets.items()}
    index = {k: v for k, v in index.items() if 2 <= len(v) < len(genes)}
    if not index:
        msg = "no gene set keeps 2 or more genes that vary across samples; check the table"
        raise MkcellError(msg)
    res = camera(X[:, keep], a, b, index)
    p = res["p_value"].to_numpy()
    logger.info(
        "camera: %d genes, %d sets; inter-gene correlation per set from the residuals "
        "(median %.2f, max %.2f); variance of the set-vs-rest contrast inflated up to %.1fx",
        genes.size,
        len(index),
        float(res["correlation"].median()),
        float(res["correlation"].max()),
        float(res["contrast_vif"].max()),
    )
    return pd.DataFrame(
        {
            "term": res["term"],
            "nes": res["statistic"],
            "es": np.nan,
            "p_value": p,
            "fdr": bh(p),
            "fwer": _holm(p),
            "set_size": res["n_genes"],
            "tag": "",
            "lead_genes": "",
        }
    )


def _run_phenotype(
    table: pd.DataFrame,
    a: np.ndarray,
    b: np.ndarray,
    sets: dict,
    groups: Sequence[str],
    *,
    method: str,
    permutations: int,
    min_size: int,
    max_size: int,
    seed: int,
    threads: int,
) -> pd.DataFrame:
    import gseapy

    n_a, n_b = int(a.sum()), int(b.sum())
    relabelings = math.comb(n_a + n_b, n_a)
    if permutations > relabelings:
        logger.warning(
            "phenotype permutation: %d permutations asked but only %d distinct relabelings of "
            "%d + %d samples exist; p-values cannot go much below 1/%d = %.3g",
            permutations,
            relabelings,
            n_a,
            n_b,
            relabelings,
            1 / relabelings,
        )
    data = pd.concat([table.loc[a], table.loc[b]])
    data = data.loc[:, ~data.columns.duplicated() & (data.to_numpy(dtype=float).std(0) > 0)]
    # gseapy takes the class of the first sample as the positive phenotype
    labels = ["A"] * n_a + ["B"] * n_b
    logger.info(
        "GSEA phenotype permutation (%s = A, %s = B): %d genes, %d sets, %d permutations",
        groups[0],
        groups[1],
        data.shape[1],
        len(sets),
        permutations,
    )
    res = gseapy.gsea(
        data=data.T.set_axis([f"s{i}" for i in range(data.shape[0])], axis=1),
        gene_sets=sets,
        cls=labels,
        permutation_type="phenotype",
        method=method,
        permutation_num=permutations,
        min_size=min_size,
        max_size=max_size,
        seed=seed,
        threads=threads,
        outdir=None,
        no_plot=True,
        verbose=False,
    )
    if res.pheno_pos != "A" or res.permutation_type != "phenotype":
        msg = (
            "gseapy did not run a phenotype permutation with group A as the positive class "
            f"(pheno_pos={res.pheno_pos!r}, permutation_type={res.permutation_type!r})"
        )
        raise MkcellError(msg)
    return _from_gseapy(res.res2d)


def _run_prerank(
    table: pd.DataFrame,
    a: np.ndarray,
    b: np.ndarray,
    sets: dict,
    *,
    method: str,
    permutations: int,
    min_size: int,
    max_size: int,
    seed: int,
    threads: int,
) -> pd.DataFrame:
    import gseapy

    ranks = rank_genes(table, a, b, method=method)
    logger.warning(
        "gsea: test='gene_permutation' permutes genes, which ignores inter-gene correlation; "
        "correlated sets (E2F, G2M, mitotic spindle) come out significant on null cohorts. "
        "Its p-values are not calibrated: use test='auto', 'phenotype' or 'camera'"
    )
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
    return _from_gseapy(res.res2d)


def gsea(
    table: pd.DataFrame,
    sample_meta: pd.DataFrame,
    group_key: str,
    groups: Sequence[str] = ("MDS", "healthy"),
    *,
    test: Literal["auto", "phenotype", "camera", "gene_permutation"] = "auto",
    gene_sets: str | os.PathLike | Mapping[str, Sequence[str]] = "hallmark",
    method: Literal["signal_to_noise", "t_test"] = "signal_to_noise",
    permutations: int = 1000,
    min_size: int = 15,
    max_size: int = 500,
    transform: Literal["auto", "none", "log_cpm"] = "auto",
    seed: int = 0,
    threads: int = 1,
) -> pd.DataFrame:
    """Gene-set test of two groups of samples that respects inter-gene correlation.

    Genes of proliferation sets (E2F, G2M, mitotic spindle) rise and fall together with
    each sample's share of cycling cells; a test that permutes genes treats them as
    independent and calls such sets significant on null cohorts. The default therefore
    permutes sample labels, or, with too few samples for that, runs a CAMERA test.

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
        ``(A, B)``: positive NES (or camera statistic) means higher in A.
    test
        ``"phenotype"``: GSEA with sample-label permutation (gseapy ``gsea``; needs >= 3
        samples per group; the p-values cannot go below about 1 / C(n_A + n_B, n_A)).
        ``"camera"``: CAMERA competitive test (Wu & Smyth 2012) with each set's
        inter-gene correlation estimated from the residuals of a per-gene two-group
        model (moderated t); the variance of the set-vs-other-genes contrast also counts
        the correlation among the other genes (a large co-moving proliferation block
        would otherwise make unrelated sets look down); see
        :func:`mkcell.tl._camera.camera`.
        ``"gene_permutation"``: pre-ranked GSEA with gene permutation (gseapy
        ``prerank``); not calibrated for correlated sets, kept for comparison only.
        ``"auto"``: ``"phenotype"`` when both groups have >= 6 samples, else ``"camera"``.
    gene_sets
        ``"hallmark"`` (the 50 MSigDB Hallmark sets), a GMT path or ``{name: genes}``.
        Human sets on a mouse table are mapped to mouse orthologs.
    method
        Gene ranking of the GSEA tests: ``"signal_to_noise"`` or ``"t_test"``; see
        :func:`rank_genes` (camera uses moderated t statistics).
    permutations
        Permutations of the GSEA tests (sample labels or genes).
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
    One row per set: term; nes (GSEA normalised enrichment score; for camera the signed
    camera statistic, a t statistic of the set's mean gene z-score against the other
    genes with variance inflated by the set's inter-gene correlation); es (GSEA
    enrichment score, NaN for camera); p_value (camera: two-sided); fdr (GSEA's FDR;
    camera: Benjamini-Hochberg over the sets); fwer (GSEA's FWER; camera: Holm);
    set_size; tag (hits / set size, GSEA only); lead_genes (``;``-joined, GSEA only);
    genes (the set's genes found in the table, after mapping to its species;
    ``;``-joined, what :func:`mkcell.pl.e2f_heatmap` draws); direction (``"Up"`` in A or
    ``"Down"``); method (the test that ran, see ``METHOD_LABELS``). Sorted by nes;
    parameters, with ``test`` and the test that ran (``test_used``), in
    ``.attrs['params']``.
    """
    if method not in RANKINGS:
        msg = f"method={method!r}; choose one of {list(RANKINGS)}"
        raise MkcellError(msg)
    if not isinstance(permutations, int | np.integer) or permutations < 1:
        msg = f"permutations={permutations!r}; give a positive integer"
        raise MkcellError(msg)
    a, b = _align(table, sample_meta, group_key, groups)
    used = _resolve_test(test, int(a.sum()), int(b.sum()))
    table = _to_log(table, transform)
    table = table.set_axis(table.columns.astype(str), axis=1)
    sets = _gene_sets(gene_sets, table.columns)
    sets = _sized_sets(sets, table.columns, min_size, max_size)
    kw = {"method": method, "permutations": permutations, "seed": seed, "threads": threads}
    if used == "camera":
        out = _run_camera(table, a, b, sets)
    elif used == "phenotype":
        out = _run_phenotype(table, a, b, sets, groups, min_size=min_size, max_size=max_size, **kw)
    else:
        out = _run_prerank(table, a, b, sets, min_size=min_size, max_size=max_size, **kw)
    out["genes"] = out["term"].map({k: ";".join(v) for k, v in sets.items()}).fillna("")
    nes = out["nes"].to_numpy(dtype=float)
    out["direction"] = np.where(nes > 0, "Up", np.where(nes < 0, "Down", ""))
    out["method"] = METHOD_LABELS[used]
    out = out.sort_values("nes", ascending=False, ignore_index=True)[COLUMNS]
    out.attrs["params"] = {
        "group_key": group_key,
        "groups": [str(g) for g in groups],
        "n_a": int(a.sum()),
        "n_b": int(b.sum()),
        "test": test,
        "test_used": used,
        "test_label": METHOD_LABELS[used],
        "gene_sets": gene_sets if isinstance(gene_sets, str) else "custom",
        "method": method,
        "permutations": permutations,
        "min_size": min_size,
        "max_size": max_size,
        "seed": seed,
    }
    return out
