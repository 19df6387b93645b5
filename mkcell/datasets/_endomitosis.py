"""Endomitosis and ploidy truth for :func:`~mkcell.datasets.simulate_marrow` (opt-in).

With ``endomitosis=True`` every Mk-lineage cell gets a true endomitosis share (the chance
that its mitosis skips cytokinesis) and a true ploidy, and its counts are changed in two
ways: in G2M cells the cytokinesis / abscission genes (:data:`~mkcell._genesets.ABSCISSION`)
fall by ``ABSCISSION_DROP`` x the share (log scale), and all its genes scale with
``(ploidy / 2) ** PLOIDY_EXPONENT`` (more RNA and more detected genes, sub-linearly).

Everything is drawn from a generator of its own (:func:`generator`), and the counts are
changed *after* the default draw, exactly: a gamma-Poisson count ``Poisson(G)`` becomes
``Poisson(c G)`` by binomial thinning (``c <= 1``) or by adding ``Poisson((c - 1) G)``
(``c > 1``). So the default generator's stream, and with it every other truth column and
every non-lineage count, is the same with and without endomitosis.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from .._genesets import ABSCISSION

#: Mean endomitosis share of maturing Mk (in G2M) in controls, and in MDS at ``mds_effect=1``
#: (MDS Mk complete cytokinesis more often; the drug restores part of it).
ENDO_CONTROL = 0.85
ENDO_MDS = 0.45
#: Log-fold drop of the abscission genes in a G2M cell with endomitosis share 1.
ABSCISSION_DROP = 1.2
#: Total RNA scales as ``(ploidy / 2) ** PLOIDY_EXPONENT``.
PLOIDY_EXPONENT = 0.5
#: Most endomitotic doublings (2N -> 64N).
MAX_DOUBLINGS = 5
#: Entropy added to the user's seed for this generator (so its stream is separate).
_STREAM = 0xE1D0


def generator(seed: int) -> np.random.Generator:
    """The generator of the endomitosis truth, separate from the simulator's own stream."""
    return np.random.default_rng([int(seed), _STREAM])


def sample_level(rng: np.random.Generator, strength: float, sample_sd: float) -> float:
    """A sample's endomitosis share of fully committed Mk (logit-normal around its condition)."""
    shift = (logit(ENDO_MDS) - logit(ENDO_CONTROL)) * strength
    return float(expit(logit(ENDO_CONTROL) + shift + rng.normal(0, sample_sd)))


def cell_truth(
    rng: np.random.Generator, t: np.ndarray, lineage: np.ndarray, level: float, mkp_end: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell endomitosis share and ploidy (NaN outside the Mk lineage).

    The share rises from a fifth of the sample's level in early MkP to the full level
    shortly past MkP; the number of doublings grows with maturation and with the share.
    """
    share = np.full(t.size, np.nan)
    ploidy = np.full(t.size, np.nan)
    tt = t[lineage]
    e = level * (0.2 + 0.8 * np.clip((tt - (mkp_end - 0.1)) / 0.3, 0, 1))
    progress = np.clip((tt - mkp_end) / (1 - mkp_end), 0, 1) ** 0.7
    k = np.rint(MAX_DOUBLINGS * e * progress + rng.normal(0, 0.5, tt.size))
    share[lineage] = e
    ploidy[lineage] = 2.0 ** (np.clip(k, 0, MAX_DOUBLINGS) + 1)
    return share, ploidy


def abscission_columns(human_symbols: list[str]) -> np.ndarray:
    """Columns of the abscission genes among the shared (orthologous) genes."""
    want = set(ABSCISSION)
    return np.array([i for i, g in enumerate(human_symbols) if g in want], dtype=int)


def apply(
    rng: np.random.Generator,
    counts: np.ndarray,
    gam: np.ndarray,
    rows: np.ndarray,
    g2m: np.ndarray,
    truth: tuple[np.ndarray, np.ndarray],
    cols: np.ndarray,
) -> None:
    """Rescale the counts of Mk-lineage ``rows`` in place: ``Poisson(G)`` -> ``Poisson(c G)``.

    ``counts = Poisson(gam)`` from the default draw; ``c`` is the ploidy factor times, in
    G2M cells, the abscission drop on ``cols``.
    """
    if rows.size == 0:
        return
    share, ploidy = truth
    c = np.repeat(((ploidy[rows] / 2) ** PLOIDY_EXPONENT)[:, None], counts.shape[1], axis=1)
    drop = np.where(g2m[rows], share[rows], 0.0) * ABSCISSION_DROP
    c[:, cols] *= np.exp(-drop)[:, None]
    n = counts[rows].astype(np.int64)
    thin = rng.binomial(n, np.minimum(c, 1.0))
    extra = rng.poisson(gam[rows] * np.maximum(c - 1.0, 0.0))
    counts[rows] = (thin + extra).astype(counts.dtype)
