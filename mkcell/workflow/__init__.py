"""The mkcell workflow: config schemas (Hydra ConfigStore), stages and the resumable runner.

:mod:`._cli` is the command line (``mkcell [overrides]``, Hydra's ``hydra.main`` with mkcell's
pre-flight callback and one-line errors); the rest is what it calls: :mod:`._config` and :mod:`._sections` (the schemas, sections made from
the tools' signatures), :mod:`._stages`, :mod:`._load` and :mod:`._map_stages` (thin calls of
the public API), :mod:`._checks` (pre-flight checks of the data), :mod:`._runner`
(fingerprints, skip/resume, atomic outputs) and :mod:`._report` (self-contained HTML).
"""

from __future__ import annotations

from ._cli import compose, main
from ._config import Config, check_config, config_dir, register_configs
from ._fingerprints import fingerprints
from ._load import input_signature
from ._map_stages import MAP_STAGES
from ._runner import Stage, is_done, run_workflow
from ._stages import STAGES, stages_for

__all__ = [
    "Config",
    "MAP_STAGES",
    "STAGES",
    "Stage",
    "check_config",
    "compose",
    "config_dir",
    "fingerprints",
    "input_signature",
    "is_done",
    "main",
    "register_configs",
    "run_workflow",
    "stages_for",
]
