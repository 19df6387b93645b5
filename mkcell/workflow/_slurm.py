"""The Slurm launchers (``hydra/launcher=slurm_cpu|slurm_gpu``): checks and refusals.

What is wrong with the chosen launcher is found before anything is submitted
(:func:`launcher_problem`, run by the pre-flight callback); Slurm's refusal of a submission
becomes one line naming the setting to change (:func:`refusal`, read by the CLI's error hook
from the failed ``sbatch`` call and the script it submitted).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

SHOW_LAUNCHER = "`mkcell --cfg hydra -p hydra.launcher` shows what is asked"


def launcher_problem(cfg: DictConfig, *, multirun: bool) -> str | None:
    """Return what is wrong with the chosen Slurm launcher, or None.

    None when nothing is wrong, or no Slurm launcher is chosen.

    Parameters
    ----------
    cfg
        The composed config, with its ``hydra`` node.
    multirun
        Whether ``-m`` was given (only then does Hydra use the launcher).
    """
    choice = str(cfg.hydra.runtime.choices.get("hydra/launcher") or "")
    if not choice.startswith("slurm"):
        return None
    if not multirun:
        return (
            f"hydra/launcher={choice} submits only with -m: "
            f"write `mkcell -m hydra/launcher={choice} ...` (without -m the run would start here)"
        )
    devices = cfg.compute.devices
    if choice == "slurm_gpu" and (
        cfg.compute.accelerator != "gpu" or not isinstance(devices, int) or devices < 1
    ):
        return (
            f"hydra/launcher=slurm_gpu asks Slurm for compute.devices GPUs per task, but "
            f"compute.accelerator={cfg.compute.accelerator} compute.devices={devices}; "
            "add compute=gpu (one GPU) or compute=gpu compute.devices=N, "
            "or use hydra/launcher=slurm_cpu"
        )
    if shutil.which("sbatch") is None:
        return (
            f"hydra/launcher={choice} submits with Slurm's `sbatch`, which is not on PATH; "
            "run on the cluster's login node (`make slurm-up` starts a local one-node Slurm), "
            "or use hydra/launcher=submitit_local"
        )
    return None


def sbatch_refusal(exc: BaseException) -> str | None:
    """Slurm's reason when ``sbatch`` refused a submission.

    ``exc`` is what submitit raises from the failed call.
    """
    cause = exc.__cause__
    if not (isinstance(cause, subprocess.CalledProcessError) and cause.cmd):
        return None
    if Path(str(cause.cmd[0])).name != "sbatch":
        return None
    lines = [line.strip() for line in str(cause.stderr or "").splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {cause.returncode}"
    for prefix in ("sbatch: error: ", "Batch job submission failed: "):
        reason = reason.removeprefix(prefix)
    return reason


#: ``#SBATCH`` options of submitit's script, as the ``hydra.launcher`` settings that set them.
SBATCH_SETTINGS = {
    "--account": "account",
    "--partition": "partition",
    "--cpus-per-task": "cpus_per_task",
    "--mem": "mem_gb",
    "--time": "timeout_min",
    "--gpus-per-task": "gpus_per_task",
    "--gpus-per-node": "gpus_per_node",
}


def asked_in(script: Path) -> dict[str, str]:
    """The ``hydra.launcher`` settings a submitted script asked for (``--mem=900GB``: ``900``)."""
    asked = {}
    for line in script.read_text().splitlines():
        option, _, value = line.removeprefix("#SBATCH ").partition("=")
        if line.startswith("#SBATCH ") and option in SBATCH_SETTINGS:
            asked[SBATCH_SETTINGS[option]] = value.removesuffix("GB")
    return asked


def refusal(exc: BaseException) -> str | None:
    """One line for a submission Slurm refused (None: ``exc`` is not that).

    The values named are those of the script submitit handed to ``sbatch``.
    """
    reason = sbatch_refusal(exc)
    if reason is None:
        return None
    script = Path(str(exc.__cause__.cmd[-1]))  # type: ignore[union-attr]
    return refusal_message(reason, asked_in(script) if script.is_file() else {})


def refusal_message(reason: str, launcher: Mapping[str, object]) -> str:
    """One line: Slurm's reason, the setting that caused it and how to change it.

    ``launcher``: the ``hydra.launcher`` settings asked for (a config node, or :func:`asked_in`).
    """
    low = reason.lower()
    gpus = launcher.get("gpus_per_task") or launcher.get("gpus_per_node")
    if "account" in low:
        fix = (
            f"hydra.launcher.account={launcher.get('account')}: pass one of your accounts, listed "
            "by `sacctmgr -n show assoc user=$USER format=account,partition`"
        )
    elif "partition" in low:
        fix = (
            f"hydra.launcher.partition={launcher.get('partition')}: pass a partition listed by "
            "`sinfo -s`"
        )
    elif "gres" in low or "gpu" in low:
        fix = (
            f"{gpus} GPU(s) per task (compute.devices): no node of the partition has them; "
            "see `sinfo -o '%P %G'` for the GPUs of each partition"
        )
    elif any(w in low for w in ("node configuration", "memory", "processor", "cpu")):
        asked = f"cpus_per_task={launcher.get('cpus_per_task')} mem_gb={launcher.get('mem_gb')}"
        asked += f" gpus={gpus}" if gpus else ""
        fix = (
            f"{asked}: no node of the partition is that large (`sinfo -o '%P %c %m %G'`); lower "
            "hydra.launcher.cpus_per_task / hydra.launcher.mem_gb"
        )
    elif "time limit" in low:
        fix = (
            f"hydra.launcher.timeout_min={launcher.get('timeout_min')} is past the partition's limit "
            "(`sinfo -o '%P %l'`); lower it"
        )
    else:
        fix = "check the hydra.launcher settings"
    return f"Slurm refused the job ({reason}): {fix}; {SHOW_LAUNCHER}"


class GiveUpWatch(logging.Handler):
    """Notes submitit's "Job not requeued because: ..." in a Slurm job.

    submitit logs it when the time-limit signal arrives and the job will not be requeued, then
    raises inside whatever code the signal interrupted (an import, a NumPy call), where the error
    may come out as an unrelated one. :func:`time_up_message` says what happened instead.
    """

    PREFIX = "Job not requeued because: "

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        msg = record.getMessage()
        if msg.startswith(self.PREFIX):
            self.reason = msg.removeprefix(self.PREFIX).rstrip(".")


def time_up_message(reason: str, launcher: DictConfig) -> str:
    """One line for a Slurm job that submitit did not requeue."""
    return (
        f"the Slurm job stopped at its time limit and was not requeued ({reason}; "
        f"hydra.launcher.timeout_min={launcher.timeout_min}, "
        f"max_num_timeout={launcher.max_num_timeout}); its finished stages are kept: raise "
        "hydra.launcher.timeout_min above the longest stage and run the same command to resume"
    )
