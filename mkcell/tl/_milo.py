"""Differential abundance of kNN neighbourhoods (Milo through pertpy), placed on pseudotime."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._docs import KEY_ADDED_COPY_DOC, fill_doc
from .._graph import stored_distances
from .._settings import MkcellError, logger
from .._utils import check_adata, log_write
from ._composition import pertpy_session
from ._design import CONTRASTS_DOC, Contrasts, resolve_contrasts, sample_obs, warn_and_log

MILO = K.MILO
NHOOD_COLUMNS = [
    "species",
    "contrast",
    "nhood",
    "index_cell",
    "n_cells",
    "logFC",
    "PValue",
    "SpatialFDR",
    "mean_pseudotime",
    "frac_lineage",
    "state",
]
BIN_COLUMNS = ["species", "contrast", "bin", "bin_mid", "n_nhoods", "mean_logFC", "n_up", "n_down"]


@fill_doc(contrasts=CONTRASTS_DOC, key_added_copy=KEY_ADDED_COPY_DOC)
def da_neighbourhoods(
    adata: AnnData,
    sample_key: str = K.SAMPLE,
    condition_key: str = K.CONDITION,
    contrasts: Contrasts = None,
    *,
    species_key: str = K.SPECIES,
    use_rep: str = K.LATENT,
    pseudotime_key: str = K.PSEUDOTIME,
    state_key: str = K.STATE,
    n_neighbors: int = 30,
    prop: float = 0.1,
    alpha: float = 0.1,
    n_bins: int = 5,
    seed: int = 0,
    key_added: str = MILO,
    copy: bool = False,
) -> AnnData | None:
    """Find kNN neighbourhoods whose abundance differs between conditions (Milo).

    For each contrast ``[A, B]`` and each species holding both, the cells of A and B
    get a kNN graph on ``adata.obsm[use_rep]``; Milo (pertpy) samples neighbourhoods,
    counts cells per sample and neighbourhood and tests ``~ condition`` with the
    ``pydeseq2`` solver (samples are the replicates; the default edgeR solver needs
    R). ``logFC`` is log2 of A over B; ``SpatialFDR`` is Milo's density-weighted FDR.
    Each neighbourhood gets the mean ``adata.obs[pseudotime_key]`` of its Mk-lineage
    cells, to show where along maturation cells pile up, and ``by_pseudotime``
    summarises logFC in pseudotime bins.

    Parameters
    ----------
    adata
        Annotated cells with an embedding in ``adata.obsm[use_rep]``.
    sample_key
        Column of ``adata.obs`` with the samples (replicates).
    condition_key
        Column of ``adata.obs`` with the conditions.
    {contrasts}
    species_key
        Column with the species; contrasts are computed within species.
    use_rep
        Embedding in ``adata.obsm`` for the kNN graph (default the integrated latent).
    pseudotime_key
        Column with the Mk pseudotime (NaN off the lineage); optional.
    state_key
        Column with the cell states (the most common state of each neighbourhood is
        reported); optional.
    n_neighbors
        Neighbours per cell in the kNN graph.
    prop
        Share of cells sampled as neighbourhood index cells.
    alpha
        SpatialFDR level at which a neighbourhood counts as up or down in ``by_pseudotime``.
    n_bins
        Equal-width pseudotime bins of ``by_pseudotime``.
    seed
        Seed of the neighbourhood sampling.
    {key_added_copy}

    Returns
    -------
    ``None`` or a copy of ``adata``, with ``adata.uns[key_added]``: ``nhoods`` (species,
    contrast, nhood, index_cell, n_cells, logFC, PValue, SpatialFDR, mean_pseudotime,
    frac_lineage, state), ``by_pseudotime`` and ``params``.

    Raises
    ------
    ImportError
        If pertpy or pydeseq2 is not installed (``pip install 'mkcell[da]'``).
    """
    check_adata(adata, min_vars=0)
    if use_rep not in adata.obsm:
        msg = (
            f"no embedding `adata.obsm[{use_rep!r}]`; "
            "run mk.integrate.scvi first or pass use_rep= (e.g. 'X_pca')"
        )
        raise MkcellError(msg)
    obs = sample_obs(adata, sample_key, condition_key, species_key)
    per_sample = (
        obs.groupby(["species", "sample"], observed=True, sort=False)["condition"]
        .first()
        .reset_index()
    )
    todo = resolve_contrasts(obs, contrasts)
    nhoods, skipped = _milo_contrasts(
        adata,
        obs,
        per_sample,
        todo,
        use_rep=use_rep,
        pseudotime_key=pseudotime_key,
        state_key=state_key,
        n_neighbors=n_neighbors,
        prop=prop,
        alpha=alpha,
        seed=seed,
    )
    bins = _by_pseudotime(nhoods, n_bins, alpha)

    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "nhoods": nhoods,
        "by_pseudotime": bins,
        "params": {
            "sample_key": sample_key,
            "condition_key": condition_key,
            "species_key": species_key,
            "use_rep": use_rep,
            "pseudotime_key": pseudotime_key,
            "state_key": state_key,
            "contrasts": [list(c) for c in dict.fromkeys((a, b) for _, a, b in todo)],
            "skipped": skipped,
            "n_neighbors": n_neighbors,
            "prop": prop,
            "alpha": alpha,
            "n_bins": n_bins,
            "seed": seed,
            "method": "Milo (pertpy), solver pydeseq2, design ~condition",
        },
    }
    log_write("uns", key_added)
    return adata if copy else None


def _milo_contrasts(
    adata: AnnData,
    obs: pd.DataFrame,
    per_sample: pd.DataFrame,
    todo: list[tuple[str, str, str]],
    *,
    use_rep: str,
    pseudotime_key: str,
    state_key: str,
    n_neighbors: int,
    prop: float,
    alpha: float,
    seed: int,
) -> tuple[pd.DataFrame, list[str]]:
    """Milo on each (species, A, B) with replicates: the neighbourhood table, and those skipped."""
    X = np.asarray(adata.obsm[use_rep], dtype=float)
    pt_all = (
        pd.to_numeric(adata.obs[pseudotime_key], errors="coerce").to_numpy(float)
        if pseudotime_key in adata.obs.columns
        else np.full(adata.n_obs, np.nan)
    )
    states = adata.obs[state_key].astype(str).to_numpy() if state_key in adata.obs.columns else None
    tables, skipped = [], []
    with pertpy_session() as pt:
        for sp_name, a, b in todo:
            n_s = (
                per_sample[per_sample["species"] == sp_name]
                .groupby("condition")["sample"]
                .nunique()
            )
            few = [c for c in (a, b) if n_s.get(c, 0) < 2]
            if few:
                warn_and_log(
                    f"Milo {sp_name}, {a} vs {b} skipped: {', '.join(few)} "
                    "has fewer than 2 samples (no replicate-aware test)"
                )
                skipped.append(f"{sp_name}: {a} vs {b}")
                continue
            mask = (obs["species"] == sp_name).to_numpy() & obs["condition"].isin([a, b]).to_numpy()
            idx = np.flatnonzero(mask)
            res = _milo_one(
                pt,
                obs.iloc[idx],
                X[idx],
                pt_all[idx],
                None if states is None else states[idx],
                a,
                b,
                n_neighbors,
                prop,
                seed,
                graph=_stored_graph(adata, idx, use_rep, n_neighbors),
            )
            tables.append(res.assign(species=sp_name, contrast=f"{a} vs {b}"))
            logger.info(
                "Milo %s, %s vs %s: %d neighbourhoods, %d at SpatialFDR < %g",
                sp_name,
                a,
                b,
                len(res),
                int((res["SpatialFDR"] < alpha).sum()),
                alpha,
            )
    nhoods = (
        pd.concat(tables, ignore_index=True)[NHOOD_COLUMNS]
        if tables
        else pd.DataFrame(columns=NHOOD_COLUMNS)
    )
    return nhoods, skipped


def _knn(X: np.ndarray, k: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Directed kNN distances (self counted as in scanpy) and a binary symmetric graph."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, X.shape[0])
    nn = NearestNeighbors(n_neighbors=k).fit(X)
    dist = (
        nn.kneighbors_graph(mode="distance", n_neighbors=k - 1).tocsr()
        if k > 1
        else sp.csr_matrix((X.shape[0],) * 2)
    )
    conn = ((dist + dist.T) > 0).astype(float).tocsr()
    return dist, conn


def _stored_graph(
    adata: AnnData, idx: np.ndarray, use_rep: str, k: int
) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
    """:func:`_knn` from the stored latent graph when it agrees: all cells, same rep and k."""
    if idx.size != adata.n_obs:
        logger.debug("Milo on %d of %d cells builds its own kNN graph", idx.size, adata.n_obs)
        return None
    dist = stored_distances(adata, use_rep, k, what="Milo")
    return None if dist is None else (dist, ((dist + dist.T) > 0).astype(float).tocsr())


def _milo_one(
    pt: object,
    obs: pd.DataFrame,
    X: np.ndarray,
    ptime: np.ndarray,
    states: np.ndarray | None,
    a: str,
    b: str,
    n_neighbors: int,
    prop: float,
    seed: int,
    graph: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
) -> pd.DataFrame:
    cells = AnnData(
        obs=pd.DataFrame(
            {
                K.TMP_SAMPLE: obs["sample"].to_numpy(),
                K.TMP_CONDITION: pd.Categorical(obs["condition"].to_numpy(), categories=[b, a]),
            },
            index=obs.index.astype(str),
        ),
        obsm={"X_milo": X},
    )
    dist, conn = _knn(X, n_neighbors) if graph is None else graph
    cells.obsp["distances"], cells.obsp["connectivities"] = dist, conn
    cells.uns["neighbors"] = {
        "params": {"use_rep": "X_milo", "n_neighbors": n_neighbors},
        "connectivities_key": "connectivities",
        "distances_key": "distances",
    }
    milo = pt.tl.Milo()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Transforming to str index")
        mdata = milo.load(cells)
    milo.make_nhoods(mdata["rna"], prop=prop, seed=seed)
    mdata = milo.count_nhoods(mdata, sample_col=K.TMP_SAMPLE)
    out = io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),  # pydeseq2 prints its progress
    ):
        warnings.simplefilter("always")
        milo.da_nhoods(mdata, design=f"~{K.TMP_CONDITION}", solver="pydeseq2")
    logger.debug("pydeseq2 output:\n%s", out.getvalue())
    for w in caught:
        logger.info("Milo/pydeseq2 (%s vs %s): %s", a, b, w.message)

    nh = mdata["rna"].obsm["nhoods"].tocsc().astype(float)
    var = mdata["milo"].var
    on = np.isfinite(ptime)
    n_lin = np.asarray(nh[on].sum(0)).ravel()
    sum_pt = np.asarray(nh[on].T @ ptime[on]).ravel()
    size = np.asarray(nh.sum(0)).ravel()
    res = pd.DataFrame(
        {
            "nhood": np.arange(nh.shape[1]),
            "index_cell": var["index_cell"].astype(str).to_numpy(),
            "n_cells": size.astype(int),
            "logFC": var["logFC"].to_numpy(float) if "logFC" in var else np.nan,
            "PValue": var["PValue"].to_numpy(float) if "PValue" in var else np.nan,
            "SpatialFDR": var["SpatialFDR"].to_numpy(float) if "SpatialFDR" in var else np.nan,
            "mean_pseudotime": np.divide(
                sum_pt, n_lin, out=np.full(n_lin.size, np.nan), where=n_lin > 0
            ),
            "frac_lineage": n_lin / np.maximum(size, 1),
        }
    )
    if states is not None:
        codes, uniq = pd.factorize(states)
        onehot = sp.csr_matrix(
            (np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, len(uniq))
        )
        res["state"] = np.asarray(uniq)[np.asarray((nh.T @ onehot).argmax(1)).ravel()]
    else:
        res["state"] = ""
    return res


def _by_pseudotime(nhoods: pd.DataFrame, n_bins: int, alpha: float) -> pd.DataFrame:
    rows = []
    edges = np.linspace(0, 1, n_bins + 1)
    for (sp_name, contrast), g in nhoods.groupby(["species", "contrast"], sort=False):
        g = g[np.isfinite(g["mean_pseudotime"].to_numpy(float))]
        which = np.clip(
            np.digitize(g["mean_pseudotime"].to_numpy(float), edges[1:-1]), 0, n_bins - 1
        )
        for i in range(n_bins):
            s = g[which == i]
            sig = s["SpatialFDR"] < alpha
            rows.append(
                {
                    "species": sp_name,
                    "contrast": contrast,
                    "bin": f"[{edges[i]:.2f}, {edges[i + 1]:.2f}{']' if i == n_bins - 1 else ')'}",
                    "bin_mid": 0.5 * (edges[i] + edges[i + 1]),
                    "n_nhoods": len(s),
                    "mean_logFC": float(s["logFC"].mean()) if len(s) else np.nan,
                    "n_up": int((sig & (s["logFC"] > 0)).sum()),
                    "n_down": int((sig & (s["logFC"] < 0)).sum()),
                }
            )
    return pd.DataFrame(rows, columns=BIN_COLUMNS)
