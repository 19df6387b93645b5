"""Simulated mouse + human marrow with known megakaryopoiesis truth.

The model, per species and sample, cell by cell:

* a position on the haematopoietic tree: HSC/MPP, MEP, the Mk lineage (MkP, then
  a continuous immature-Mk stage, then mature Mk, along a true maturation time in
  [0, 1]), erythroid, myeloid;
* program activities from that position (HSC, MEP, MkP, Mk, erythroid, myeloid
  and broad, modest "gradient" programs along each branch); programs draw their
  genes from the whole gene pool, so they overlap;
* a cell-cycle phase (G1 / S / G2M) whose probability depends on the state, on
  the condition (up to 80% of MkP cycle in MDS) and, for maturing Mk, fades along
  maturation (endomitosis); S and G2M programs act on the Tirosh, Hallmark and
  cytokinesis genes and on ``n_cycle_genes`` unlisted genes per phase (default 120,
  up and down, as strong as lineage programs); cycling cells hold more RNA;
* condition effects: MDS raises the MkP share of the Mk lineage, stalls a share
  of maturing Mk just past MkP (they pile up at ``STALL_TIME``), skews the rest
  towards early times and raises E2F / AURKA / AURKB / PLK1 in MkP; treatment
  rescues a share (``treatment_rescue``) of those effects;
* a species effect on every gene, a per-sample batch effect on every gene and on
  sequencing depth, and library size;
* negative-binomial counts (gamma-Poisson), generated sample by sample as sparse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.special import expit, logit

from .. import _keys as K
from .._genesets import builtin_sets
from .._markers import marker_panels
from .._ortholog_table import best_partners
from .._settings import MkcellError, logger
from .._utils import data_path
from . import _endomitosis as _endo

#: Conditions simulated per species (a mouse model with a treatment arm; patients).
CONDITIONS = {"mouse": ("control", "MDS", "MDS_drug"), "human": ("healthy", "MDS")}
#: Mean share of MkP among Mk-lineage cells in controls, and in MDS at ``mds_effect=1``.
BASE_MKP_FRACTION = 0.30
MDS_MKP_FRACTION = 0.55
#: Where MkP ends and maturing Mk starts on the true maturation time, and where the
#: continuous immature-Mk stage gives way to mature Mk.
MKP_END = 0.35
IMMATURE_END = 0.7
#: Where maturation stalls in MDS: a share of maturing Mk piles up just past MkP.
STALL_TIME = 0.45
#: Genes per smooth gradient program along each branch (given for 1,500 filler genes).
GRADIENT_GENES = 20
#: Unlisted genes each cycle phase moves, by default (up and down).
N_CYCLE_GENES = 120
#: Mean composition of a sample (``mk`` = MkP + Mk).
COMPOSITION = {K.HSC_MPP: 0.12, "MEP": 0.10, "mk": 0.22, "erythroid": 0.26, "myeloid": 0.30}
#: Share of cycling (S or G2M) cells per state in controls; for Mk it is the share at
#: the start of the immature stage (endomitosis), falling to ``MATURE_CYCLING``.
CYCLING = {K.HSC_MPP: 0.25, "MEP": 0.6, "MkP": 0.5, "Mk": 0.35, "erythroid": 0.55, "myeloid": 0.45}
MATURE_CYCLING = 0.03
#: Extra cycling share of MkP (and, halved, immature Mk) in MDS at ``mds_effect=1``: up to 80%
#: of MkP cycle.
MDS_EXTRA_CYCLING = 0.3
PROGRAMS = (
    "hsc",
    "mep",
    "mkp",
    "mk",
    "ery",
    "my",
    "meg_g0",
    "meg_g1",
    "meg_g2",
    "meg_g3",
    "meg_g4",
    "meg_g5",
    "ery_g0",
    "ery_g1",
    "ery_g2",
    "my_g0",
    "my_g1",
    "my_g2",
    "S",
    "G2M",
    "mds_e2f",
)
_P = {p: i for i, p in enumerate(PROGRAMS)}
_BRANCH_STATE = {"hsc": K.HSC_MPP, "mep": "MEP", "ery": "erythroid", "my": "myeloid"}


@dataclass
class _Design:
    genes: dict[str, list[str]]  # species -> symbols; the first n_shared are orthologous pairs
    n_shared: int
    base: dict[str, np.ndarray]  # species -> baseline log mean per gene
    theta: dict[str, np.ndarray]  # species -> NB shape per gene
    loadings: dict[str, np.ndarray]  # species -> programs x genes log-fold changes
    cycle_genes: pd.DataFrame  # unlisted cycle genes: column index, phase, log-fold change


@lru_cache(maxsize=1)
def _gene_pools() -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """Reciprocal unambiguous ortholog pairs, and mouse-only / human-only symbols."""
    best_m, best_h = best_partners("mouse"), best_partners("human")
    pairs = best_m[~best_m["tie"]].reset_index()[["mouse", "human"]]
    recip = best_h[~best_h["tie"]].reset_index()[["human", "mouse"]]
    pairs = (
        pairs.merge(recip, on=["mouse", "human"]).drop_duplicates("human").drop_duplicates("mouse")
    )
    pairs = pairs[~pairs["human"].str.match(r"^(MT-|RPL|RPS|LOC|LINC|MIR|SNOR)")]
    bm_m = pd.read_csv(data_path("orthologs", "biomart_mouse_to_human.csv.gz"))
    bm_h = pd.read_csv(data_path("orthologs", "biomart_human_to_mouse.csv.gz"))
    m_only = set(bm_m.loc[bm_m["Human gene name"].isna(), "Gene name"].dropna()) - set(best_m.index)
    h_only = set(bm_h.loc[bm_h["Mouse gene name"].isna(), "Gene name"].dropna()) - set(best_h.index)
    pat = re.compile(r"^(?:Gm\d|mt-|Mir|Snor|Rn|LOC|LINC|MIR|SNOR|RNA|MT|RPL|RPS)|P\d+$|-AS\d|Rik$")
    m_only = tuple(sorted(g for g in m_only if not pat.search(g)))
    h_only = tuple(sorted(g for g in h_only if not pat.search(g)))
    return pairs.set_index("human", drop=False), m_only, h_only


def _design(
    rng: np.random.Generator,
    n_genes: int,
    n_species_only: int,
    species_effect: float,
    cycle_strength: float,
    n_cycle_genes: int,
) -> _Design:
    pairs, m_pool, h_pool = _gene_pools()
    panels = marker_panels()
    sets = builtin_sets()
    needed = list(dict.fromkeys(list(panels["human"]) + [g for s in sets.values() for g in s]))
    key = [g for g in needed if g in pairs.index]
    if n_genes < len(key) + 120:
        msg = (
            f"n_genes={n_genes} is too small: the marker panels and gene sets alone need "
            f"{len(key)}; use n_genes >= {len(key) + 120}"
        )
        raise MkcellError(msg)
    rest = np.asarray(pairs.index.difference(key))
    fill = sorted(rng.choice(rest, size=n_genes - len(key), replace=False))
    shared = pairs.loc[key + fill]
    m_only = (
        sorted(rng.choice(np.asarray(m_pool), size=n_species_only, replace=False))
        if n_species_only
        else []
    )
    h_only = (
        sorted(rng.choice(np.asarray(h_pool), size=n_species_only, replace=False))
        if n_species_only
        else []
    )
    genes = {"mouse": list(shared["mouse"]) + m_only, "human": list(shared["human"]) + h_only}

    n_all = n_genes + n_species_only
    W = np.zeros((len(PROGRAMS), n_all))
    col = {g: i for i, g in enumerate(shared["human"])}
    fill_idx = np.array([col[g] for g in fill])
    scale = len(fill) / 1500  # program sizes are given for 1,500 filler genes

    def take(n: int) -> np.ndarray:
        """Genes of one program, drawn from every filler gene: programs overlap, as in marrow."""
        n = int(min(fill_idx.size, max(4, round(n * scale))))
        return rng.choice(fill_idx, size=n, replace=False)

    state_prog = {
        K.HSC_MPP: "hsc",
        "MEP": "mep",
        "MkP": "mkp",
        "Mk": "mk",
        "erythroid": "ery",
        "myeloid": "my",
    }
    for state, prog in state_prog.items():
        idx = [col[g] for g in panels.loc[panels["state"] == state, "human"] if g in col]
        W[_P[prog], idx] = rng.uniform(2.0, 3.0, len(idx))
        idx = take(150)  # a state differs in many genes, as real marrow states do
        W[_P[prog], idx] = rng.uniform(0.5, 2.0, idx.size)
    for prog in PROGRAMS:
        if "_g" in prog:  # broad, modest gradients along each branch
            idx = take(GRADIENT_GENES)
            W[_P[prog], idx] = rng.uniform(0.5, 1.5, idx.size)
    s_genes = [
        col[g] for g in sets["TIROSH2016_S_PHASE"] + sets["HALLMARK_E2F_TARGETS"] if g in col
    ]
    g2m_genes = [
        col[g]
        for name in (
            "TIROSH2016_G2M_PHASE",
            "HALLMARK_G2M_CHECKPOINT",
            "MK_CYTOKINESIS",
            "MK_AURORA",
        )
        for g in sets[name]
        if g in col
    ]
    tirosh = {col[g] for g in sets["TIROSH2016_S_PHASE"] + sets["TIROSH2016_G2M_PHASE"] if g in col}
    unlisted = []
    for prog, idx in (("S", s_genes), ("G2M", g2m_genes)):
        idx = np.unique(idx)
        lo = np.where(np.isin(idx, list(tirosh)), 1.2, 0.5)  # the canonical markers respond most
        W[_P[prog], idx] = cycle_strength * rng.uniform(lo, lo + 0.8)
        if n_cycle_genes:  # genes in no published cycle list move with each phase, up and down
            extra = rng.choice(fill_idx, size=min(n_cycle_genes, fill_idx.size), replace=False)
            sign = np.where(rng.uniform(size=extra.size) < 0.65, 1.0, -1.0)
            W[_P[prog], extra] += cycle_strength * sign * rng.uniform(0.5, 2.0, extra.size)
            unlisted.append(
                pd.DataFrame(
                    {"column": extra, "phase": prog, "log_fold_change": W[_P[prog], extra]}
                )
            )
    mds_idx = [col[g] for g in sets["HALLMARK_E2F_TARGETS"] + sets["MK_AURORA"] if g in col]
    W[_P["mds_e2f"], mds_idx] = rng.uniform(0.5, 0.9, len(mds_idx))
    # species-only genes follow random programs of their own
    for j in range(n_genes, n_all):
        W[rng.integers(0, 6), j] = rng.uniform(0.5, 1.5)

    base_shared = rng.normal(-1.8, 1.0, n_genes)
    base, theta, loadings = {}, {}, {}
    for sp_name in ("mouse", "human"):
        b = np.concatenate(
            [
                base_shared + rng.normal(0, species_effect, n_genes),
                rng.normal(-1.8, 1.0, n_species_only),
            ]
        )
        base[sp_name] = b
        theta[sp_name] = np.exp(rng.normal(np.log(6.0), 0.5, n_all))
        # the same programs in both species, with species-specific strengths
        # (gene x species interaction)
        loadings[sp_name] = W * np.exp(rng.normal(0, 0.25 * species_effect, W.shape))
    cycle = (
        pd.concat(unlisted, ignore_index=True)
        if unlisted
        else pd.DataFrame(columns=["column", "phase", "log_fold_change"])
    )
    return _Design(
        genes=genes, n_shared=n_genes, base=base, theta=theta, loadings=loadings, cycle_genes=cycle
    )


def _activities(branch: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Program activities (cells x programs, without cycle/MDS) from the tree position."""
    A = np.zeros((branch.size, len(PROGRAMS)))

    def on(b: str) -> np.ndarray:
        return branch == b

    m = on("hsc")
    A[m, _P["hsc"]] = 1 - 0.5 * t[m]
    A[m, _P["mep"]] = 0.3 * t[m]
    m = on("mep")
    A[m, _P["hsc"]] = 0.5 * (1 - t[m])
    A[m, _P["mep"]] = 1.0
    A[m, _P["mkp"]] = 0.3 * t[m]
    m = on("mk")
    A[m, _P["mep"]] = np.clip(1 - t[m] / 0.25, 0, 1) * 0.6
    imm = np.clip(
        (t[m] - MKP_END) / (IMMATURE_END - MKP_END), 0, 1
    )  # progress through the immature stage
    A[m, _P["mkp"]] = np.where(t[m] < MKP_END, 0.6 + 0.4 * t[m] / MKP_END, 1 - 0.8 * imm)
    # immature Mk (MKP_END..IMMATURE_END) gain the Mk program continuously; mature Mk hold it
    A[m, _P["mk"]] = imm**0.8
    for k in range(6):
        A[m, _P[f"meg_g{k}"]] = np.exp(-((t[m] - k / 5) ** 2) / (2 * 0.15**2))
    for b, prog in (("ery", "ery"), ("my", "my")):
        m = on(b)
        A[m, _P[prog]] = np.sqrt(t[m])
        A[m, _P["mep" if b == "ery" else "hsc"]] = np.clip(1 - t[m] / 0.3, 0, 1) * 0.6
        for k in range(3):
            A[m, _P[f"{prog}_g{k}"]] = np.exp(-((t[m] - k / 2) ** 2) / (2 * 0.15**2))
    return A


