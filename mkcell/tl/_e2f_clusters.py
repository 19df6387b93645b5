"""Patients clustered on their E2F-target (+ Aurora) expression, and the clusters vs platelets.

The seed study's patient-level view: per-sample expression of the Hallmark E2F targets
plus AURKA, AURKB and PLK1 (bulk, or a pseudobulk of each sample's cells), z-scored per
gene across samples and clustered hierarchically; the cluster of the highest mean z is
then tested against low platelets (or a condition) with Fisher's exact test, samples as
the units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats
from scipy.cluster import hierarchy

from .. import _keys as K
from .._docs import KEY_ADDED_COPY_DOC, fill_doc
from .._genesets import AURORA, builtin_sets
from .._settings import MkcellError, logger
from .._utils import check_adata, log_write
from ._design import DEFAULT_REFERENCES
from ._gsea import _gene_sets, _to_log, pseudobulk

METHODS = ("ward", "average", "complete")
#: Platelet count below which a sample is "low" (x 10^9/L; the usual thrombocytopenia cut-off).
PLATELET_THRESHOLD = 150.0
#: The gene set clustered by default.
E2F_SET = "HALLMARK_E2F_TARGETS"


def default_genes() -> list[str]:
    """Hallmark E2F targets plus AURKA, AURKB and PLK1 (human symbols)."""
    return list(dict.fromkeys([*builtin_sets()[E2F_SET], *AURORA]))


@fill_doc(key_added_copy=KEY_ADDED_COPY_DOC)
def e2f_clusters(
    adata: AnnData,
    *,
    groupby: str | None = None,
    covariate: str | None = None,
    threshold: float = PLATELET_THRESHOLD,
    level: str | None = None,
    n_clusters: int = 2,
    method: str = "ward",
    genes: Sequence[str] | None = None,
    sample_key: str | None = K.SAMPLE,
    state: str | Sequence[str] | None = None,
    state_key: str = K.STATE,
    layer: str | None = None,
    min_cells: int = 10,
    key_added: str = K.E2F_CLUSTERS,
    copy: bool = False,
) -> AnnData | None:
    """Cluster samples on E2F targets + Aurora genes and test the E2F-high cluster.

    Per sample, the log expression of ``genes`` (default Hallmark E2F targets + AURKA,
    AURKB, PLK1, mapped to mouse orthologs for a mouse table) is z-scored per gene
    across samples. Samples are clustered hierarchically (scipy ``linkage`` on the
    samples x genes z-scores, Euclidean distance; ``method="ward"`` by default, or
    ``"average"`` / ``"complete"``) and the tree is cut into ``n_clusters``. Cluster 1 is
    the one of the highest mean z (E2F-high). Fisher's exact test (two-sided) then
    relates membership of cluster 1 to the tested group: ``covariate < threshold`` (low
    platelets) or ``groupby == level`` (a condition). Exactly one of ``covariate`` and
    ``groupby`` is given.

    Parameters
    ----------
    adata
        Cells with raw counts and ``obs[sample_key]`` (a pseudobulk per sample is made,
        :func:`pseudobulk`), or samples x genes (``sample_key=None`` or unique per row,
        e.g. :func:`mkcell.io.read_bulk`: ``layers['log_expression']`` is used, else
        ``X``, with counts turned into log2(CPM + 1)).
    groupby
        Per-sample column of a condition to test against.
    covariate
        Per-sample continuous column (e.g. ``"platelets"``); the tested group is
        ``covariate < threshold``.
    threshold
        Cut-off of ``covariate`` (default 150, platelets x 10^9/L).
    level
        The tested group of ``groupby`` (default: with two levels, the one that is not
        ``control`` / ``healthy``).
    n_clusters
        Clusters cut from the tree (>= 2).
    method
        Linkage method.
    genes
        Genes clustered (human symbols are mapped for a mouse table).
    sample_key
        ``obs`` column of samples; ``None``: each row is a sample.
    state
        Cells only: pseudobulk of these states only (e.g. ``"MkP"``); ``None`` all cells.
    state_key
        ``obs`` column of states.
    layer
        Layer of counts (cells) or of log expression (samples).
    min_cells
        Cells only: samples with fewer cells are left out.
    {key_added_copy}

    Returns
    -------
    ``None`` or a copy (``copy=True``), with ``adata.uns[key_added]``: ``table`` (sample,
    cluster, e2f_high, e2f_z (mean z of the sample), the tested column, ``tested``
    (in the tested group), and the condition column when present), ``cut_height``,
    ``fisher_p``, ``odds_ratio``, ``contingency`` (E2F-high or not x tested or not),
    ``z`` (samples x genes), ``linkage``, ``genes`` and ``params``. For samples x genes
    input also ``obs['mk_e2f_cluster']`` and ``obs['mk_e2f_z']``.
    """
    check_adata(adata)
    if (groupby is None) == (covariate is None):
        msg = "give exactly one of covariate= (e.g. 'platelets') and groupby= (a condition column)"
        raise MkcellError(msg)
    if method not in METHODS:
        msg = f"method={method!r}; choose one of {list(METHODS)}"
        raise MkcellError(msg)
    table, meta, per_row = _expression(adata, sample_key, state, state_key, layer, min_cells)
    col = covariate if covariate is not None else groupby
    if col not in meta.columns:
        msg = (
            f"{'covariate' if covariate else 'groupby'}={col!r} is not a per-sample column; "
            f"add it (mk.io.join_samples) — columns: {list(meta.columns)[:15]}"
        )
        raise MkcellError(msg)
    tested, what = _tested(meta[col], covariate is not None, threshold, level, col)
    if not 2 <= n_clusters < len(table):
        msg = f"n_clusters={n_clusters}; give 2 to {len(table) - 1} for {len(table)} samples"
        raise MkcellError(msg)
    z, used = _zscores(table, genes)
    link = hierarchy.linkage(z.to_numpy(), method=method, metric="euclidean")
    labels = hierarchy.fcluster(link, n_clusters, criterion="maxclust")
    heights = link[:, 2]
    cut = float((heights[-n_clusters] + heights[-n_clusters + 1]) / 2)
    mean_z = z.mean(axis=1).to_numpy()
    order = pd.Series(mean_z).groupby(labels).mean().sort_values(ascending=False).index
    cluster = pd.Series(labels).map({c: i + 1 for i, c in enumerate(order)}).to_numpy()
    res = _fisher(cluster == 1, tested)
    out = pd.DataFrame(
        {
            "sample": z.index.astype(str),
            "cluster": cluster,
            "e2f_high": cluster == 1,
            "e2f_z": mean_z,
            col: meta[col].to_numpy(),
            "tested": tested,
        }
    )
    if K.CONDITION in meta.columns and K.CONDITION != col:
        out[K.CONDITION] = meta[K.CONDITION].astype(str).to_numpy()
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "table": out,
        "cut_height": cut,
        "fisher_p": res["p"],
        "odds_ratio": res["odds_ratio"],
        "contingency": res["table"],
        "z": z,
        "linkage": link,
        "genes": used,
        "params": {
            "groupby": groupby,
            "covariate": covariate,
            "threshold": threshold if covariate is not None else None,
            "tested_group": what,
            "n_clusters": n_clusters,
            "method": method,
            "metric": "euclidean",
            "sample_key": sample_key,
            "state": state,
            "input": "samples" if per_row else "pseudobulk of cells",
            "test": "Fisher exact, two-sided: cluster 1 (highest mean z) vs the tested group",
        },
    }
    log_write("uns", key_added)
    if per_row:
        adata.obs[K.E2F_CLUSTER] = pd.Categorical(cluster.astype(str))
        adata.obs[K.E2F_Z] = mean_z
        log_write("obs", K.E2F_CLUSTER)
        log_write("obs", K.E2F_Z)
    logger.info(
        "E2F clusters: %d samples, %d genes, %d clusters (cut at %.3g); E2F-high cluster vs "
        "%s: Fisher p = %.3g, odds ratio %.3g",
        len(out),
        len(used),
        n_clusters,
        cut,
        what,
        res["p"],
        res["odds_ratio"],
    )
    return adata if copy else None


def _expression(
    adata: AnnData,
    sample_key: str | None,
    state: str | Sequence[str] | None,
    state_key: str,
    layer: str | None,
    min_cells: int,
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Samples x genes log expression, per-sample metadata, and whether rows were samples."""
    per_row = sample_key is None or (
        sample_key in adata.obs and not adata.obs[sample_key].duplicated().any()
    )
    if sample_key is not None and sample_key not in adata.obs:
        if K.BULK not in adata.uns:
            msg = (
                f"no sample column `adata.obs[{sample_key!r}]`; pass sample_key=, or "
                "sample_key=None when every row is a sample"
            )
            raise MkcellError(msg)
        per_row = True
    if not per_row:
        return (
            *pseudobulk(
                adata,
                sample_key,
                state=state,
                state_key=state_key,
                layer=layer,
                min_cells=min_cells,
            ),
            False,
        )
    if layer is None and K.LOG_EXPRESSION in adata.layers:
        layer = K.LOG_EXPRESSION
    X = adata.X if layer is None else adata.layers[layer]
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    ids = (
        adata.obs_names
        if sample_key is None or sample_key not in adata.obs
        else adata.obs[sample_key]
    )
    table = pd.DataFrame(
        X, index=pd.Index(ids.astype(str), name=K.SAMPLE), columns=adata.var_names.astype(str)
    )
    meta = adata.obs.set_axis(table.index)
    return _to_log(table, "auto"), meta, True


