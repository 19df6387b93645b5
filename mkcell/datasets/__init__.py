"""Simulated marrow with known truth, small shipped real data and marker panels."""

from __future__ import annotations

from .._markers import marker_panels, panel_profile_scores
from ._real import olsson16_fig1b, paul15_subset, zhu2021_cd34
from ._scenarios import cd34_sorted
from ._simulate import simulate_marrow

__all__ = [
    "cd34_sorted",
    "marker_panels",
    "olsson16_fig1b",
    "panel_profile_scores",
    "paul15_subset",
    "simulate_marrow",
    "zhu2021_cd34",
]