def _sample_truth(
    rng: np.random.Generator, condition: str, mds_effect: float, rescue: float, sample_sd: float
) -> float:
    """True MkP share of the Mk lineage for one sample."""
    shift = (logit(MDS_MKP_FRACTION) - logit(BASE_MKP_FRACTION)) * mds_effect
    role = _role(condition)
    mean = (
        logit(BASE_MKP_FRACTION)
        + {"control": 0.0, "mds": shift, "treated": shift * (1 - rescue)}[role]
    )
    return float(expit(mean + rng.normal(0, sample_sd)))


def _role(condition: str) -> str:
    return {"control": "control", "healthy": "control", "MDS": "mds", "MDS_drug": "treated"}[
        condition
    ]


def _simulate_sample(
    rng: np.random.Generator,
    design: _Design,
    species: str,
    sample: str,
    condition: str,
    n: int,
    mkp_fraction: float,
    mds_effect: float,
    rescue: float,
    batch: np.ndarray,
    depth: float,
    endo: tuple[np.random.Generator, float] | None = None,
) -> AnnData:
    role = _role(condition)
    strength = {"control": 0.0, "mds": mds_effect, "treated": mds_effect * (1 - rescue)}[role]
    comp = rng.dirichlet(np.array(list(COMPOSITION.values())) * 300)
    branch = rng.choice(np.array(["hsc", "mep", "mk", "ery", "my"]), size=n, p=comp)
    t = rng.uniform(0, 1, n)
    mk = branch == "mk"
    is_mkp = mk & (rng.uniform(size=n) < mkp_fraction)
    t[is_mkp] = rng.uniform(0, MKP_END, is_mkp.sum())
    mat = mk & ~is_mkp
    # MDS: a share of maturing Mk stalls just past MkP (they pile up), the rest skew early
    stall = mat & (rng.uniform(size=n) < 0.35 * strength)
    free = mat & ~stall
    t[free] = MKP_END + (1 - MKP_END) * rng.beta(1.0, 1.0 + 0.8 * strength, free.sum())
    t[stall] = np.clip(rng.normal(STALL_TIME, 0.04, stall.sum()), MKP_END, 1.0)
    state = np.array([_BRANCH_STATE.get(b, "") for b in branch], dtype=object)
    state[is_mkp] = K.MKP
    state[mat] = K.MK

    p_cyc = np.array([CYCLING[s] for s in state])
    p_cyc[is_mkp] = np.clip(p_cyc[is_mkp] + MDS_EXTRA_CYCLING * strength, 0, 0.95)
    # maturing Mk: endomitotic cycling fades continuously along maturation
    fade = np.clip((t[mat] - MKP_END) / (IMMATURE_END - MKP_END), 0, 1)
    start = CYCLING[K.MK] + 0.5 * MDS_EXTRA_CYCLING * strength
    p_cyc[mat] = start + (MATURE_CYCLING - start) * fade
    for b in ("ery", "my"):  # cycling fades as these branches mature
        m = branch == b
        p_cyc[m] = p_cyc[m] * (1.2 - t[m])
    cyc = rng.uniform(size=n) < p_cyc
    phase = np.where(cyc, np.where(rng.uniform(size=n) < 0.55, "S", "G2M"), "G1")

    A = _activities(branch, t)
    A[:, _P["S"]] = (phase == "S") + 0.15 * (phase == "G2M")
    A[:, _P["G2M"]] = phase == "G2M"
    A[:, _P["mds_e2f"]] = strength * (is_mkp + 0.3 * (state == "MEP"))
    W = design.loadings[species]
    # cells in S and G2M hold more RNA; each sample has its own depth
    lib = rng.lognormal(depth, 0.3, n) * np.where(
        phase == "G2M", 1.5, np.where(phase == "S", 1.25, 1.0)
    )
    log_mu = design.base[species][None, :] + batch[None, :] + A @ W
    mu = np.exp(log_mu) * lib[:, None]
    theta = design.theta[species][None, :]
    gam = rng.gamma(theta, mu / theta)
    counts = rng.poisson(gam).astype(np.float32)
    if endo is not None:  # its own generator, after the default draw: nothing else shifts
        endo_truth = _endo.cell_truth(endo[0], t, mk, endo[1], MKP_END)
        cols = _endo.abscission_columns(design.genes["human"][: design.n_shared])
        _endo.apply(endo[0], counts, gam, np.flatnonzero(mk), phase == "G2M", endo_truth, cols)
    X = sp.csr_matrix(counts)

    names = [f"{sample}-{i:05d}" for i in range(n)]
    true_time = np.where(mk, t, np.nan)
    stage = np.where(
        is_mkp,
        K.MKP,
        np.where(mat & (t < IMMATURE_END), "immature_Mk", np.where(mat, "mature_Mk", "")),
    )
    obs = pd.DataFrame(
        {
            K.SPECIES: species,
            K.SAMPLE: sample,
            K.CONDITION: condition,
            "true_state": state,
            "true_branch": branch,
            "true_time": true_time,
            "true_progress": t,
            "true_phase": phase,
            "true_stage": stage,
        },
        index=pd.Index(names, name="cell"),
    )
    if endo is not None:
        obs["true_endomitosis"], obs["true_ploidy"] = endo_truth
    return AnnData(
        X=X, obs=obs, var=pd.DataFrame(index=pd.Index(design.genes[species], name="gene"))
    )


