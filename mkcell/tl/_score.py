"""Cell-cycle phase and gene-set scores (E2F targets, G2/M, spindle, cytokinesis, Aurora).

The scores follow Seurat / scanpy ``score_genes`` (Satija et al. 2015; Tirosh et al.
2016): the mean log-normalised expression of a set minus that of control genes drawn
from the same expression bins. Every set is scored in one sparse product, so 200,000
cells cost a few passes over the count matrix.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._genesets import SCORED_SETS, builtin_sets, read_gmt
from .._settings import MkcellError, MkcellWarning, logger
from .._species import detect_species, symbol_styles
from .._utils import check_adata, get_counts, log_write
from ..pp._normalize import log_normalize
from ..pp._score_genes import score_genes_matrix

#: Scoring methods for the gene sets (S/G2M always use ``score_genes``).
METHODS = ("score_genes", "aucell", "ulm")
#: Built-in Tirosh lists used for the S and G2M scores.
CYCLE_SETS = {K.S_SCORE: "TIROSH2016_S_PHASE", K.G2M_SCORE: "TIROSH2016_G2M_PHASE"}
#: Phase categories in order.
PHASES = ("G1", "S", "G2M")
#: How many gene names a warning spells out before "... and N more".
N_NAMED = 25


# --------------------------------------------------------------------------- species


def _species_of_adata(symbols: pd.Index, gene_symbols: str) -> str:
    st = symbol_styles(symbols)
    detected = detect_species(symbols)
    if gene_symbols == "auto":
        if st["ensembl"] > 0.5 * len(symbols):
            msg = (
                "adata.var_names look like Ensembl IDs; scoring needs gene symbols — set "
                "adata.var_names to symbols or pass symbols_key= (a column of adata.var)"
            )
            raise MkcellError(msg)
        if detected is None:
            msg = (
                f"cannot tell the species from the gene symbols ({st['human']} human-style 'MCM5', "
                f"{st['mouse']} mouse-style 'Mcm5'); pass gene_symbols='human' or 'mouse'"
            )
            raise MkcellError(msg)
        return detected
    if gene_symbols not in K.SPECIES_NAMES:
        msg = f"gene_symbols={gene_symbols!r}; choose 'auto', 'human' or 'mouse'"
        raise MkcellError(msg)
    if detected is not None and detected != gene_symbols:
        warnings.warn(
            f"gene_symbols={gene_symbols!r} but the symbols look {detected} ({st['human']} "
            f"human-style, {st['mouse']} mouse-style); using {gene_symbols!r} as asked — "
            "expect few genes of the built-in sets to be found",
            MkcellWarning,
            stacklevel=3,
        )
    return gene_symbols


def translate_genes(genes: Sequence[str], source: str, target: str) -> tuple[list[str], list[str]]:
    """Map symbols to their best-supported ortholog (HGNC HCOP + Ensembl).

    Parameters
    ----------
    genes
        Symbols of ``source``.
    source, target
        ``"human"`` or ``"mouse"``.

    Returns
    -------
    The mapped symbols (order kept, duplicates dropped) and the genes without an ortholog.
    """
    if source == target:
        return list(dict.fromkeys(genes)), []
    best = _partners(source, target)
    mapped = [best[g] for g in genes if g in best]
    lost = [g for g in genes if g not in best]
    return list(dict.fromkeys(mapped)), lost


@lru_cache(maxsize=2)
def _partners(source: str, target: str) -> dict[str, str]:
    from .._ortholog_table import best_partners

    return best_partners(source)[target].to_dict()


# --------------------------------------------------------------------------- gene sets


@dataclass
class _SetPlan:
    """One gene set resolved against the var_names."""

    key: str
    name: str
    source: str
    genes: list[str]  # as given
    species: str  # species of the symbols as given
    translated: bool = False
    used: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # genes (as given) not in adata
    no_ortholog: list[str] = field(default_factory=list)
    wrong_case: list[str] = field(default_factory=list)
    skipped: bool = False


def slug(name: str) -> str:
    """Key suffix for a gene-set name: lower case, non-alphanumerics as ``_``."""
    out = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    if not out:
        msg = f"gene-set name {name!r} has no letters or digits; rename it in the GMT file"
        raise MkcellError(msg)
    return out


def _load_gmt(
    gmt: str | os.PathLike | Mapping[str, Sequence[str]],
) -> tuple[dict[str, list[str]], str]:
    if isinstance(gmt, Mapping):
        sets = {str(k): list(dict.fromkeys(map(str, v))) for k, v in gmt.items()}
        empty = [k for k, v in sets.items() if not v]
        if empty:
            msg = f"gene sets {empty} are empty; give at least one gene per set"
            raise MkcellError(msg)
        return sets, "user sets"
    return read_gmt(gmt), str(Path(gmt))


def _match(
    genes: Sequence[str], present: pd.Index, upper: dict[str, str]
) -> tuple[list[str], list[str], list[str]]:
    used = [g for g in genes if g in present]
    missing = [g for g in genes if g not in present]
    wrong_case = [g for g in missing if g.upper() in upper]
    return used, missing, wrong_case


def _names(genes: Sequence[str]) -> str:
    genes = list(genes)
    s = ", ".join(genes[:N_NAMED])
    return s + (f" ... and {len(genes) - N_NAMED} more" if len(genes) > N_NAMED else "")


def _plan_sets(
    symbols: pd.Index, species: str, gmt: str | os.PathLike | Mapping[str, Sequence[str]] | None
) -> list[_SetPlan]:
    """Resolve the built-in and user sets against ``symbols`` (translating species)."""
    present = pd.Index(symbols.unique())
    upper = {s.upper(): s for s in present}
    sets = builtin_sets()
    plans = []
    builtin = dict(CYCLE_SETS) | {K.SCORE_PREFIX + k: v for k, v in SCORED_SETS.items()}
    for key, name in builtin.items():
        p = _SetPlan(key=key, name=name, source="builtin", genes=list(sets[name]), species="human")
        mapped, p.no_ortholog = translate_genes(p.genes, "human", species)
        p.translated = species != "human"
        p.used, miss, _ = _match(mapped, present, upper)
        p.missing = miss + p.no_ortholog
        plans.append(p)
    if gmt is None:
        return plans

    user, src = _load_gmt(gmt)
    taken = {p.key for p in plans}
    other = "mouse" if species == "human" else "human"
    report = []
    for name, genes in user.items():
        key = K.SCORE_PREFIX + slug(name)
        if key in taken:
            msg = (
                f"gene set {name!r} from {src} would be stored as `adata.obs[{key!r}]`, "
                "which is already taken (a built-in set or a set with a similar name); "
                "rename it in the GMT file"
            )
            raise MkcellError(msg)
        taken.add(key)
        p = _SetPlan(
            key=key, name=name, source=src, genes=genes, species=detect_species(genes) or species
        )
        as_given, miss_given, wrong = _match(genes, present, upper)
        mapped, lost = translate_genes(genes, other, species)
        as_mapped = [g for g in mapped if g in present]
        # translate when the set is written in the other species' symbols, or when casing is
        # unclear and the orthologs match better
        use_map = p.species == other or (
            detect_species(genes) is None
            and len(as_mapped) > max(2 * len(as_given), len(as_given) + 2)
        )
        if use_map:
            p.species, p.translated, p.no_ortholog = other, True, lost
            p.used, miss, _ = _match(mapped, present, upper)
            p.missing = miss + lost
            report.append(
                f"{name!r}: {len(as_given)}/{len(genes)} genes found as given, "
                f"{len(p.used)}/{len(genes)} after mapping {other}->{species} orthologs"
            )
        else:
            p.used, p.missing, p.wrong_case = as_given, miss_given, wrong
        plans.append(p)
    if report:
        warnings.warn(
            f"gene sets in {src} look like {other} symbols but adata has {species} symbols; "
            f"mapped them to {species} orthologs (HGNC HCOP + Ensembl best partner), not by "
            f"changing case — {'; '.join(report)}. Give {species} symbols to silence this.",
            MkcellWarning,
            stacklevel=3,
        )
    wrong_case = {p.name: p.wrong_case for p in plans if p.wrong_case}
    if wrong_case:
        detail = "; ".join(f"{n!r}: {_names(g)}" for n, g in wrong_case.items())
        warnings.warn(
            f"genes in {src} match adata.var_names only when ignoring case (not used; fix the "
            f"casing to {species} symbols): {detail}",
            MkcellWarning,
            stacklevel=3,
        )
    return plans


def _check_sizes(plans: list[_SetPlan], min_genes: int, on_missing: str) -> None:
    for p in plans:
        need = min(min_genes, len(p.genes))
        if len(p.used) >= need and p.used:
            if p.missing:
                logger.info("gene set %s: %d/%d genes present", p.name, len(p.used), len(p.genes))
            continue
        if not p.used or on_missing == "skip":
            p.skipped = True
            done = f"`adata.obs[{p.key!r}]` is left out"
        else:
            done = f"scored `adata.obs[{p.key!r}]` with the {len(p.used)} genes present"
        msg = (
            f"gene set {p.name} ({p.source}): {len(p.used)}/{len(p.genes)} genes present, "
            f"fewer than min_genes={need}; {done}. Missing: {_names(p.missing)}"
        )
        if p.no_ortholog:
            msg += (
                f" (no {'mouse' if p.species == 'human' else 'human'} ortholog: "
                f"{_names(p.no_ortholog)})"
            )
        warnings.warn(msg, MkcellWarning, stacklevel=3)
        logger.warning(msg)


# --------------------------------------------------------------------------- scoring


def _baseline(x: np.ndarray) -> tuple[float, float]:
    """Mode of a score and the spread of its lower half (the non-cycling peak)."""
    x = x[np.isfinite(x)]
    lo, hi = np.percentile(x, [0.5, 99.5])
    if hi <= lo:
        return float(lo), float(np.std(x)) or 1.0
    n_bins = int(np.clip(x.size // 40, 20, 150))
    hist, edges = np.histogram(x, bins=n_bins, range=(lo, hi))
    hist = np.convolve(hist, np.array([1, 2, 3, 2, 1]) / 9, mode="same")
    mode = float((edges[:-1] + edges[1:])[np.argmax(hist)] / 2)
    left = x[x <= mode] - mode
    sd = float(np.sqrt(np.mean(left**2))) if left.size >= 10 else float(np.std(x))
    return mode, sd if sd > 0 else float(np.std(x)) or 1.0


def call_phase(
    s_score: np.ndarray, g2m_score: np.ndarray, *, rule: str = "centered", z: float = 2.0
) -> tuple[np.ndarray, dict[str, float]]:
    """Assign G1 / S / G2M from S and G2M scores.

    Parameters
    ----------
    s_score, g2m_score
        Scores per cell.
    rule
        ``"scanpy"``: scanpy's ``score_genes_cell_cycle`` rule (G1 when both scores are
        negative, else the larger one). ``"centered"``: each score is centred on its
        non-cycling peak (its mode) and scaled by the spread of the peak's lower half; a cell
        cycles when a centred score exceeds ``z``, and takes the phase of the larger one.
        Control genes rarely centre G1 cells exactly on 0, which the scanpy rule assumes.
        The centred rule assumes non-cycling cells form the tallest peak of each score:
        score whole samples, not a subset of mostly cycling cells.
    z
        Threshold of the centred rule, in spreads of the non-cycling peak.

    Returns
    -------
    Phase per cell and the baseline parameters used.
    """
    if rule == "scanpy":
        phase = np.where(g2m_score > s_score, "G2M", "S").astype(object)
        phase[(s_score < 0) & (g2m_score < 0)] = "G1"
        return phase, {}
    if rule != "centered":
        msg = f"phase_rule={rule!r}; choose 'centered' or 'scanpy'"
        raise MkcellError(msg)
    (ms, ss), (mg, sg) = _baseline(s_score), _baseline(g2m_score)
    zs, zg = (s_score - ms) / ss, (g2m_score - mg) / sg
    phase = np.where(zg > zs, "G2M", "S").astype(object)
    phase[np.maximum(zs, zg) <= z] = "G1"
    return phase, {"s_mode": ms, "s_spread": ss, "g2m_mode": mg, "g2m_spread": sg, "z": z}


def _decoupler_scores(
    X: sp.spmatrix | np.ndarray, var_names: pd.Index, plans: list[_SetPlan], method: str, seed: int
) -> pd.DataFrame:
    try:
        import decoupler as dc
    except ImportError as err:
        msg = (
            f"method={method!r} needs decoupler, which is not installed: `pip install decoupler` "
            "or use method='score_genes'"
        )
        raise ImportError(msg) from err
    net = pd.DataFrame(
        [(p.key, g) for p in plans for g in p.used], columns=["source", "target"]
    ).assign(weight=1.0)
    # a copy: X may be the cached `layers['mk_lognorm']`, which decoupler must not alter
    tmp = AnnData(X=sp.csr_matrix(X, copy=True), var=pd.DataFrame(index=var_names.astype(str)))
    tmp.var_names_make_unique()
    if hasattr(dc, "mt"):  # decoupler >= 2
        getattr(dc.mt, method)(tmp, net, tmin=1, raw=False, verbose=False)
        est = tmp.obsm[f"score_{method}"]
    else:  # decoupler 1.x
        runner = getattr(dc, f"run_{method}")
        kw = {"seed": seed} if method == "aucell" else {}
        runner(
            mat=tmp,
            net=net,
            source="source",
            target="target",
            min_n=1,
            use_raw=False,
            verbose=False,
            **kw,
        )
        est = tmp.obsm[f"{method}_estimate"]
    return pd.DataFrame(est).reindex(columns=[p.key for p in plans])


def score(
    adata: AnnData,
    *,
    gene_symbols: Literal["auto", "human", "mouse"] = "auto",
    method: Literal["score_genes", "aucell", "ulm"] = "score_genes",
    gmt: str | os.PathLike | Mapping[str, Sequence[str]] | None = None,
    min_genes: int = 5,
    on_missing: Literal["score", "skip"] = "score",
    layer: str | None = None,
    symbols_key: str | None = None,
    phase_rule: Literal["centered", "scanpy"] = "centered",
    phase_z: float = 2.0,
    ctrl_size: int = 50,
    n_bins: int = 25,
    seed: int = 0,
    key_added: str = K.SCORE,
    copy: bool = False,
) -> AnnData | None:
    """Score cell-cycle phase and the E2F, G2/M, spindle, cytokinesis and Aurora sets.

    Raw counts are copied, scaled to 10,000 per cell and ``log1p``-transformed inside;
    ``adata.X`` is never altered. S and G2M scores use the Tirosh 2016 lists (current HGNC
    symbols) with scanpy's ``score_genes_cell_cycle`` scoring (control size = the smaller
    list); every other set uses ``method``. Control genes are drawn from all genes of
    ``adata``. Human sets are mapped to mouse orthologs when the symbols are mouse.

    Parameters
    ----------
    adata
        Cells x genes with raw counts (``layer``, else ``layers['counts']``, else ``X``).
    gene_symbols
        Species of ``var_names``: ``"auto"`` (from casing, ``Xxxx`` mouse, ``XXXX`` human),
        ``"human"`` or ``"mouse"``. The integrated object is in human symbols.
    method
        ``"score_genes"`` (Seurat / scanpy), or ``"aucell"`` / ``"ulm"`` (need decoupler).
    gmt
        Extra gene sets: a GMT path or ``{name: genes}``; each adds
        ``obs['mk_score_<slug of name>']``. Sets in the other species' symbols are mapped
        through orthologs, with a warning.
    min_genes
        Fewest genes of a set that must be present (capped at the set's size).
    on_missing
        For a set below ``min_genes``: ``"score"`` with the genes present, or ``"skip"`` it.
        Either way a :class:`~mkcell.MkcellWarning` names the missing genes.
    layer
        Layer holding raw counts.
    symbols_key
        Column of ``adata.var`` holding symbols, when ``var_names`` are IDs.
    phase_rule
        ``"centered"`` (default) or ``"scanpy"``; see :func:`call_phase`.
    phase_z
        Threshold of the centred phase rule.
    ctrl_size
        Control genes per expression bin for the gene sets.
    n_bins
        Expression bins for drawing control genes.
    seed
        Seed for drawing control genes.
    key_added
        ``adata.uns`` key for genes used / missing and parameters.
    copy
        Return a scored copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or a copy with ``copy=True``); writes ``obs['S_score']``, ``obs['G2M_score']``,
    ``obs['phase']`` (categorical G1/S/G2M), ``obs['mk_score_*']`` and
    ``uns[key_added]`` (``params``, ``species``, ``sets`` table, ``phase_baseline``).
    """
    check_adata(adata)
    symbols = _check_inputs(adata, method, on_missing, min_genes, symbols_key, layer)
    species = _species_of_adata(symbols, gene_symbols)
    plans = _plan_sets(symbols, species, gmt)
    _check_sizes(plans, min_genes, on_missing)

    adata = adata.copy() if copy else adata
    X = log_normalize(adata, layer)
    scores, n_ctrl, both_cycle = _compute(X, symbols, plans, method, ctrl_size, n_bins, seed)
    del X
    baseline = _write_obs(adata, plans, scores, both_cycle, phase_rule, phase_z)
    params = {
        "gene_symbols": gene_symbols,
        "method": method,
        "gmt": "None" if gmt is None else (str(gmt) if not isinstance(gmt, Mapping) else "dict"),
        "min_genes": min_genes,
        "on_missing": on_missing,
        "layer": str(layer),
        "symbols_key": str(symbols_key),
        "phase_rule": phase_rule,
        "phase_z": phase_z,
        "ctrl_size": ctrl_size,
        "n_bins": n_bins,
        "seed": seed,
        "normalization": "normalize_total(1e4) + log1p",
    }
    adata.uns[key_added] = {
        "params": params,
        "species": species,
        "sets": _sets_table(plans, n_ctrl),
        "phase_baseline": baseline,
    }
    log_write("uns", key_added)
    logger.info(
        "scored %d cells (%s symbols): %s",
        adata.n_obs,
        species,
        ", ".join(f"{p.name} {len(p.used)}/{len(p.genes)}" for p in plans if not p.skipped),
    )
    return adata if copy else None


def _check_inputs(
    adata: AnnData,
    method: str,
    on_missing: str,
    min_genes: int,
    symbols_key: str | None,
    layer: str | None,
) -> pd.Index:
    """Check :func:`score`'s arguments and the counts; return the gene symbols."""
    if method not in METHODS:
        msg = f"method={method!r}; choose one of {list(METHODS)}"
        raise MkcellError(msg)
    if on_missing not in ("score", "skip"):
        msg = f"on_missing={on_missing!r}; choose 'score' or 'skip'"
        raise MkcellError(msg)
    if min_genes < 1:
        msg = f"min_genes={min_genes}; need at least 1"
        raise MkcellError(msg)
    if symbols_key is not None and symbols_key not in adata.var.columns:
        msg = f"no `adata.var[{symbols_key!r}]`; available var columns: {list(adata.var.columns)}"
        raise MkcellError(msg)
    get_counts(adata, layer)  # raw counts, or a clear error before any work
    return pd.Index(
        adata.var[symbols_key].astype(str) if symbols_key else adata.var_names.astype(str)
    )


