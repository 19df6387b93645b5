"""Fate probabilities with CellRank 2, kept sparse, with a sparse direct fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._settings import logger

#: Rows of fate probabilities must sum to 1 within this tolerance.
SUM_TOL = 1e-3


def absorption_direct(T: sp.spmatrix, terminal: dict[str, np.ndarray]) -> pd.DataFrame:
    """Absorption probabilities by a sparse LU solve of (I - Q) X = R.

    ``T`` is a row-stochastic sparse transition matrix, ``terminal`` maps each
    terminal state to the indices of its cells. Memory stays O(nnz of the LU).
    Transient cells that cannot reach any terminal cell get NaN.
    """
    n = T.shape[0]
    T = sp.csr_matrix(T)
    names = list(terminal)
    is_term = np.zeros(n, bool)
    for idx in terminal.values():
        is_term[idx] = True
    trans = np.flatnonzero(~is_term)
    Q = T[trans][:, trans]
    R = np.column_stack([np.asarray(T[trans][:, terminal[k]].sum(1)).ravel() for k in names])
    A = sp.identity(len(trans), format="csc") - sp.csc_matrix(Q)
    X = np.zeros((len(trans), len(names)))
    reach = _reaches(T, is_term)[trans]
    if reach.any():
        sub = np.flatnonzero(reach)
        lu = spla.splu(A[sub][:, sub].tocsc())
        X[sub] = lu.solve(R[sub])
    X[~reach] = np.nan
    out = np.zeros((n, len(names)))
    out[trans] = X
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
    solver: str = "gmres",
    tol: float = 1e-6,
    preconditioner: str | None = None,
    direct_max_cells: int = 300_000,
) -> tuple[pd.DataFrame, str]:
    """Fate probabilities towards ``terminal`` states with CellRank's GPCCA estimator.

    Terminal states are set from labels (no Schur decomposition, so no dense n x n
    matrix). CellRank's iterative scipy solver is tried first (``preconditioner`` only
    applies when CellRank runs on PETSc); if it fails or its rows do not
    sum to 1 (GMRES can stall on weakly structured graphs), the system is solved
    again by sparse LU (:func:`absorption_direct`) when at most ``direct_max_cells``.

    Returns
    -------
    (cells x terminal states DataFrame, method used)
    """
    import cellrank as cr

    n = kernel.transition_matrix.shape[0]
    labels = pd.Series(pd.NA, index=range(n), dtype="object")
    for name, idx in terminal.items():
        labels.iloc[idx] = name
    try:
        g = cr.estimators.GPCCA(kernel)
        labels.index = kernel.adata.obs_names
        g.set_terminal_states(labels.astype("category"))
        g.compute_fate_probabilities(solver=solver, tol=tol, preconditioner=preconditioner, use_petsc=False, n_jobs=1, show_progress_bar=False)
        fp = g.fates if hasattr(g, "fates") else g.fate_probabilities
        probs = pd.DataFrame(np.asarray(fp.X if hasattr(fp, "X") else fp), columns=list(fp.names))
        sums = probs.sum(1).to_numpy()
        if np.all(np.abs(sums - 1) < SUM_TOL) and np.isfinite(probs.to_numpy()).all():
            return probs, f"cellrank:{solver}"
        logger.warning("CellRank %s fate probabilities do not sum to 1 (max error %.2g); solving directly", solver, np.nanmax(np.abs(sums - 1)))
    except (RuntimeError, ValueError, AssertionError, ArithmeticError) as err:
        logger.warning("CellRank fate solver %s failed (%s); solving directly", solver, str(err).splitlines()[0][:200])
    if n > direct_max_cells:
        msg = f"the iterative fate solver failed on {n} cells and a direct solve above {direct_max_cells} cells is not attempted; coarse-grain first"
        raise RuntimeError(msg)
    return absorption_direct(kernel.transition_matrix, terminal), "sparse_lu"
