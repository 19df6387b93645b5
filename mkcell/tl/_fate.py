"""Fate probabilities with CellRank 2, kept sparse, with a sparse direct fallback."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._settings import MkcellError, logger

#: Rows of fate probabilities must sum to 1 within this tolerance.
SUM_TOL = 1e-3
#: Krylov vectors kept between GMRES restarts (memory: this many float64 vectors per cell,
#: 1.6 GB at 1M cells). Measured on the mature-Mk column at 144k cells, the slowest to
#: converge: 1,199 iterations (20.8 s) with 100, 154 (4.4 s) with 150-300.
GMRES_RESTART = 200


def absorption_direct(T: sp.spmatrix, terminal: dict[str, np.ndarray]) -> pd.DataFrame:
    """Absorption probabilities by a sparse LU solve of (I - Q) X = R.

    ``T`` is a row-stochastic sparse transition matrix, ``terminal`` maps each
    terminal state to the indices of its cells. Memory stays O(nnz of the LU).
    Transient cells that cannot reach any terminal cell get NaN.
    """
    A, R, trans, names, is_term = _system(T, terminal)
    X = spla.splu(A.tocsc()).solve(R) if trans.size else R
    return _assemble(X, trans, names, is_term, terminal)


def absorption_iterative(
    T: sp.spmatrix,
    terminal: dict[str, np.ndarray],
    *,
    order: np.ndarray | None = None,
    tol: float = 1e-8,
) -> pd.DataFrame:
    """Absorption probabilities by GMRES on (I - Q) X = R, Gauss-Seidel preconditioned.

    ``order`` (e.g. pseudotime) sorts the cells; the preconditioner is the upper
    triangle of (I - Q) in that order, applied by a sparse triangular solve. A
    pseudotime-directed kernel moves mostly forward in time, so this triangle holds
    most of the system and GMRES converges in tens to a few hundred iterations per
    state (restarted every :data:`GMRES_RESTART`); setup takes seconds and memory stays
    O(nnz) plus the Krylov vectors (an incomplete LU costs minutes from ~50k cells, a
    full LU tens of GB from ~200k). Raises ``RuntimeError`` when a state does not
    converge.
    """
    A, R, trans, names, is_term = _system(T, terminal, order)
    M = _upper_solver(A)
    X = np.empty_like(R)
    for j, k in enumerate(names):
        X[:, j], info = spla.gmres(
            A, R[:, j], M=M, rtol=tol, atol=0.0, restart=GMRES_RESTART, maxiter=25
        )
        if info != 0:
            msg = f"preconditioned GMRES did not converge for terminal state {k!r} (info={info})"
            raise RuntimeError(msg)
    return _assemble(X, trans, names, is_term, terminal)


def _upper_solver(A: sp.csr_matrix) -> spla.LinearOperator:
    """Back substitution with the upper triangle of ``A``, as a preconditioner.

    SuperLU on the triangle in its natural order, with the diagonal as pivots, has no
    fill-in (its L is the identity) and solves in compiled code: ~7x faster per solve
    than ``spsolve_triangular``, which re-checks the matrix on every call.
    """
    upper = sp.triu(A, format="csc")
    lu = spla.splu(
        upper, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )
    return spla.LinearOperator(A.shape, lu.solve)


class AbsorbingSystem(NamedTuple):
    """The linear system of absorption probabilities (:func:`_system`)."""

    A: sp.csr_matrix  # I - Q over the transient cells
    R: np.ndarray  # transient -> terminal mass, one column per terminal state
    trans: np.ndarray  # indices of the transient cells that can reach a terminal cell
    names: list[str]  # terminal state names, the columns of R
    is_term: np.ndarray  # mask of terminal cells


def _system(
    T: sp.spmatrix, terminal: dict[str, np.ndarray], order: np.ndarray | None = None
) -> AbsorbingSystem:
    """(I - Q) and R over the transient cells that can reach a terminal cell.

    Cells are sorted by ``order`` when given.
    """
    is_term = np.zeros(T.shape[0], bool)
    for idx in terminal.values():
        is_term[idx] = True
    T = sp.csr_matrix(T)
    trans = np.flatnonzero(~is_term & _reaches(T, is_term))
    if order is not None:
        trans = trans[np.argsort(np.asarray(order)[trans], kind="stable")]
    T_trans = T[trans]
    A = (sp.identity(len(trans), format="csr") - T_trans[:, trans]).tocsr()
    R = np.column_stack([np.asarray(T_trans[:, terminal[k]].sum(1)).ravel() for k in terminal])
    return AbsorbingSystem(A, R, trans, list(terminal), is_term)


def _assemble(
    X: np.ndarray,
    trans: np.ndarray,
    names: list[str],
    is_term: np.ndarray,
    terminal: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Cells x states: ``X`` on ``trans``, 1 / 0 on own / other terminal cells, NaN elsewhere."""
    out = np.full((is_term.size, len(names)), np.nan)
    out[trans] = X
    out[is_term] = 0.0
    for j, k in enumerate(names):
        out[terminal[k], j] = 1.0
    return pd.DataFrame(out, columns=names)