def simulate_marrow(
    n_cells: int = 6000,
    *,
    n_genes: int = 1500,
    n_species_only: int = 100,
    species: tuple[str, ...] = ("mouse", "human"),
    n_samples: int = 4,
    human_share: float = 0.4,
    mds_effect: float = 1.0,
    treatment_rescue: float = 0.5,
    null: bool = False,
    cycle_strength: float = 1.0,
    n_cycle_genes: int = N_CYCLE_GENES,
    species_effect: float = 1.0,
    batch_sd: float = 0.25,
    sample_sd: float = 0.25,
    endomitosis: bool = False,
    seed: int = 0,
) -> dict[str, AnnData]:
    """Simulate mouse and human marrow scRNA-seq with megakaryopoiesis truth.

    Parameters
    ----------
    n_cells
        Total cells over both species (500 to 1,000,000).
    n_genes
        Orthologous genes shared by both species (marker panels and gene sets first).
    n_species_only
        Extra genes per species with no ortholog in the other.
    species
        Which species to return.
    n_samples
        Samples (replicates) per condition. Mouse conditions are ``control``, ``MDS``,
        ``MDS_drug``; human conditions are ``healthy`` and ``MDS``.
    human_share
        Share of cells that are human (when both species are simulated).
    mds_effect
        Scales every MDS effect: MkP accumulation, maturation arrest, E2F/Aurora
        activity and extra cycling of MkP. 0 is a null.
    treatment_rescue
        Share of the MDS effect that ``MDS_drug`` removes (0 none, 1 full rescue).
    null
        Conditions differ in label only (same as ``mds_effect=0``).
    cycle_strength
        Scales the S and G2M programs (2 = strong cycling).
    n_cycle_genes
        Genes in no published cycle list that each phase (S, G2M) moves, up (65%) or
        down, at amplitudes like the lineage programs' (0.5-2 log-fold); drawn from all
        filler genes, so some also carry lineage programs. 0 leaves only listed genes.
    species_effect
        SD of the per-gene log-fold change between species.
    batch_sd
        SD of the per-gene, per-sample log-fold change.
    sample_sd
        SD (logit scale) of the per-sample MkP share around its condition mean.
    endomitosis
        Add endomitosis truth to the Mk lineage (``mkcell/datasets/_endomitosis.py``): a
        per-sample endomitosis share (0.85 in controls, 0.45 in MDS at ``mds_effect=1``,
        partly restored by the drug, equal under ``null``), a per-cell share rising along
        maturation, a ploidy per cell (2N to 64N, rising with maturation and the share); in
        G2M cells the abscission genes fall with the share, and total RNA scales with
        ``sqrt(ploidy / 2)``. Written to ``obs['true_endomitosis']``,
        ``obs['true_ploidy']`` and the sample table's ``endomitosis_level``. Drawn from a
        generator of its own: every other column, and every count outside the Mk lineage,
        is the same as with ``False`` (the default, unchanged output).
    seed
        Random seed; the same seed gives identical data.

    Returns
    -------
    ``{"mouse": AnnData, "human": AnnData}`` with raw counts in ``X`` and truth in
    ``obs`` (``true_state``, ``true_branch``, ``true_time``, ``true_progress``
    (position along its own branch, every cell), ``true_phase``, ``true_stage``:
    MkP / immature_Mk / mature_Mk on the Mk lineage), the
    per-sample truth in ``uns['mk_truth']['samples']`` (``mkp_fraction`` is the
    share of MkP among Mk-lineage cells actually simulated), and the unlisted cycle
    genes in ``uns['mk_truth']['cycle_genes']`` (gene, phase, log-fold change).
    """
    _check_args(n_cells, species, n_cycle_genes, n_samples)
    if null:
        mds_effect = 0.0
    rng = np.random.default_rng(seed)
    design = _design(rng, n_genes, n_species_only, species_effect, cycle_strength, n_cycle_genes)
    share = (
        {"mouse": 1 - human_share, "human": human_share} if len(species) == 2 else {species[0]: 1.0}
    )
    effects = _Effects(
        mds_effect=mds_effect,
        rescue=treatment_rescue,
        sample_sd=sample_sd,
        batch_sd=batch_sd,
        endo=_endo.generator(seed) if endomitosis else None,
    )
    out = {}
    for sp_name in species:
        n_sp = round(n_cells * share[sp_name])
        adata, samples = _simulate_species(rng, design, sp_name, n_sp, n_samples, effects)
        _categorize_truth(adata)
        adata.uns[K.TRUTH] = {
            "samples": samples,
            "cycle_genes": _cycle_gene_table(design, sp_name),
            "params": {
                "n_cells": n_cells,
                "mds_effect": mds_effect,
                "treatment_rescue": treatment_rescue,
                "cycle_strength": cycle_strength,
                "n_cycle_genes": n_cycle_genes,
                "species_effect": species_effect,
                "batch_sd": batch_sd,
                "seed": seed,
                "immature_end": IMMATURE_END,
                "stall_time": STALL_TIME,
                "mkp_end": MKP_END,
                "null": bool(null or mds_effect == 0),
            },
        }
        if endomitosis:
            adata.uns[K.TRUTH]["params"]["endomitosis"] = True
        out[sp_name] = adata
        logger.info("simulated %s marrow: %d cells x %d genes", sp_name, adata.n_obs, adata.n_vars)
    return out


