"""MkP -> mature Mk pseudotime and fate probabilities (CellRank 2 on the integrated space)."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._blocks import column_mean_var, rmatmul
from .._graph import knn_graph, neighbors
from .._markers import panel_scores
from .._settings import MkcellError, logger
from .._utils import check_adata, log_write, species_of, zscore_within
from ..pp._normalize import log_normalize
from ._axis import Axis, IfEndsMissing, check_choice, choose_axis
from ._fate import fate_probabilities

#: Other terminal states competing with mature Mk for the fate probabilities.
OTHER_TERMINALS = ("erythroid", "myeloid")


def _dpt(g: AnnData, root: int, n_dcs: int) -> np.ndarray:
    """Diffusion pseudotime from ``root`` (inf where unreachable).

    The diffusion map :func:`_auto_root` computed on ``g`` is reused when it has the
    components asked for (one eigendecomposition per graph, not two).
    """
    import scanpy as sc

    n_comps = min(n_dcs + 1, g.n_obs - 2)
    if "X_diffmap" not in g.obsm or g.obsm["X_diffmap"].shape[1] != n_comps:
        sc.tl.diffmap(g, n_comps=n_comps)
    g.uns["iroot"] = int(root)
    sc.tl.dpt(g, n_dcs=min(n_dcs, g.obsm["X_diffmap"].shape[1] - 1))
    return g.obs["dpt_pseudotime"].to_numpy(float)


def _auto_root(g: AnnData, is_root: np.ndarray, is_end: np.ndarray) -> int:
    """The root-state cell at the far end of the diffusion component separating root from end."""
    import scanpy as sc

    if "X_diffmap" not in g.obsm:
        sc.tl.diffmap(g, n_comps=min(11, g.n_obs - 2))
    dc = g.obsm["X_diffmap"][:, 1:]
    diff = dc[is_end].mean(0) - dc[is_root].mean(0)
    j = int(np.argmax(np.abs(diff) / (dc.std(0) + 1e-12)))
    proj = dc[:, j] * np.sign(diff[j])
    cand = np.flatnonzero(is_root)
    return int(cand[np.argmin(proj[cand])])


def trajectory(
    adata: AnnData,
    *,
    root: str | None = None,
    lineage: tuple[str, ...] = K.MK_LINEAGE,
    root_state: str = K.MKP,
    terminal_state: str = K.MK,
    state_key: str = K.STATE,
    use_rep: str = K.LATENT,
    n_neighbors: int = 30,
    n_dcs: int = 10,
    connectivity_weight: float = 0.2,
    terminal_quantile: float = 0.9,
    solver: str = "auto",
    tol: float = 1e-6,
    n_drivers: int = 50,
    condition_key: str | None = K.CONDITION,
    regress_cycle: bool = True,
    refine_states: bool = True,
    if_ends_missing: IfEndsMissing = "raise",
    seed: int = 0,
    copy: bool = False,
) -> AnnData | None:
    """Pseudotime from MkP to mature Mk, and the probability of reaching mature Mk.

    1. **Pseudotime** on the Mk-lineage cells (``lineage`` states): diffusion
       pseudotime on the kNN graph of the integrated space, rooted at ``root`` or at
       the ``root_state`` cell farthest from ``terminal_state`` along the diffusion
       component that separates them; rescaled to [0, 1]. Cells off the lineage, or
       unreachable in the graph, get NaN (reported). The integrated space is trained
       without cell-cycle genes (:func:`mkcell.pp.highly_variable_genes`), so cycling
       does not bend the axis.
    2. **Fate**: CellRank 2 ``PseudotimeKernel`` (soft threshold) on a diffusion
       pseudotime over all cells, mixed with a ``ConnectivityKernel``
       (``connectivity_weight``). Terminal states come from the annotation — mature
       Mk = ``terminal_state`` cells above the ``terminal_quantile`` of pseudotime,
       plus the most mature erythroid and myeloid cells when present — so no Schur
       decomposition (dense n x n) is ever computed; fate probabilities are solved
       sparse (:func:`mkcell.tl._fate.fate_probabilities`: sparse LU up to 30k cells,
       Gauss-Seidel-preconditioned GMRES above, CellRank's own solver on request, each with a
       fallback when it does not converge).
    3. **Drivers**: genes correlated (Pearson, log-normalised) with pseudotime on the
       lineage, and their binned trends along pseudotime per condition.

    Parameters
    ----------
    adata
        ``obsm[use_rep]`` and ``obs[state_key]`` (from :func:`mkcell.tl.annotate`).
    root
        Name of the root cell (default: chosen automatically among ``root_state``).
    lineage, root_state, terminal_state
        States of the lineage, where it starts and where it ends.
    state_key, use_rep
        Inputs.
    n_neighbors, n_dcs
        kNN graph size and diffusion components.
    connectivity_weight
        Weight of the ConnectivityKernel (0 = PseudotimeKernel alone).
    terminal_quantile
        Pseudotime quantile of ``terminal_state`` cells above which they are mature.
    solver, tol
        ``"auto"`` (mkcell's sparse solvers) or a CellRank solver (``"gmres"``...), and
        the tolerance.
    n_drivers
        Driver genes kept in the table.
    condition_key
        Trends per condition when present.
    regress_cycle
        Before the lineage kNN graph, remove from the lineage cells' embedding its
        linear dependence on the S / G2M scores (``obsm['mk_cycle_covariates']``, else
        :func:`mkcell.pp.cycle_scores`) and called phase, fitted within each state
        and species with the MkP / Mk panel scores as lineage position, so that
        cycling that changes along maturation is not removed with it. Applied when
        the cycle explains at least ``MIN_CYCLE_SHARE`` (5%) of that variance; what
        was done is in ``uns['mk_trajectory']['cycle_regression']``.
    if_ends_missing
        With fewer than 2 ``root_state`` or ``terminal_state`` cells: ``"raise"`` (default)
        raises; ``"commitment"`` (the workflow's choice, ``configs/trajectory/default.yaml``)
        follows the Mk-commitment axis HSC/MPP -> MEP -> MkP instead when those states are
        present (pseudotime 0 at HSC/MPP, 1 at MkP; the fate is that of reaching MkP), else
        skips; ``"skip"`` writes NaN pseudotime and fate. A warning says which, and
        ``uns['mk_trajectory']`` records it.
    seed
        Seed for the kNN graph.
    copy
        Return a copy instead of writing into ``adata``.
    """
    import cellrank  # noqa: F401 - fail before any work when CellRank is missing

    check_adata(adata, min_obs=10)
    check_choice(if_ends_missing)
    adata = adata.copy() if copy else adata
    given = adata.obs[state_key].astype(str).to_numpy() if state_key in adata.obs else None
    axis = choose_axis(given, Axis(lineage, root_state, terminal_state, root), if_ends_missing)
    if axis.skip:
        adata.obs[K.PSEUDOTIME] = np.nan
        adata.obs[K.FATE] = np.nan
        adata.uns[K.TRAJECTORY] = axis.note()
        return adata if copy else None
    lineage, root_state, terminal_state, root = axis[:4]
    states = _check_inputs(adata, use_rep, state_key, root_state, terminal_state)
    t0 = time.perf_counter()
    X = np.asarray(adata.obsm[use_rep], dtype=np.float32)
    on_lin = np.isin(states, lineage)
    lin_idx = np.flatnonzero(on_lin)

    # 1. pseudotime on the lineage
    X, cycle_note, cycle_share = _cycle_correction(adata, X, lin_idx, states, regress_cycle, seed)
    lin = _lineage_pseudotime(
        adata,
        X,
        lin_idx,
        states=states,
        root=root,
        lineage=lineage,
        ends=(root_state, terminal_state),
        n_neighbors=n_neighbors,
        n_dcs=n_dcs,
        seed=seed,
    )
    pt, reach = lin.pseudotime, lin.reached
    adata.obs[K.PSEUDOTIME] = pt
    by_markers = adata.uns.get(K.ANNOTATE, {}).get("method") == "markers"
    stages = None
    if refine_states and (root_state, terminal_state, state_key) == (K.MKP, K.MK, K.STATE):
        stages = _refine_stages(adata, pt, lin_idx[reach], state_key) if by_markers else None
        states = adata.obs[state_key].astype(str).to_numpy()

    # 2. fate probabilities over all cells with CellRank
    root_all = int(lin_idx[lin.root])
    ga, gpt = _global_time(
        adata, X, states, on_lin, pt, root_all, use_rep, n_neighbors, n_dcs, seed
    )
    kernel = _kernel(adata, ga, gpt, connectivity_weight)
    terminal = _terminals(states, on_lin, pt, gpt, terminal_state, terminal_quantile)
    probs, method = fate_probabilities(kernel, terminal, solver=solver, tol=tol, order=gpt)
    adata.obs[K.FATE] = probs["Mk"].to_numpy()

    # 3. drivers and trends
    drivers, trends = _drivers(adata, pt, lin_idx[reach], n_drivers, condition_key)
    adata.uns[K.TRAJECTORY] = {
        "params": {
            "root": str(adata.obs_names[root_all]),
            "lineage": list(lineage),
            "root_state": root_state,
            "terminal_state": terminal_state,
            "state_key": state_key,
            "use_rep": use_rep,
            "n_neighbors": n_neighbors,
            "n_dcs": n_dcs,
            "connectivity_weight": connectivity_weight,
            "terminal_quantile": terminal_quantile,
            "solver": solver,
            "tol": tol,
            "regress_cycle": regress_cycle,
            "refine_states": refine_states,
            "seed": seed,
        },
        "fate_method": method,
        "n_lineage": int(on_lin.sum()),
        "n_with_pseudotime": int(np.isfinite(pt).sum()),
        "n_components": int(lin.n_components),
        "n_lineage_without_pseudotime": lin.n_unreached,
        "n_terminal": {k: int(v.size) for k, v in terminal.items()},
        "maturation_stages": stages or {"refined": False},
        "cycle_regression": cycle_note,
        "cycle_share": cycle_share,
        "drivers": drivers,
        "trends": trends,
        "seconds": time.perf_counter() - t0,
        **axis.note(),
    }
    _log_done(adata, pt, on_lin, method, t0, state_key if stages else None)
    return adata if copy else None


def _check_inputs(
    adata: AnnData, use_rep: str, state_key: str, root_state: str, terminal_state: str
) -> np.ndarray:
    """Check the embedding and the states :func:`trajectory` needs; return the states."""
    if use_rep not in adata.obsm:
        msg = f"no `adata.obsm[{use_rep!r}]`; run mk.integrate.scvi(adata) first"
        raise MkcellError(msg)
    if state_key not in adata.obs:
        msg = f"no states `adata.obs[{state_key!r}]`; run mk.tl.annotate(adata) first"
        raise MkcellError(msg)
    states = adata.obs[state_key].astype(str).to_numpy()
    for need in (root_state, terminal_state):
        if (states == need).sum() < 2:
            msg = (
                f"no {need} cells in `adata.obs[{state_key!r}]` (found: {sorted(set(states))}); "
                f"the trajectory needs {root_state} and {terminal_state} cells — pass labels with "
                f"mk.tl.annotate(adata, labels_key=...) or a root cell with root="
            )
            raise MkcellError(msg)
    return states


def _cycle_correction(
    adata: AnnData,
    X: np.ndarray,
    lin_idx: np.ndarray,
    states: np.ndarray,
    regress_cycle: bool,
    seed: int,
) -> tuple[np.ndarray, str, float]:
    """``X`` with the cycle regressed out of the lineage rows when that is worth it, and a note."""
    cycle_note, cycle_share = "off", float("nan")
    if not regress_cycle:
        return X, cycle_note, cycle_share
    try:
        corrected, cycle_share = _regress_cycle(adata, X[lin_idx], lin_idx, states[lin_idx], seed)
    except MkcellError as err:  # too few cycle or panel genes to score (e.g. a targeted panel)
        cycle_note = f"skipped: {err}"
        logger.warning("cycle regression skipped: %s", err)
        return X, cycle_note, cycle_share
    if cycle_share >= MIN_CYCLE_SHARE:
        X = X.copy()
        X[lin_idx] = corrected
        cycle_note = (
            f"applied: the cycle explained {cycle_share:.1%} of the lineage embedding's "
            "variance within state"
        )
    else:
        cycle_note = (
            f"not needed: the cycle explained {cycle_share:.1%} (< {MIN_CYCLE_SHARE:.0%}) of "
            "the lineage embedding's variance within state"
        )
    logger.info("cycle regression %s", cycle_note)
    return X, cycle_note, cycle_share


def _root_index(
    adata: AnnData, root: str, lin_idx: np.ndarray, states: np.ndarray, lineage: tuple[str, ...]
) -> int:
    """Position of the named root cell among the lineage cells."""
    if root not in adata.obs_names:
        msg = f"root={root!r} is not a cell name (obs_names)"
        raise MkcellError(msg)
    pos = adata.obs_names.get_loc(root)
    if not np.isin(states[pos], lineage):
        msg = f"root cell {root!r} is a {states[pos]} cell, not on the lineage {lineage}"
        raise MkcellError(msg)
    return int(np.searchsorted(lin_idx, pos))


class LineagePseudotime(NamedTuple):
    """What :func:`_lineage_pseudotime` finds on the lineage's kNN graph."""

    pseudotime: np.ndarray  # all cells, [0, 1] on the lineage, NaN off it
    root: int  # the root's position among the lineage cells
    reached: np.ndarray  # lineage cells that got a pseudotime
    n_components: int  # connected components of the graph
    n_unreached: int  # lineage cells left without a pseudotime


def _lineage_pseudotime(
    adata: AnnData,
    X: np.ndarray,
    lin_idx: np.ndarray,
    *,
    states: np.ndarray,
    root: str | None,
    lineage: tuple[str, ...],
    ends: tuple[str, str],
    n_neighbors: int,
    n_dcs: int,
    seed: int,
) -> LineagePseudotime:
    """Diffusion pseudotime on the lineage's kNN graph, rescaled to [0, 1] (NaN off it)."""
    root_state, terminal_state = ends
    lin_states = states[lin_idx]
    g = knn_graph(X[lin_idx], n_neighbors, seed)
    n_comp, comp = sp.csgraph.connected_components(g.obsp["connectivities"], directed=False)
    if root is not None:
        root_i = _root_index(adata, root, lin_idx, states, lineage)
    else:
        root_i = _auto_root(g, lin_states == root_state, lin_states == terminal_state)
    dpt = _dpt(g, root_i, n_dcs)
    reach = np.isfinite(dpt) & (comp == comp[root_i])
    for c in range(n_comp):  # a disconnected graph: each part with both ends gets its own root
        part = comp == c
        if c == comp[root_i] or not (
            (lin_states[part] == root_state).any() and (lin_states[part] == terminal_state).any()
        ):
            continue
        if part.sum() < 10:
            continue
        sub_X, sub_states = X[lin_idx[part]], lin_states[part]
        _root_part(sub_X, sub_states, ends, dpt, reach, part, n_neighbors, n_dcs, seed)
    n_unreached = int((~reach).sum())
    if n_comp > 1:
        logger.warning(
            "the lineage kNN graph has %d connected components "
            "(each with MkP and Mk rooted separately); "
            "%d cells in parts without both ends get NaN pseudotime",
            n_comp,
            n_unreached,
        )
    pt = np.full(adata.n_obs, np.nan)
    main = reach & (comp == comp[root_i])
    lo, hi = np.nanmin(dpt[main]), np.nanmax(dpt[main])
    dpt[main] = (dpt[main] - lo) / (hi - lo if hi > lo else 1.0)
    pt[lin_idx[reach]] = dpt[reach]
    return LineagePseudotime(pt, root_i, reach, n_comp, n_unreached)


def _root_part(
    X: np.ndarray,
    states: np.ndarray,
    ends: tuple[str, str],
    dpt: np.ndarray,
    reach: np.ndarray,
    part: np.ndarray,
    n_neighbors: int,
    n_dcs: int,
    seed: int,
) -> None:
    """Root one more component of the lineage graph on its own; fill its ``dpt`` and ``reach``."""
    sub = knn_graph(X, n_neighbors, seed)
    r = _auto_root(sub, states == ends[0], states == ends[1])
    d = _dpt(sub, r, n_dcs)
    ok = np.isfinite(d)
    dpt[np.flatnonzero(part)[ok]] = (d[ok] - d[ok].min()) / max(d[ok].max() - d[ok].min(), 1e-12)
    reach[np.flatnonzero(part)[ok]] = True


def _global_time(
    adata: AnnData,
    X: np.ndarray,
    states: np.ndarray,
    on_lin: np.ndarray,
    pt: np.ndarray,
    root_all: int,
    use_rep: str,
    n_neighbors: int,
    n_dcs: int,
    seed: int,
) -> tuple[AnnData, np.ndarray]:
    """The all-cells kNN graph, and a diffusion pseudotime over it following ``pt`` on the lineage.

    The graph is the stored latent graph (``obsp['mk_connectivities']``) when ``X`` is the
    uncorrected ``obsm[use_rep]`` and the parameters agree; else one built here.
    """
    ga = neighbors(adata, X, use_rep=use_rep, n_neighbors=n_neighbors, seed=seed, store=False)
    hsc = np.flatnonzero(states == K.HSC_MPP)
    global_root = root_all
    if hsc.size:
        global_root = _auto_root(ga, states == K.HSC_MPP, on_lin)
    gpt = _dpt(ga, global_root, n_dcs)
    gpt = np.where(np.isfinite(gpt), gpt, np.nanmax(np.where(np.isfinite(gpt), gpt, np.nan)))
    # on the lineage, the kernel follows the lineage pseudotime (MkP -> mature Mk) within
    # the span the global pseudotime gives the lineage, so flow runs towards mature Mk
    has_pt = np.isfinite(pt)
    if has_pt.any():
        lo_g, hi_g = np.quantile(gpt[has_pt], [0.05, 0.95])
        gpt[has_pt] = lo_g + pt[has_pt] * max(hi_g - lo_g, 1e-6)
    return ga, gpt


def _kernel(  # noqa: ANN202 - a CellRank kernel (lazy import)
    adata: AnnData, ga: AnnData, gpt: np.ndarray, connectivity_weight: float
):
    """CellRank PseudotimeKernel on ``gpt`` (soft threshold), mixed with a ConnectivityKernel.

    The PseudotimeKernel's transition matrix is CellRank's soft-threshold bias of the kNN
    graph (``SoftThresholdScheme``, VIA's scheme, CellRank's defaults b=10, nu=0.5),
    computed by :func:`_soft_bias` over all edges at once, and row-normalised by the
    kernel. CellRank's ``compute_transition_matrix`` loops over cells in Python (minutes
    at 1M cells) and checks connectivity through a networkx copy of the graph (37 s of
    its 55 s at 144k cells); the same check is made here with ``scipy.sparse.csgraph``
    and warns the same way. ``tests/test_scale.py`` checks the matrix is CellRank's.
    """
    import cellrank as cr

    kad = AnnData(
        X=sp.csr_matrix((adata.n_obs, 1), dtype=np.float32),
        obs=pd.DataFrame({"gpt": gpt}, index=adata.obs_names),
    )
    kad.obsp["connectivities"] = ga.obsp["connectivities"]
    kad.obsp["distances"] = ga.obsp["distances"]
    kad.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {"method": "umap"},
    }
    pk = cr.kernels.PseudotimeKernel(kad, time_key="gpt")
    biased = _soft_bias(sp.csr_matrix(pk.connectivities), np.asarray(pk.pseudotime))
    n_parts, _ = sp.csgraph.connected_components(biased, directed=False)
    if n_parts > 1:
        logger.warning("the pseudotime-biased kNN graph has %d connected components", n_parts)
    pk.transition_matrix = biased
    if connectivity_weight > 0:
        ck = cr.kernels.ConnectivityKernel(kad).compute_transition_matrix()
        kernel = (1 - connectivity_weight) * pk + connectivity_weight * ck
        if hasattr(kernel, "compute_transition_matrix") and kernel._transition_matrix is None:
            kernel.compute_transition_matrix()
        # the sum keeps both kernels' matrices and both weighted ones, four more matrices
        # the graph's size, for as long as it lives: keep its matrix only (its rows sum to
        # 1, so the setter does not rescale them)
        pk.transition_matrix = kernel.transition_matrix
    return pk


def _soft_bias(
    conn: sp.csr_matrix, pt: np.ndarray, b: float = 10.0, nu: float = 0.5
) -> sp.csr_matrix:
    """CellRank's ``SoftThresholdScheme`` on every edge at once.

    An edge to a cell earlier in pseudotime by ``dt`` keeps ``2 / (1 + exp(b dt))^(1/nu)``
    of its connectivity; other edges keep all of it (in the connectivities' dtype, as
    CellRank computes it row by row).
    """
    rows = np.repeat(np.arange(conn.shape[0]), np.diff(conn.indptr))
    dt = pt[rows] - pt[conn.indices]
    past = dt > 0
    weights = np.ones_like(conn.data)
    weights[past] = 2.0 / ((1.0 + np.exp(b * dt[past])) ** (1.0 / nu))
    out = sp.csr_matrix((conn.data * weights, conn.indices, conn.indptr), shape=conn.shape)
    out.eliminate_zeros()
    return out


def _terminals(
    states: np.ndarray,
    on_lin: np.ndarray,
    pt: np.ndarray,
    gpt: np.ndarray,
    terminal_state: str,
    terminal_quantile: float,
) -> dict[str, np.ndarray]:
    """Mature Mk (lineage end above the pseudotime quantile) and the other terminal states."""
    mature = (
        on_lin
        & (states == terminal_state)
        & (pt >= np.nanquantile(pt[states == terminal_state], terminal_quantile))
    )
    terminal = {"Mk": np.flatnonzero(mature)}
    for name in OTHER_TERMINALS:
        cells = np.flatnonzero(states == name)
        if cells.size >= 10:
            cut = np.quantile(gpt[cells], terminal_quantile)
            terminal[name] = cells[gpt[cells] >= cut]
    return terminal


def _log_done(
    adata: AnnData,
    pt: np.ndarray,
    on_lin: np.ndarray,
    method: str,
    t0: float,
    refined_key: str | None,
) -> None:
    logger.info(
        "trajectory: %d of %d lineage cells with pseudotime; fate by %s in %.1f s",
        np.isfinite(pt).sum(),
        on_lin.sum(),
        method,
        time.perf_counter() - t0,
    )
    for key in (K.PSEUDOTIME, K.FATE) + ((K.MK_STAGE, refined_key) if refined_key else ()):
        log_write("obs", key)
    log_write("uns", K.TRAJECTORY)


#: Share of the Mk program's rise (from its MkP level to its mature level) that marks
#: the MkP -> immature Mk boundary, and the share that marks mature Mk. Fixed a priori
#: (a fifth of the rise: clearly above progenitor noise), not tuned on the simulator.
ONSET_SHARE, PLATEAU_SHARE = 0.2, 0.9


def _rise_points(t: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Where a rising score leaves its low level and where it reaches its high level, along ``t``.

    ``y`` is smoothed by a running median over cells ordered by ``t``; its low (high)
    level is the median over the first (last) tenth of cells. Returns the pseudotime
    after the last point below ``ONSET_SHARE`` of the rise, the first point above
    ``PLATEAU_SHARE`` of it, and the rise itself (high - low).
    """
    order = np.argsort(t, kind="stable")
    ts = t[order]
    win = int(max(25, t.size // 30))
    smooth = pd.Series(y[order]).rolling(win, center=True, min_periods=win // 2).median().to_numpy()
    tenth = max(t.size // 10, 5)
    lo, hi = np.nanmedian(smooth[:tenth]), np.nanmedian(smooth[-tenth:])
    rise = float(hi - lo)
    if not rise > 0:
        return float("nan"), float("nan"), rise
    below = np.flatnonzero(smooth < lo + ONSET_SHARE * rise)
    onset = ts[min(below[-1] + 1, ts.size - 1)] if below.size else ts[0]
    above = np.flatnonzero((smooth >= lo + PLATEAU_SHARE * rise) & (ts >= onset))
    plateau = ts[above[0]] if above.size else ts[-1]
    return float(onset), float(plateau), rise


def _refine_stages(
    adata: AnnData, pt: np.ndarray, cells: np.ndarray, state_key: str
) -> dict | None:
    """MkP / immature Mk / mature Mk from the rise of the Mk panel score along pseudotime."""
    if cells.size < 30:
        return None
    sub = adata[cells]
    panels, _ = panel_scores(adata, log_normalize(adata), rows=cells)
    if K.MK not in panels.columns:
        logger.info("no Mk marker panel: the MkP / Mk boundary stays as annotated")
        return None
    y = zscore_within(
        panels[K.MK].to_numpy(float), species_of(sub)
    )  # marker levels differ between species
    t = pt[cells]
    t0, t1, rise = _rise_points(t, y)
    if not np.isfinite(t0):
        logger.info(
            "the Mk panel score does not rise along pseudotime: "
            "the MkP / Mk boundary stays as annotated"
        )
        return None
    stage = np.where(t < t0, K.MKP, np.where(t < t1, "immature_Mk", "mature_Mk"))
    col = adata.obs[state_key]
    before = col.astype(str).to_numpy()[cells]
    after = np.where(stage == K.MKP, K.MKP, K.MK)
    new = col.astype(str).to_numpy()
    new[cells] = after
    adata.obs[state_key] = pd.Categorical(
        new, categories=col.cat.categories if hasattr(col, "cat") else list(K.STATES)
    )
    full = np.full(adata.n_obs, None, dtype=object)
    full[cells] = stage
    adata.obs[K.MK_STAGE] = pd.Categorical(full, categories=[K.MKP, "immature_Mk", "mature_Mk"])
    out = {
        "refined": True,
        "onset_pseudotime": t0,
        "plateau_pseudotime": t1,
        "rise_z": rise,
        "onset_share": ONSET_SHARE,
        "plateau_share": PLATEAU_SHARE,
        "n_mkp_to_mk": int(((before == K.MKP) & (after == K.MK)).sum()),
        "n_mk_to_mkp": int(((before == K.MK) & (after == K.MKP)).sum()),
    }
    logger.info(
        "MkP / Mk boundary at pseudotime %.2f (Mk program onset), plateau at %.2f; "
        "%d MkP -> Mk, %d Mk -> MkP",
        t0,
        t1,
        out["n_mkp_to_mk"],
        out["n_mk_to_mkp"],
    )
    return out


#: Cycle correction is applied only when the cycle terms explain at least this share of
#: the lineage embedding's variance within (state, species); below it, removing them
#: costs more order than it gains (measured: 1.4% on a simulation with no unlisted cycle
#: genes, 31% with 50 and 57% with 150 per phase). Fixed a priori, not tuned.
MIN_CYCLE_SHARE = 0.05


def _regress_cycle(
    adata: AnnData, X: np.ndarray, cells: np.ndarray, states: np.ndarray, seed: int
) -> tuple[np.ndarray, float]:
    """``X`` minus the part explained by the cycle, and that part's share of the variance.

    Regressors: the S and G2M scores and the called phase (S, G2M indicators), plus the
    MkP and Mk marker-panel scores as lineage position. Everything is centred within
    (state, species), so the cycle terms are fitted from within-state variation; the
    position terms are fitted but not removed. Where cycling changes along maturation
    the cycle terms then do not take maturation with them. (Bins of the panel position
    instead of states were tried and were worse: normalised panel scores drop in
    cells with a strong cycle program, so such bins partly sort cells by cycle.)
    """
    from ..tl._score import call_phase

    sub = adata[cells]
    Xn = log_normalize(adata)  # the cached layer; normalisation is per cell
    if K.CYCLE_COVARIATES in adata.obsm:
        C = np.asarray(adata.obsm[K.CYCLE_COVARIATES], dtype=np.float64)[cells]
    else:
        from ..pp._cycle import scores_from_lognorm

        C = scores_from_lognorm(adata, Xn, seed=seed, rows=cells).to_numpy(np.float64)
    phase, _ = call_phase(C[:, 0], C[:, 1])
    C = np.column_stack([C, phase == "S", phase == "G2M"]).astype(np.float64)
    panels, _ = panel_scores(adata, Xn, rows=cells)
    if not {K.MKP, K.MK} <= set(panels.columns):
        msg = (
            "the MkP and Mk marker panels cannot both be scored, "
            "so cycling cannot be told from maturation"
        )
        raise MkcellError(msg)
    P = panels[[K.MKP, K.MK]].to_numpy(np.float64)
    groups = (pd.Series(states.astype(str)) + "|" + pd.Series(species_of(sub))).to_numpy()

    def centred(M: np.ndarray) -> np.ndarray:
        return M - pd.DataFrame(M).groupby(groups).transform("mean").to_numpy()

    Cc, Pc, Xc = centred(C), centred(P), centred(X.astype(np.float64))
    beta, *_ = np.linalg.lstsq(np.column_stack([Cc, Pc]), Xc, rcond=None)
    fit = Cc @ beta[: C.shape[1]]
    share = float((fit**2).sum() / max((Xc**2).sum(), 1e-12))
    return (X - fit).astype(X.dtype), share


def _drivers(
    adata: AnnData, pt: np.ndarray, cells: np.ndarray, n_drivers: int, condition_key: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Genes correlated with pseudotime on the lineage, and their binned trends per condition."""
    if cells.size < 3:
        return pd.DataFrame(columns=["gene", "corr"]), pd.DataFrame()
    sub = adata[cells]
    Xn = log_normalize(adata)  # the cached layer; normalisation is per cell
    t = pt[cells]
    tc = (t - t.mean()) / (t.std() + 1e-12)
    mean, var = column_mean_var(Xn, cells)
    sd = np.sqrt(np.maximum(var, 1e-12))
    corr = (rmatmul(Xn, tc, cells) / len(t) - mean * tc.mean()) / sd
    order = np.argsort(-np.abs(corr))[:n_drivers]
    drivers = pd.DataFrame({"gene": sub.var_names[order], "corr": corr[order]})
    bins = np.minimum((t * 10).astype(int), 9)
    cond = (
        sub.obs[condition_key].astype(str).to_numpy()
        if condition_key and condition_key in sub.obs
        else np.full(len(t), "all")
    )
    species = (
        sub.obs[K.SPECIES].astype(str).to_numpy()
        if K.SPECIES in sub.obs
        else np.full(len(t), "all")
    )
    top = order[:12]
    dense = Xn[:, top][cells].toarray()
    frame = pd.DataFrame(dense, columns=sub.var_names[top])
    frame["species"], frame["condition"], frame["bin"] = species, cond, bins
    trends = frame.groupby(["species", "condition", "bin"]).mean().reset_index()
    trends["pseudotime"] = (trends["bin"] + 0.5) / 10
    trends = trends.melt(
        id_vars=["species", "condition", "bin", "pseudotime"],
        var_name="gene",
        value_name="mean_log_expr",
    )
    return drivers, trends.drop(columns="bin")
