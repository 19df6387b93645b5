"""The launcher of ``hydra/launcher=slurm_cpu|slurm_gpu`` (their YAMLs name it as ``_target_``).

Its own module: it imports hydra-submitit-launcher (the ``cluster`` extra), which only a Slurm
run needs.
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as _SubmititSlurm,
)

from ._slurm import SlurmRefusal, refusal_message, sbatch_refusal


class SlurmLauncher(_SubmititSlurm):
    """hydra-submitit-launcher's Slurm launcher, whose sbatch refusals are one line."""

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:  # noqa: D102
        try:
            return super().launch(job_overrides, initial_job_idx)
        except Exception as exc:
            if (reason := sbatch_refusal(exc)) is None or self.config is None:
                raise
            raise SlurmRefusal(refusal_message(reason, self.config.hydra.launcher)) from exc
