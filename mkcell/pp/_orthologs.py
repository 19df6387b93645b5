"""Map gene symbols between mouse and human through HGNC HCOP and Ensembl orthologs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._ortholog_table import BIOMART_ONE2ONE_BONUS, best_partners
from .._settings import MkcellError, logger
from .._species import symbol_styles
from .._utils import check_adata, get_counts, log_write


def _check_species_names(source: str, target: str) -> None:
    for name, value in (("source", source), ("target", target)):
        if value not in K.SPECIES_NAMES:
            msg = f"{name}={value!r} is not supported; mkcell maps between 'mouse' and 'human'"
            raise MkcellError(msg)
    if source == target:
        msg = f"source and target are both {source!r}; nothing to map"
        raise MkcellError(msg)


def map_orthologs(
    adata: AnnData,
    source: str = "mouse",
    target: str = "human",
    *,
    keep_unmapped: bool = False,
    layer: str | None = None,
) -> AnnData:
    """Translate the genes of ``adata`` to the orthologous genes of another species.

    Each ``source`` gene goes to its best-supported ``target`` partner: candidates from
    HGNC HCOP and Ensembl BioMart are ranked by the number of HCOP resources that
    support the pair, plus a bonus of 2 when Ensembl calls the pair one-to-one; ties
    go to the alphabetically first partner and are flagged. Several source genes
    mapping to one target gene are merged by summing their counts. Source genes
    with no ortholog are dropped, or kept under their own symbol when
    ``keep_unmapped=True`` (species-only genes). Pf4 <-> PF4 and POLD3/ATAD2/CDKN2A/
    HMGN2, which BioMart lacks, come from HCOP.

    Parameters
    ----------
    adata
        Raw counts (``adata.layers['counts']`` if present, else ``adata.X``) with
        ``source`` gene symbols as ``var_names``.
    source, target
        ``"mouse"`` or ``"human"``.
    keep_unmapped
        Keep genes without an ortholog under their own symbol.
    layer
        Layer with raw counts (default: ``counts`` if present, else ``X``).

    Returns
    -------
    A new AnnData (the gene axis changes, so this cannot be done in place) with
    counts in ``X`` and ``layers['counts']``, ``obs`` copied, and the per-gene report
    in ``uns['mk_orthologs']['genes']`` (columns source_gene, target_gene, status
    in kept / merged / dropped / species_only, reason, hcop_support, biomart_type).
    """
    out = translate_counts(adata, source, target, keep_unmapped=keep_unmapped, layer=layer)
    out.layers[K.COUNTS] = out.X.copy()
    return out


def translate_counts(
    adata: AnnData,
    source: str = "mouse",
    target: str = "human",
    *,
    keep_unmapped: bool = False,
    layer: str | None = None,
) -> AnnData:
    """:func:`map_orthologs` with the counts in ``X`` only (no ``layers['counts']`` copy)."""
    check_adata(adata)
    _check_species_names(source, target)
    counts = get_counts(adata, layer)
    genes = adata.var_names.astype(str)
    if genes.has_duplicates:
        dup = genes[genes.duplicated()].unique()[:5].tolist()
        msg = (
            f"adata.var_names has duplicated genes (e.g. {dup}); "
            "run adata.var_names_make_unique() first"
        )
        raise MkcellError(msg)
    hit = best_partners(source).reindex(genes)
    mapped = hit[target].notna().to_numpy()
    if mapped.mean() < 0.05:
        _refuse_few_orthologs(genes, mapped, source, target)
    report = _gene_report(genes, hit, mapped, source, target, keep_unmapped)
    out = _sum_into_targets(counts, adata.obs, report, mapped, source, keep_unmapped)
    summary = report["status"].value_counts().to_dict()
    out.uns[K.ORTHOLOGS] = {
        "genes": report[
            ["source_gene", "target_gene", "status", "reason", "hcop_support", "biomart_type"]
        ],
        "summary": {k: int(v) for k, v in summary.items()},
        "params": {
            "source": source,
            "target": target,
            "keep_unmapped": keep_unmapped,
            "rule": (
                f"rank by HCOP support + {BIOMART_ONE2ONE_BONUS} if Ensembl one2one; "
                "ties alphabetical; many-to-one summed"
            ),
        },
    }
    logger.info(
        "mapped %d %s genes to %d %s genes (%s)",
        len(genes),
        source,
        out.n_vars,
        target,
        ", ".join(f"{k} {v}" for k, v in summary.items()),
    )
    log_write("uns", K.ORTHOLOGS)
    return out


def _refuse_few_orthologs(genes: pd.Index, mapped: np.ndarray, source: str, target: str) -> None:
    """Raise: too few genes have an ortholog; say which species the symbols look like."""
    looks = symbol_styles(genes)
    other = best_partners(target)
    hint = ""
    if genes.isin(other.index).mean() > 0.3:
        hint = f"; the symbols look like {target} genes — are the species swapped?"
    msg = (
        f"only {int(mapped.sum())} of {len(genes)} genes have a {source} -> {target} ortholog "
        f"(symbol style: {looks['mouse'] / len(genes):.0%} mouse-like, "
        f"{looks['human'] / len(genes):.0%} human-like){hint} "
        f"Pass source= the species of adata.var_names."
    )
    raise MkcellError(msg)


def _gene_report(
    genes: pd.Index,
    hit: pd.DataFrame,
    mapped: np.ndarray,
    source: str,
    target: str,
    keep_unmapped: bool,
) -> pd.DataFrame:
    """One row per source gene: its partner, the evidence, its status and the reason."""
    tgt = hit[target].where(mapped, "")
    report = pd.DataFrame(
        {
            "source_gene": genes,
            "target_gene": tgt.to_numpy(),
            "hcop_support": hit["hcop_support"].fillna(0).astype(int).to_numpy(),
            "biomart_type": hit["biomart_type"].fillna("").to_numpy(),
            "n_candidates": hit["n_candidates"].fillna(0).astype(int).to_numpy(),
            "tie": hit["tie"].eq(True).to_numpy(),
        }
    )
    n_src = report.groupby("target_gene")["source_gene"].transform("size").where(mapped, 0)
    report["status"] = np.where(
        ~mapped,
        "species_only" if keep_unmapped else "dropped",
        np.where(n_src > 1, "merged", "kept"),
    )
    report["reason"] = _reasons(report, mapped, source, target, keep_unmapped)
    return report


def _reasons(
    report: pd.DataFrame, mapped: np.ndarray, source: str, target: str, keep_unmapped: bool
) -> np.ndarray:
    """The report's ``reason`` column: how each gene's partner was chosen, or why it has none."""
    reason = np.full(len(report), "", dtype=object)
    only_hcop = mapped & (report["biomart_type"] == "").to_numpy()
    reason[mapped] = (
        "best-supported of " + report.loc[mapped, "n_candidates"].astype(str) + " candidate(s)"
    )
    reason[only_hcop] = reason[only_hcop] + "; HCOP only (no Ensembl BioMart pair)"
    reason[report["tie"].to_numpy() & mapped] = (
        reason[report["tie"].to_numpy() & mapped] + "; tie broken alphabetically"
    )
    merged = (report["status"] == "merged").to_numpy()
    reason[merged] = reason[merged] + "; counts summed with other " + source + " genes"
    reason[~mapped] = f"no {target} ortholog in HCOP or Ensembl" + (
        "; kept under its own symbol" if keep_unmapped else "; dropped (keep_unmapped=False)"
    )
    return reason


def _sum_into_targets(
    counts: object,
    obs: pd.DataFrame,
    report: pd.DataFrame,
    mapped: np.ndarray,
    source: str,
    keep_unmapped: bool,
) -> AnnData:
    """Counts summed per target gene (source genes x output genes aggregation), a new AnnData."""
    out_name = (
        report["target_gene"]
        .where(mapped, report["source_gene"] if keep_unmapped else None)
        .replace("", None)
    )
    keep = out_name.notna().to_numpy()
    out_genes = pd.Index(pd.unique(out_name[keep]))
    if keep_unmapped and out_genes.has_duplicates:
        out_genes = out_genes.unique()
    col = out_genes.get_indexer(out_name[keep])
    rows = np.flatnonzero(keep)
    agg = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, col)), shape=(len(report), len(out_genes))
    )
    X = sp.csr_matrix(counts) @ agg
    X = sp.csr_matrix(X, dtype=np.float32)
    out = AnnData(X=X, obs=obs.copy(), var=pd.DataFrame(index=pd.Index(out_genes, name="gene")))
    out.var["species_only"] = ~out_genes.isin(report.loc[mapped, "target_gene"])
    out.var[f"{source}_genes"] = (
        report[keep]
        .groupby(out_name[keep].to_numpy())["source_gene"]
        .agg(";".join)
        .reindex(out_genes)
        .to_numpy()
    )
    return out