def _check_args(n_cells: int, species: tuple[str, ...], n_cycle_genes: int, n_samples: int) -> None:
    """Refuse sizes and species that :func:`simulate_marrow` cannot simulate."""
    if not 500 <= n_cells <= 1_000_000:
        msg = f"n_cells={n_cells} is out of range; choose 500 to 1,000,000"
        raise MkcellError(msg)
    bad = [s for s in species if s not in CONDITIONS]
    if bad or not species:
        msg = f"unknown species {bad}; choose from {list(CONDITIONS)}"
        raise MkcellError(msg)
    if n_cycle_genes < 0:
        msg = f"n_cycle_genes={n_cycle_genes}; use 0 or more"
        raise MkcellError(msg)
    if n_samples < 1:
        msg = f"n_samples={n_samples}; need at least 1 sample per condition"
        raise MkcellError(msg)


@dataclass(frozen=True)
class _Effects:
    """Condition and sample effects shared by every simulated sample."""

    mds_effect: float
    rescue: float
    sample_sd: float
    batch_sd: float
    endo: np.random.Generator | None = None  # endomitosis truth (its own stream), or None


def _simulate_species(
    rng: np.random.Generator,
    design: _Design,
    sp_name: str,
    n_sp: int,
    n_samples: int,
    effects: _Effects,
) -> tuple[AnnData, pd.DataFrame]:
    """Every sample of one species, concatenated, and the per-sample truth table."""
    conds = CONDITIONS[sp_name]
    n_per = np.full(len(conds) * n_samples, n_sp // (len(conds) * n_samples))
    n_per[: n_sp - n_per.sum()] += 1
    parts, rows = [], []
    for i, (cond, j) in enumerate((c, j) for c in conds for j in range(1, n_samples + 1)):
        sample = f"{sp_name}_{cond}_{j}"
        frac = _sample_truth(rng, cond, effects.mds_effect, effects.rescue, effects.sample_sd)
        level = None
        if effects.endo is not None:
            share = {"control": 0.0, "mds": 1.0, "treated": 1 - effects.rescue}[_role(cond)]
            level = _endo.sample_level(effects.endo, effects.mds_effect * share, effects.sample_sd)
        a = _simulate_in_chunks(
            rng, design, sp_name, sample, cond, (n_per[i], frac, level), effects
        )
        parts.append(a)
        rows.append(_sample_row(a, sample, sp_name, cond, frac))
        if level is not None:
            rows[-1]["endomitosis_level"] = level
        logger.debug("simulated %s: %d cells", sample, a.n_obs)
    return _concat(parts), pd.DataFrame(rows)


def _simulate_in_chunks(
    rng: np.random.Generator,
    design: _Design,
    sp_name: str,
    sample: str,
    cond: str,
    sizes: tuple[int, float, float | None],
    effects: _Effects,
) -> AnnData:
    """One sample: its batch effect and depth, then its cells in chunks of about 4,000.

    ``sizes`` is (cells, true MkP share, endomitosis level or None).
    """
    n, frac, level = sizes
    endo = None if level is None else (effects.endo, level)
    batch = rng.normal(0, effects.batch_sd, design.base[sp_name].size)  # per-sample, per-gene
    depth = rng.normal(0, effects.batch_sd)  # per-sample sequencing depth
    # generate in chunks to stay memory-lean at 1M cells
    chunks = []
    for k, m in enumerate(np.array_split(np.arange(n), max(1, n // 4000))):
        a = _simulate_sample(
            rng,
            design,
            sp_name,
            sample,
            cond,
            m.size,
            frac,
            effects.mds_effect,
            effects.rescue,
            batch,
            depth,
            endo,
        )
        a.obs_names = [f"{sample}-{k}-{x:05d}" for x in range(m.size)]
        chunks.append(a)
    return chunks[0] if len(chunks) == 1 else _concat(chunks)


def _sample_row(a: AnnData, sample: str, sp_name: str, cond: str, frac: float) -> dict:
    """The truth table's row of one simulated sample (MkP share as simulated and as drawn)."""
    lin = a.obs["true_state"].isin(K.MK_LINEAGE)
    n_mkp = int((a.obs["true_state"] == K.MKP).sum())
    return {
        "sample": sample,
        "species": sp_name,
        "condition": cond,
        "n_cells": a.n_obs,
        "n_mk_lineage": int(lin.sum()),
        "n_mkp": n_mkp,
        "mkp_fraction": n_mkp / max(int(lin.sum()), 1),
        "mkp_fraction_expected": frac,
        "mkp_fraction_of_all": n_mkp / a.n_obs,
    }


def _categorize_truth(adata: AnnData) -> None:
    """Make the label and truth columns of ``obs`` categorical, with fixed category orders."""
    for col in (K.SPECIES, K.SAMPLE, K.CONDITION, "true_state", "true_branch", "true_phase"):
        adata.obs[col] = pd.Categorical(adata.obs[col])
    adata.obs["true_state"] = adata.obs["true_state"].cat.set_categories(
        [s for s in K.STATES if s != "other"]
    )
    adata.obs["true_phase"] = adata.obs["true_phase"].cat.set_categories(["G1", "S", "G2M"])
    adata.obs["true_stage"] = pd.Categorical(
        adata.obs["true_stage"].replace("", np.nan),
        categories=[K.MKP, "immature_Mk", "mature_Mk"],
    )


def _cycle_gene_table(design: _Design, sp_name: str) -> pd.DataFrame:
    """The unlisted cycle genes under one species' symbols (gene, phase, log-fold change)."""
    cyc = design.cycle_genes
    return pd.DataFrame(
        {
            "gene": [design.genes[sp_name][int(j)] for j in cyc["column"]],
            "phase": cyc["phase"].astype(str).to_numpy(),
            "log_fold_change": cyc["log_fold_change"].to_numpy(float),
        }
    )


def _concat(parts: list[AnnData]) -> AnnData:
    X = sp.vstack([p.X for p in parts], format="csr")
    obs = pd.concat([p.obs for p in parts])
    return AnnData(X=X, obs=obs, var=parts[0].var.copy())