def _tested(
    values: pd.Series, continuous: bool, threshold: float, level: str | None, col: str
) -> tuple[np.ndarray, str]:
    """The tested-group mask and its description."""
    if continuous:
        x = pd.to_numeric(values, errors="coerce").to_numpy(float)
        if np.isnan(x).all():
            msg = f"covariate {col!r} has no numeric value; give a number per sample"
            raise MkcellError(msg)
        if np.isnan(x).any():
            logger.warning(
                "%d samples without %s count as not below %s",
                int(np.isnan(x).sum()),
                col,
                threshold,
            )
        tested = x < threshold
        if tested.all() or not tested.any():
            logger.warning(
                "%s < %s holds for %d of %d samples: nothing to test",
                col,
                threshold,
                int(tested.sum()),
                x.size,
            )
        return tested, f"{col} < {threshold:g}"
    v = values.astype(str).to_numpy()
    levels = list(dict.fromkeys(v))
    if level is None:
        others = [lv for lv in levels if lv not in DEFAULT_REFERENCES]
        if len(levels) != 2 or len(others) != 1:
            msg = f"groupby={col!r} has levels {levels}; pass level= (the group to test)"
            raise MkcellError(msg)
        level = others[0]
    if level not in levels:
        msg = f"level={level!r} is not a value of {col!r}; values: {levels}"
        raise MkcellError(msg)
    return v == level, f"{col} == {level}"