def _compute(
    X: sp.csr_matrix,
    symbols: pd.Index,
    plans: list[_SetPlan],
    method: str,
    ctrl_size: int,
    n_bins: int,
    seed: int,
) -> tuple[dict[str, np.ndarray], dict[str, int], bool]:
    """Scores of the sets not skipped, their control-gene counts, whether S + G2M were scored."""
    active = [p for p in plans if not p.skipped]
    cols = {p.key: np.flatnonzero(symbols.isin(p.used)) for p in active}
    cycle = [p for p in active if p.key in CYCLE_SETS]
    other = [p for p in active if p.key not in CYCLE_SETS]
    scores: dict[str, np.ndarray] = {}
    n_ctrl: dict[str, int] = {}
    if len(cycle) == 2:
        size = min(len(p.used) for p in cycle)
        S, ctrl = score_genes_matrix(
            X, [cols[p.key] for p in cycle], ctrl_sizes=size, n_bins=n_bins, seed=seed
        )
        scores |= {p.key: S[:, j] for j, p in enumerate(cycle)}
        n_ctrl |= {p.key: c.size for p, c in zip(cycle, ctrl, strict=True)}
    elif cycle:
        logger.warning("only one of the S / G2M lists could be scored; no `adata.obs['phase']`")
    if other and method == "score_genes":
        S, ctrl = score_genes_matrix(
            X, [cols[p.key] for p in other], ctrl_sizes=ctrl_size, n_bins=n_bins, seed=seed + 1
        )
        scores |= {p.key: S[:, j] for j, p in enumerate(other)}
        n_ctrl |= {p.key: c.size for p, c in zip(other, ctrl, strict=True)}
    elif other:
        est = _decoupler_scores(X, symbols, other, method, seed)
        scores |= {p.key: est[p.key].to_numpy(dtype=np.float64) for p in other}
    return scores, n_ctrl, len(cycle) == 2


