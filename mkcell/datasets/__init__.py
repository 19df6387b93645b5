"""Simulated marrow and patient cohorts with known truth, small shipped real data and marker panels."""

from __future__ import annotations

from .._markers import marker_panels, panel_profile_scores
from ._cohort import simulate_cohort, write_geo_series_matrix
from ._contaminate import coat_with_platelets, plant_doublets
from ._real import olsson16_fig1b, paul15_subset, zhu2021_cd34
from ._scenarios import cd34_sorted
from ._simulate import simulate_marrow

__all__ = [
    "cd34_sorted",
    "coat_with_platelets",
    "marker_panels",
    "olsson16_fig1b",
    "panel_profile_scores",
    "paul15_subset",
    "plant_doublets",
    "simulate_cohort",
    "simulate_marrow",
    "write_geo_series_matrix",
    "zhu2021_cd34",
]
