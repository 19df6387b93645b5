"""Put mouse and human cells into one AnnData in human gene symbols."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError, MkcellWarning, logger
from .._species import detect_species
from .._utils import check_adata, get_counts, log_write
from ._orthologs import translate_counts

#: Samples with fewer cells than this get a warning (they are kept).
MIN_CELLS_PER_SAMPLE = 20


def _check_symbols(species: str, adata: AnnData) -> None:
    other = "human" if species == "mouse" else "mouse"
    if detect_species(adata.var_names) == other:
        example = ", ".join(map(str, adata.var_names[:3]))
        msg = (
            f"the {species} input has {other}-style gene symbols (e.g. {example}); "
            f"are the mouse and human inputs swapped? Pass each file under its own species."
        )
        raise MkcellError(msg)


def concat_species(
    adatas: dict[str, AnnData],
    *,
    keep_species_specific: bool = False,
    sample_key: str = K.SAMPLE,
) -> AnnData:
    """Concatenate mouse and human marrow in human gene symbols.

    Mouse genes are mapped with :func:`mkcell.pp.map_orthologs` (HCOP + Ensembl).
    Genes present in both species are kept; species-only genes are dropped, or kept
    (zero in the other species, flagged in ``var['species_only']`` and never used as
    integration features) with ``keep_species_specific=True``.

    Parameters
    ----------
    adatas
        ``{"mouse": AnnData, "human": AnnData}`` with raw counts; either alone is fine.
    keep_species_specific
        Keep genes without an ortholog in the other species.
    sample_key
        Column of ``obs`` naming the sample; samples with very few cells are warned about.

    Returns
    -------
    One AnnData with raw counts in ``X`` and ``layers['counts']`` (CSR, sorted column
    indices), ``obs['species']``,
    every input ``obs`` column, cell names kept (names that collide between species
    get a ``mouse:`` / ``human:`` prefix) and the mapping report in ``uns['mk_orthologs']``.
    """
    if not isinstance(adatas, dict) or not adatas:
        msg = "pass a dict like {'mouse': adata_mouse, 'human': adata_human}"
        raise MkcellError(msg)
    bad = [s for s in adatas if s not in K.SPECIES_NAMES]
    if bad:
        msg = f"unknown species {bad}; use the keys 'mouse' and/or 'human'"
        raise MkcellError(msg)
    parts, reports = {}, {}
    for species, a in adatas.items():
        check_adata(a, name=f"adatas[{species!r}]")
        _check_symbols(species, a)
        if a.obs_names.has_duplicates:
            dup = a.obs_names[a.obs_names.duplicated()][:3].tolist()
            msg = (
                f"the {species} input has duplicated cell names (e.g. {dup}); "
                "run adata.obs_names_make_unique() first"
            )
            raise MkcellError(msg)
        if species == "mouse":
            # counts in X only: X alone is concatenated
            m = translate_counts(a, "mouse", "human", keep_unmapped=keep_species_specific)
            reports["mouse"] = m.uns.pop(K.ORTHOLOGS)
        else:
            X = sp.csr_matrix(get_counts(a), dtype=np.float32)
            m = AnnData(X=X, obs=a.obs.copy(), var=pd.DataFrame(index=a.var_names.astype(str)))
            if m.var_names.has_duplicates:
                m.var_names_make_unique()
        m.obs[K.SPECIES] = species
        if sample_key in m.obs:
            small = m.obs[sample_key].value_counts()
            small = small[small < MIN_CELLS_PER_SAMPLE]
            if len(small):
                import warnings

                msg = (
                    f"{species} samples with fewer than {MIN_CELLS_PER_SAMPLE} cells (kept): "
                    f"{small.to_dict()}"
                )
                warnings.warn(msg, MkcellWarning, stacklevel=2)
        parts[species] = m

    if len(parts) == 2:
        shared = parts["mouse"].var_names.intersection(parts["human"].var_names)
        if len(shared) == 0:
            msg = (
                "no genes shared between mouse and human after ortholog mapping; "
                "are the species swapped?"
            )
            raise MkcellError(msg)
        clash = parts["mouse"].obs_names.intersection(parts["human"].obs_names)
        for species, m in parts.items():
            if len(clash):
                names = m.obs_names.to_series()
                names[names.isin(clash)] = species + ":" + names[names.isin(clash)]
                m.obs_names = names.to_numpy()
        if len(clash):
            logger.info(
                "%d cell names occur in both species; prefixed them with 'mouse:' / 'human:'",
                len(clash),
            )
    join = "outer" if keep_species_specific else "inner"
    out = ad.concat(list(parts.values()), join=join, merge="same", fill_value=0)
    out.obs = pd.concat([m.obs for m in parts.values()], join="outer").loc[
        out.obs_names
    ]  # every input column
    for m in parts.values():  # concatenated: free the parts' matrices before the copy below
        m.X = None
    out.X = sp.csr_matrix(out.X, dtype=np.float32)
    # canonical CSR (sorted column indices): the cached log-normalised layer then shares
    # the counts' index arrays (mkcell.pp._normalize.log_normalize_matrix), -0.38 GB at 200k
    # cells; the ortholog product and the gene join leave the indices unsorted
    out.X.sum_duplicates()
    out.layers[K.COUNTS] = out.X.copy()
    out.obs[K.SPECIES] = pd.Categorical(
        out.obs[K.SPECIES], categories=[s for s in K.SPECIES_NAMES if s in parts]
    )
    in_species = {s: out.var_names.isin(m.var_names) for s, m in parts.items()}
    out.var["species_only"] = (
        ~np.logical_and.reduce(list(in_species.values())) if len(parts) == 2 else False
    )
    out.uns[K.ORTHOLOGS] = {
        **(reports.get("mouse", {})),
        "n_genes": {s: int(m.n_vars) for s, m in parts.items()},
        "n_genes_out": int(out.n_vars),
        "keep_species_specific": keep_species_specific,
    }
    logger.info("concatenated %s: %d cells x %d genes", "+".join(parts), out.n_obs, out.n_vars)
    log_write("obs", K.SPECIES)
    return out