def _zscores(table: pd.DataFrame, genes: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    sets = _gene_sets(
        {E2F_SET: list(genes) if genes is not None else default_genes()}, table.columns
    )
    have = set(table.columns)
    used = [g for g in dict.fromkeys(sets[E2F_SET]) if g in have]
    sub = table.loc[:, ~table.columns.duplicated()][used]
    sd = sub.std(axis=0, ddof=0)
    sub = sub.loc[:, sd > 0]
    if sub.shape[1] < 3:
        msg = (
            f"{sub.shape[1]} of the E2F / Aurora genes vary across the samples; need 3 or more "
            "(check the gene symbols, or pass genes=)"
        )
        raise MkcellError(msg)
    z = (sub - sub.mean(axis=0)) / sub.std(axis=0, ddof=0)
    return z, list(sub.columns)


def _fisher(high: np.ndarray, tested: np.ndarray) -> dict:
    tab = np.array(
        [
            [np.sum(high & tested), np.sum(high & ~tested)],
            [np.sum(~high & tested), np.sum(~high & ~tested)],
        ]
    )
    odds, p = stats.fisher_exact(tab, alternative="two-sided")
    frame = pd.DataFrame(tab, index=["e2f_high", "other"], columns=["tested", "not_tested"])
    return {"p": float(p), "odds_ratio": float(odds), "table": frame}
