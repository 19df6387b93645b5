"""The mkcell workflow: config schemas (Hydra ConfigStore), stages and the resumable runner.

The command line lives in ``workflows/main.py`` (``mkcell [overrides]``); this package
holds what it calls: :mod:`._config` (dataclass schemas), :mod:`._stages` (thin calls of
the public API), :mod:`._runner` (fingerprints, skip/resume, atomic outputs) and
:mod:`._report` (self-contained HTML).
"""

from __future__ import annotations

from ._config import Config, check_config, config_dir, register_configs
from ._runner import Stage, fingerprints, is_done, run_workflow
from ._stages import MAP_STAGES, STAGES, input_signature, stages_for

__all__ = [
    "Config",
    "MAP_STAGES",
    "STAGES",
    "Stage",
    "check_config",
    "config_dir",
    "fingerprints",
    "input_signature",
    "is_done",
    "register_configs",
    "run_workflow",
    "stages_for",
]