def _reaches(T: sp.csr_matrix, target: np.ndarray) -> np.ndarray:
    """Cells from which some ``target`` cell is reachable along nonzero transitions."""
    G = sp.csr_matrix(T.T)  # walk edges backwards from the targets
    seen = target.copy()
    frontier = target.copy()
    while frontier.any():
        nxt = np.asarray(G[frontier].sum(0)).ravel() > 0
        frontier = nxt & ~seen
        seen |= nxt
    return seen


def fate_probabilities(
    kernel,  # noqa: ANN001
    terminal: dict[str, np.ndarray],
    *,
    solver: str = "auto",
    tol: float = 1e-6,
    order: np.ndarray | None = None,
    direct_max_cells: int = 30_000,
    fallback_max_cells: int = 120_000,
) -> tuple[pd.DataFrame, str]:
    """Fate probabilities towards ``terminal`` states on a CellRank kernel's transition matrix.

    Terminal states come from labels, so no Schur decomposition (dense n x n) is needed.
    ``solver``:

    * ``"auto"`` (default): sparse LU when at most ``direct_max_cells`` cells (exact,
      seconds at 20k), else GMRES (:func:`absorption_iterative`, Gauss-Seidel
      preconditioned in ``order``), falling back to sparse LU if GMRES does not
      converge, up to ``fallback_max_cells`` (a full LU needs tens of GB beyond);
      above that, an error says what to change.
    * ``"gmres"``, ``"lgmres"``, ``"bicgstab"``: CellRank's own
      ``GPCCA.compute_fate_probabilities`` (scipy, unpreconditioned; slow on large
      graphs), falling back to the sparse solvers when it fails or its rows do not sum
      to 1 (GMRES can stall on weakly structured graphs).

    Returns
    -------
    (cells x terminal states DataFrame, method used)
    """
    T = kernel.transition_matrix
    n = T.shape[0]
    if solver != "auto":
        probs = _cellrank_fates(kernel, terminal, solver, tol)
        if probs is not None:
            return probs, f"cellrank:{solver}"
    if n > direct_max_cells:
        try:
            probs = absorption_iterative(T, terminal, order=order, tol=min(tol, 1e-8))
            if _sums_ok(probs):
                return probs, "gmres_gauss_seidel"
            problem = "preconditioned GMRES rows do not sum to 1"
        except RuntimeError as err:
            problem = str(err)
        if n > fallback_max_cells:
            msg = (
                f"{problem} on {n} cells, and a sparse LU that large would need tens of GB; "
                "raise trajectory.connectivity_weight (a better-connected graph), or check that "
                "the terminal states are reachable"
            )
            raise MkcellError(msg)
        logger.warning("%s; solving directly", problem)
    return absorption_direct(T, terminal), "sparse_lu"


def _sums_ok(probs: pd.DataFrame) -> bool:
    sums = probs.sum(1, min_count=1).to_numpy()
    ok = np.isfinite(sums)
    return bool(ok.any() and np.all(np.abs(sums[ok] - 1) < SUM_TOL))


def _cellrank_fates(
    kernel, terminal: dict[str, np.ndarray], solver: str, tol: float
) -> pd.DataFrame | None:  # noqa: ANN001
    """CellRank's fate solver; None when it fails or its rows do not sum to 1."""
    import cellrank as cr

    n = kernel.transition_matrix.shape[0]
    labels = pd.Series(pd.NA, index=range(n), dtype="object")
    for name, idx in terminal.items():
        labels.iloc[idx] = name
    try:
        g = cr.estimators.GPCCA(kernel)
        labels.index = kernel.adata.obs_names
        g.set_terminal_states(labels.astype("category"))
        g.compute_fate_probabilities(
            solver=solver, tol=tol, use_petsc=False, n_jobs=1, show_progress_bar=False
        )
        fp = g.fates if hasattr(g, "fates") else g.fate_probabilities
        probs = pd.DataFrame(np.asarray(fp.X if hasattr(fp, "X") else fp), columns=list(fp.names))
        if np.isfinite(probs.to_numpy()).all() and _sums_ok(probs):
            return probs
        logger.warning(
            "CellRank %s fate probabilities do not sum to 1; solving with mkcell's sparse solvers",
            solver,
        )
    except (RuntimeError, ValueError, AssertionError, ArithmeticError) as err:
        logger.warning(
            "CellRank fate solver %s failed (%s); solving with mkcell's sparse solvers",
            solver,
            str(err).splitlines()[0][:200],
        )
    return None
