"""Every config of the workflow composes; typos and wrong types fail at start with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mkcell._settings import MkcellError
from mkcell.workflow import Config, check_config, config_dir
from mkcell.workflow._config import unknown_keys
from mkcell.workflow._sections import DEFAULT_CONTRASTS

CONFIGS = config_dir()
SCHEMA_GROUPS = ("data", "qc", "integrate", "annotate", "trajectory", "score", "pool", "compute")
ALL_GROUPS = (*SCHEMA_GROUPS, "debug", "experiment", "hydra/launcher")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def _compose(overrides: list[str] | None = None, *, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3", job_name="mkcell"):
        return compose("config", overrides=overrides or [], return_hydra_config=hydra)


OPTIONS = [(g, o) for g in ALL_GROUPS for o in _options(g)] + [("hydra/launcher", "submitit_local")]
SHIPPED = Path(__file__).resolve().parents[1] / "mkcell" / "data" / "real" / "paul15_tradeseq.h5ad"
# what an option needs to pass the start-up checks
NEEDS = {
    ("data", "files"): [f"data.inputs.mouse={SHIPPED}"],
    ("data", "registry"): ["data.id=paul15_tradeseq"],
}


def test_config_dir_found():
    assert (CONFIGS / "config.yaml").is_file()
    assert CONFIGS.is_absolute()


@pytest.mark.parametrize("group", ALL_GROUPS)
def test_every_group_has_options(group):
    assert _options(group), f"configs/{group}/ is empty"


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group, option):
    cfg = _compose([f"{group}={option}", *NEEDS.get((group, option), [])], hydra=True)
    assert cfg.hydra.runtime.choices[group] == option
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    assert unknown_keys(job, Config) == []
    if group == "hydra/launcher":
        from hydra.utils import get_class
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

        assert issubclass(get_class(cfg.hydra.launcher._target_), BaseSubmititLauncher)
    check_config(job)


@pytest.mark.parametrize("option", _options("experiment"))
def test_every_experiment_composes_with_debug(option):
    cfg = _compose([f"experiment={option}", "debug=tiny"])
    check_config(cfg)
    assert cfg.data.max_cells is not None


@pytest.mark.parametrize("group", SCHEMA_GROUPS)
def test_group_options_are_schema_backed(group):
    for option in _options(group):
        spec = yaml.safe_load((CONFIGS / group / f"{option}.yaml").read_text())
        assert spec["defaults"][:2] == [f"base_{group}", "_self_"], f"{group}/{option}.yaml"


@pytest.mark.parametrize("launcher", ["slurm_gpu", "slurm_cpu"])
def test_slurm_launchers(launcher):
    overrides = [f"hydra/launcher={launcher}", "hydra.launcher.partition=gpu", "compute=gpu"]
    cfg = _compose(overrides, hydra=True)
    la = cfg.hydra.launcher
    assert la._target_.endswith("SlurmLauncher")
    assert la.partition == "gpu"
    assert la.max_num_timeout > 0  # requeued on timeout; the run resumes
    assert la.mem_gb > 0 and la.timeout_min > 0
    # slurm_gpu: compute.devices GPUs per task (compute=gpu: one)
    assert (la.gpus_per_task or 0) == (1 if launcher == "slurm_gpu" else 0)
    assert la.gpus_per_node is None


def test_defaults():
    cfg = _compose()
    assert cfg.data.source == "demo"
    assert cfg.data.n_cells == 10_000
    assert OmegaConf.to_container(cfg.pool.contrasts) == DEFAULT_CONTRASTS
    assert cfg.seed == 0
    check_config(cfg)


def test_debug_tiny_is_small_on_any_data():
    for data in _options("data"):
        cfg = _compose([f"data={data}", "debug=tiny"])
        assert cfg.data.max_cells <= 2000
        assert cfg.integrate.max_epochs <= 10


def test_gpu_ddp_overrides():
    cfg = _compose(
        ["compute=gpu", "compute.devices=4", "compute.strategy=ddp_find_unused_parameters_true"]
    )
    assert cfg.compute.accelerator == "gpu"
    assert cfg.compute.devices == 4


def test_experiment_sets_contrasts():
    cfg = _compose(["experiment=mds_mouse_crizotinib"])
    assert OmegaConf.to_container(cfg.pool.contrasts) == [["MDS", "control"], ["MDS_drug", "MDS"]]
    assert list(cfg.data.species) == ["mouse"]


def test_seed_override():
    assert _compose(["seed=7"]).seed == 7


@pytest.mark.parametrize(
    "override",
    [
        "integrat.max_epochs=3",
        "integrate.max_epoch=3",
        "data.n_cell=5",
        "seed=abc",
        "integrate.max_epochs=many",
        "integrate.model=foo",
        "data=nope",
    ],
)
def test_bad_overrides_fail_at_compose(override):
    with pytest.raises(Exception):  # noqa: B017,PT011 - Hydra / OmegaConf exceptions
        _compose([override])


def test_added_keys_fail_the_check():
    cfg = _compose(["+data.foo=1"])
    with pytest.raises(MkcellError, match="data.foo"):
        check_config(cfg)


def test_semantic_checks(tmp_path):
    with pytest.raises(MkcellError, match="data.inputs"):
        check_config(_compose(["data=files"]))
    with pytest.raises(MkcellError, match="no such file"):
        check_config(_compose(["data=files", f"data.inputs.mouse={tmp_path / 'missing.h5ad'}"]))
    with pytest.raises(MkcellError, match="data.id"):
        check_config(_compose(["data=registry"]))
    with pytest.raises(MkcellError, match="pair"):
        check_config(_compose(["pool.contrasts=[[MDS]]"]))
    with pytest.raises(MkcellError, match="data.species"):
        check_config(_compose(["data.species=[rat]"]))


# ---------------------------------------------------------------- the CLI's one-line errors
# In a subprocess (the run_mkcell fixture): a Hydra run configures logging for its whole process
# (dictConfig closes the handlers it finds), which a test process must not share.


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["integrat.max_epochs=3"], "unknown config key 'integrat'"),
        (["seed=abc"], "seed=abc"),
        (["data=nope"], "available options in 'data'"),
        (["--bogus"], "unrecognized arguments: --bogus; usage: mkcell"),
        (["--cfg"], "--cfg/-c: expected one argument"),
        (["seed=1,2"], "add --multirun"),
        (["data=files", "data.inputs.human=/no/such/file.h5ad"], "no such file"),
        (["+foo=1"], "unknown config key 'foo'"),
        (["pool.contrasts=[[A,B]"], "cannot parse override"),
    ],
)
def test_cli_errors_are_one_line(args, expect, tmp_path, run_mkcell):
    proc = run_mkcell(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("mkcell: error:")
    assert expect in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "outputs").exists()


def test_cli_unwritable_output(tmp_path, run_mkcell):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = run_mkcell(f"hydra.run.dir={blocker / 'run'}", cwd=tmp_path, timeout=120)
    assert proc.stderr.count("\n") == 1 and "hydra.run.dir" in proc.stderr


def test_default_dir_is_stable():
    """The default folder follows the overrides that are not Hydra's own (the same command resumes)."""
    from mkcell.workflow import compose

    def folder(*overrides: str, key: str = "hydra.run.dir") -> str:
        return str(OmegaConf.select(compose(overrides), key))

    a = folder("debug=tiny", "seed=3")
    assert (
        a == folder("debug=tiny", "seed=3", "hydra.verbose=true") != folder("debug=tiny", "seed=4")
    )
    assert a.startswith("outputs/demo-tiny-")
    assert Path(folder(key="hydra.sweep.dir")) == Path("multirun/demo")