def _write_obs(
    adata: AnnData,
    plans: list[_SetPlan],
    scores: dict[str, np.ndarray],
    both_cycle: bool,
    phase_rule: str,
    phase_z: float,
) -> dict[str, float]:
    """Write the score columns and the phase; return the phase baseline."""
    for p in plans:  # drop stale columns of sets skipped now
        if p.skipped and p.key in adata.obs.columns:
            del adata.obs[p.key]
    for key, val in scores.items():
        adata.obs[key] = pd.Series(val, index=adata.obs_names, dtype=np.float64)
        log_write("obs", key)
    baseline: dict[str, float] = {}
    if both_cycle:
        phase, baseline = call_phase(
            scores[K.S_SCORE], scores[K.G2M_SCORE], rule=phase_rule, z=phase_z
        )
        adata.obs[K.PHASE] = pd.Categorical(phase, categories=list(PHASES))
        log_write("obs", K.PHASE)
    elif K.PHASE in adata.obs.columns:
        del adata.obs[K.PHASE]
    return baseline


def _sets_table(plans: list[_SetPlan], n_ctrl: dict[str, int]) -> pd.DataFrame:
    """One row per gene set: what was asked, found, translated and scored."""
    return pd.DataFrame(
        {
            "key": [p.key for p in plans],
            "set": [p.name for p in plans],
            "source": [p.source for p in plans],
            "species_given": [p.species for p in plans],
            "translated": [p.translated for p in plans],
            "scored": [not p.skipped for p in plans],
            "n_genes": [len(p.genes) for p in plans],
            "n_used": [len(p.used) for p in plans],
            "n_control": [n_ctrl.get(p.key, 0) for p in plans],
            "genes_used": [";".join(p.used) for p in plans],
            "genes_missing": [";".join(p.missing) for p in plans],
            "no_ortholog": [";".join(p.no_ortholog) for p in plans],
        }
    )
