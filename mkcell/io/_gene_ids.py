"""Gene identifiers: Ensembl IDs or a ``var`` column of symbols -> gene symbols as ``var_names``."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError, logger
from .._utils import data_path

#: An Ensembl gene ID (human ENSG, mouse ENSMUSG), optionally versioned or with a PAR suffix.
ENSEMBL_RE = re.compile(r"^(ENS(?:MUS)?G\d{11})(?:\.\d+)?(?:_PAR_Y)?$")
#: Share of ``var_names`` that must look like Ensembl IDs for them to be mapped.
MIN_ENSEMBL_SHARE = 0.5
#: Shipped tables with Ensembl gene IDs and names (Ensembl BioMart, HGNC HCOP).
_TABLES = {
    "human": [
        ("biomart_human_to_mouse.csv.gz", "Gene stable ID", "Gene name"),
        ("hcop_mouse_to_human.csv.gz", "Human gene stable ID", "Human gene name"),
    ],
    "mouse": [
        ("biomart_mouse_to_human.csv.gz", "Gene stable ID", "Gene name"),
        ("hcop_mouse_to_human.csv.gz", "Gene stable ID", "Gene name"),
    ],
}
STATUS_MAPPED = "mapped"
STATUS_SUMMED = "summed"
STATUS_UNMAPPED = "unmapped_kept_as_id"
GENE_ID_COLUMNS = ["id", "symbol", "status"]


@lru_cache(maxsize=2)
def ensembl_symbols(species: str) -> pd.Series:
    """Ensembl gene ID -> gene symbol for ``species`` ("human" or "mouse"), from the shipped tables.

    BioMart first (GRCh38.p13 / GRCm39), HGNC HCOP for IDs BioMart lacks.
    """
    parts = []
    for name, id_col, sym_col in _TABLES[species]:
        tab = pd.read_csv(data_path("orthologs", name), usecols=[id_col, sym_col], dtype=str)
        tab = tab.dropna()
        tab = tab[(tab[sym_col] != "-") & (tab[sym_col] != "")]
        parts.append(pd.Series(tab[sym_col].to_numpy(), index=tab[id_col].to_numpy()))
    out = pd.concat(parts)
    return out[~out.index.duplicated(keep="first")]


def looks_ensembl(names: pd.Index) -> bool:
    """Whether most of ``names`` are Ensembl gene IDs (ENSG / ENSMUSG)."""
    names = pd.Index(names[:5000]).astype(str)
    return len(names) > 0 and names.str.match(ENSEMBL_RE.pattern).mean() >= MIN_ENSEMBL_SHARE


def to_symbols(
    adata: AnnData,
    *,
    gene_symbols: str | None = None,
    species: str | None = None,
    where: str = "the input",
) -> AnnData:
    """Return ``adata`` with gene symbols as ``var_names`` (duplicated symbols summed).

    With ``gene_symbols`` the symbols come from that ``var`` column (empty ones keep
    their ID). Without it, ``var_names`` that look like Ensembl IDs are mapped through
    the shipped Ensembl tables (:func:`ensembl_symbols`); otherwise ``adata`` is returned
    unchanged. IDs without a symbol keep their ID. The per-gene report (id, symbol,
    status) is in ``uns['mk_gene_ids']['genes']``.

    Parameters
    ----------
    adata
        Cells x genes, raw counts in ``X`` (and optionally ``layers``).
    gene_symbols
        ``var`` column holding the symbols.
    species
        ``"human"`` or ``"mouse"`` for Ensembl mapping (default: from the ID prefix).
    where
        What ``adata`` is, for messages (a file name).
    """
    ids = adata.var_names.astype(str)
    if gene_symbols is not None:
        if gene_symbols not in adata.var.columns:
            cols = ", ".join(map(str, adata.var.columns)) or "none"
            msg = (
                f"gene_symbols={gene_symbols!r}: no such column in the var of {where} "
                f"(var columns: [{cols}]); pass the column that holds gene symbols"
            )
            raise MkcellError(msg)
        sym = adata.var[gene_symbols].astype(object).where(adata.var[gene_symbols].notna(), "")
        symbols = pd.Series(sym.astype(str).str.strip().to_numpy(), index=ids)
        source = f"var[{gene_symbols!r}]"
    elif looks_ensembl(ids):
        stripped = ids.str.replace(ENSEMBL_RE, r"\1", regex=True)
        if species is None:
            species = "mouse" if stripped.str.startswith("ENSMUSG").mean() > 0.5 else "human"
        table = ensembl_symbols(species)
        symbols = pd.Series(table.reindex(stripped).fillna("").to_numpy(), index=ids)
        source = f"shipped Ensembl {species} table"
    else:
        return adata
    if (symbols == "").all():
        msg = (
            f"none of the {len(ids)} gene IDs of {where} (e.g. {ids[0]!r}) "
            f"has a gene symbol in the {source}; "
            "pass gene_symbols=COLUMN (data.gene_symbols=COLUMN on the command line) "
            "naming the var column with symbols"
        )
        raise MkcellError(msg)
    has = symbols != ""
    final = np.where(has, symbols.to_numpy(), ids.to_numpy()).astype(object)
    out = _sum_by_name(adata, final)
    counts = pd.Series(final).value_counts()
    status = np.where(
        ~has,
        STATUS_UNMAPPED,
        np.where(pd.Series(final).map(counts).to_numpy() > 1, STATUS_SUMMED, STATUS_MAPPED),
    )
    report = pd.DataFrame({"id": ids.to_numpy(), "symbol": final.astype(str), "status": status})
    n = report["status"].value_counts().to_dict()
    out.uns[K.GENE_IDS] = {
        "genes": report,
        "params": {"gene_symbols": gene_symbols, "source": source, "species": species},
        "n_mapped": int(n.get(STATUS_MAPPED, 0)),
        "n_summed": int(n.get(STATUS_SUMMED, 0)),
        "n_unmapped": int(n.get(STATUS_UNMAPPED, 0)),
    }
    logger.info(
        "%s: gene IDs -> symbols via the %s: %d mapped, %d summed into shared symbols, "
        "%d without a symbol kept as IDs (`adata.uns['%s']['genes']`)",
        where,
        source,
        n.get(STATUS_MAPPED, 0),
        n.get(STATUS_SUMMED, 0),
        n.get(STATUS_UNMAPPED, 0),
        K.GENE_IDS,
    )
    return out


def _sum_by_name(adata: AnnData, names: np.ndarray) -> AnnData:
    """Sum the columns of ``X`` (and of every layer) that share a name; keep obs and uns."""
    codes, uniq = pd.factorize(names)
    if len(uniq) == len(names):
        out = adata.copy()
        out.var_names = pd.Index(names.astype(str))
        out.var["gene_ids"] = adata.var_names.astype(str).to_numpy()
        return out
    G = sp.csr_matrix(
        (np.ones(len(names), dtype=np.int8), (np.arange(len(names)), codes)),
        shape=(len(names), len(uniq)),
    )

    def agg(X):  # noqa: ANN001, ANN202
        if X is None:
            return None
        dtype = X.dtype
        Y = (
            (sp.csr_matrix(X) @ G.astype(dtype))
            if sp.issparse(X)
            else np.asarray(X) @ G.toarray().astype(dtype)
        )
        return sp.csr_matrix(Y) if sp.issparse(X) else Y

    ids = pd.Series(adata.var_names.astype(str)).groupby(codes).agg(";".join).to_numpy()
    var = pd.DataFrame({"gene_ids": ids}, index=pd.Index(uniq.astype(str)))
    out = AnnData(X=agg(adata.X), obs=adata.obs.copy(), var=var, uns=dict(adata.uns))
    for key, layer in adata.layers.items():
        out.layers[key] = agg(layer)
    for key, value in adata.obsm.items():
        out.obsm[key] = value
    logger.info(
        "summed the counts of genes sharing a symbol: %d columns -> %d genes", len(names), len(uniq)
    )
    return out
