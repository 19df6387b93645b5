"""Stage fingerprints hold the code their stage reaches through its imports.

A stage's files are computed (``mkcell.workflow._imports``) from its function: the tools
it calls and every module those import, lazy imports included. The end-to-end check (a
scratch copy of the package, a deep helper edited, the real ``mkcell`` command re-run) is
``tests/test_workflow.py::test_code_edit_reruns_stage_and_later``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import mkcell as mk
from mkcell.workflow import MAP_STAGES, STAGES, Stage, fingerprints
from mkcell.workflow import _stages as stages_module
from mkcell.workflow._fingerprints import code_files, package_root, stage_code
from mkcell.workflow._imports import PackageImports, package_imports

ROOT = package_root()
LISTS = {"run": STAGES, "map": MAP_STAGES}
SUBPACKAGES = ("datasets", "integrate", "io", "pl", "pp", "tl")


def _files(stages) -> dict[str, set[str]]:
    """``{stage: the package files its fingerprint holds}``."""
    return {st.name: set(stage_code(st, first=i == 0)) for i, st in enumerate(stages)}


def _modules() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts
    }


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "mkcell"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


# --------------------------------------------------------------------------- what a stage holds


@pytest.mark.parametrize(
    ("mode", "stage", "held", "not_held"),
    [
        ("run", "pool", {"tl/_pool.py", "tl/_maturation.py", "tl/_inference.py", "tl/_design.py"}, {"integrate/_scvi.py", "tl/_score.py"}),
        ("run", "integrate", {"integrate/_scvi.py", "integrate/_metrics.py", "pp/_hvg.py", "tl/_embed.py"}, {"tl/_pool.py"}),
        ("run", "score", {"tl/_score.py", "tl/_score_trends.py", "tl/_compare.py", "tl/_inference.py"}, {"tl/_pool.py"}),
        # orthologs has a local variable `report`: it is not the report stage's function
        ("run", "orthologs", {"pp/_concat.py", "pp/_orthologs.py"}, {"workflow/_report.py", "pl/_pool.py"}),
        # figures drawn through getattr(mk.pl, name), name from FIGURES and MAP_FIGURES
        ("run", "report", {"workflow/_report.py", "workflow/_findings.py", "tl/_reference.py", "pl/_embedding.py", "pl/_maturation.py", "pl/_score_trends.py", "pl/_pool.py", "pl/_map.py", "pl/_utils.py"}, {"pl/_gsea.py", "pl/_milo.py"}),
        # pp/_cycle.py and tl/_pool.py: function-level imports of tl/_map.py
        ("map", "reference", {"tl/_map.py", "tl/_reference.py", "integrate/_scvi.py", "pp/_cycle.py", "tl/_pool.py"}, {"tl/_annotate.py"}),
        ("map", "pool", {"tl/_pool.py", "tl/_maturation.py", "tl/_map.py"}, set()),
        ("map", "report", {"pl/_map.py", "workflow/_report.py"}, set()),
        ("run", "load", {"io/_read.py", "io/_registry.py", "datasets/_simulate.py", "data/markers/marker_panels.tsv", "workflow/_runner.py", "workflow/_stages.py", "workflow/_config.py", "tl/__init__.py", "_lazy.py"}, {"datasets/_real.py", "tl/_inference.py"}),
    ],
)  # fmt: skip
def test_stage_holds_its_tools_and_their_imports(mode, stage, held, not_held):
    files = _files(LISTS[mode])[stage]
    assert held <= files, f"{stage} lacks {sorted(held - files)}"
    assert not (not_held & files), f"{stage} holds {sorted(not_held & files)}"


def _stage_source(func) -> str:
    """Source of a stage function and of the module-level helpers of _stages.py it calls."""
    seen: set[str] = set()
    todo = [func]
    texts = []
    while todo:
        f = todo.pop()
        if f.__name__ in seen:
            continue
        seen.add(f.__name__)
        text = inspect.getsource(f)
        texts.append(text)
        for name in re.findall(r"\b(\w+)\(", text):
            g = getattr(stages_module, name, None)
            if inspect.isfunction(g) and g.__module__ == stages_module.__name__:
                todo.append(g)
    return "\n".join(texts)


@pytest.mark.parametrize("mode", LISTS)
def test_stage_holds_every_tool_it_calls(mode):
    """Every ``mk.<sub>.<tool>`` in a stage's source, found by Python's own import, is held."""
    problems = []
    for st in LISTS[mode]:
        files = set(stage_code(st))
        calls = set(re.findall(r"\bmk\.(\w+)\.(\w+)", _stage_source(st.func)))
        if st.name == "report":
            extra = stages_module.MAP_FIGURES if mode == "map" else ()
            calls |= {("pl", n) for n in (*stages_module.FIGURES, *extra)}
        for sub, name in sorted(calls):
            module = inspect.getmodule(getattr(getattr(mk, sub), name))
            rel = Path(module.__file__).resolve().relative_to(ROOT).as_posix()
            if rel not in files:
                problems.append(f"{st.name} calls mk.{sub}.{name} from {rel}, not held")
    assert not problems, problems


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_public_names_resolve_as_python_imports_them(sub):
    """The ``_NAMES`` tables and re-exports, read with ast, name the modules Python loads."""
    table = PackageImports(ROOT).exports(f"{sub}/__init__.py")
    package = getattr(mk, sub)
    for name in package.__all__:
        source = inspect.getsourcefile(getattr(package, name))
        assert table[name] == Path(source).resolve().relative_to(ROOT).as_posix(), name


def test_lazy_imports_count():
    graph = PackageImports(ROOT)
    assert "tl/_camera.py" in graph.imports("tl/_gsea.py")  # inside a function
    assert "tl/_camera.py" not in graph.imports("tl/_gsea.py", lazy=False)


def _toy_stage(cfg, data, run_dir):  # noqa: ARG001
    from mkcell.pp._hvg import highly_variable_genes

    highly_variable_genes(data)
    mk.tl.progenitor_pool(data, "sample", "condition")
    return data


def test_stage_outside_the_package():
    """A stage function of another module: its ``mk.`` calls and imports count, nothing else."""
    files = set(stage_code(Stage("toy", _toy_stage, ())))
    assert {"pp/_hvg.py", "tl/_pool.py", "tl/_inference.py"} <= files
    assert not files & {"tl/_score.py", "workflow/_stages.py", "data/markers/marker_panels.tsv"}


def _command_line(graph: PackageImports) -> set[str]:
    """``python -m mkcell``, the CLI module and what it imports, and the launchers Hydra loads by
    their ``_target_`` in ``configs/hydra/launcher/*.yaml``."""
    from mkcell.workflow import config_dir

    targets = {"__main__.py", "workflow/_cli.py"}
    for path in (config_dir() / "hydra" / "launcher").glob("*.yaml"):
        target = str(OmegaConf.load(path).get("_target_", ""))
        if target.startswith("mkcell."):
            targets.add("/".join(target.split(".")[1:-1]) + ".py")
    return set(graph.closure(targets))


def test_every_module_is_held_or_a_tool_no_stage_calls():
    """A module no stage holds must be a public tool (or imported by one) that no stage calls.

    Anything else is dead, or loaded in a way the import walk cannot see.
    """
    graph = package_imports(ROOT.resolve())
    held = set().union(*_files(STAGES).values(), *_files(MAP_STAGES).values())
    tools = {f for sub in SUBPACKAGES for f in graph.exports(f"{sub}/__init__.py").values()}
    not_run = sorted(graph.closure(tools) - held)
    print("tools no stage calls (and what only they import):", not_run)  # noqa: T201
    command_line = _command_line(graph) - held
    print("the command line (starts runs, computes nothing):", sorted(command_line))  # noqa: T201
    left = _modules() - held - set(not_run) - command_line
    assert not left, sorted(left)
    assert all(f.endswith(".py") and not f.startswith("workflow/") for f in not_run)


# --------------------------------------------------------------------------- edits re-run


@pytest.mark.parametrize(
    ("mode", "edited", "first"),
    [
        ("run", "tl/_inference.py", "score"),  # imported by tl/_compare.py and tl/_pool.py
        ("map", "tl/_inference.py", "orthologs"),  # orthologs_query imports tl._map -> tl._pool
        ("run", "tl/_pool.py", "pool"),
        ("run", "pp/_score_genes.py", "integrate"),
        ("run", "_utils.py", "load"),  # a bottom module re-runs everything
        ("run", "data/markers/marker_panels.tsv", "load"),
    ],
)
def test_code_edit_changes_that_stage_and_later(tmp_path, mode, edited, first):
    """Edit a file in a copy of the package: its stages and every later one change."""
    stages = LISTS[mode]
    copy = _copy(tmp_path)
    cfg = OmegaConf.create({"seed": 0})
    before = fingerprints(cfg, stages, root=copy)
    assert before == fingerprints(cfg, stages)  # the copy is byte-identical
    with (copy / edited).open("a") as fh:
        fh.write("# edited\n")
    after = fingerprints(cfg, stages, root=copy)
    names = [st.name for st in stages]
    assert [n for n in names if before[n] != after[n]] == names[names.index(first) :]


def test_a_deep_helper_is_held_by_the_stages_that_import_it():
    """tl/_inference.py is held by score, pool and patients (report re-runs through the chain)."""
    files = _files(STAGES)
    assert {n for n, f in files.items() if "tl/_inference.py" in f} == {"score", "pool", "patients"}


def test_fingerprints_are_stable_across_processes():
    """Same code, same digests: nothing depends on set order or hash seeds."""
    script = (
        "import json; from omegaconf import OmegaConf;"
        "from mkcell.workflow import MAP_STAGES, STAGES, fingerprints;"
        "cfg = OmegaConf.create({'seed': 0});"
        "print(json.dumps([fingerprints(cfg, STAGES), fingerprints(cfg, MAP_STAGES)]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    cfg = OmegaConf.create({"seed": 0})
    here = [fingerprints(cfg, STAGES), fingerprints(cfg, MAP_STAGES)]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == here


def test_code_pattern_without_files_fails():
    with pytest.raises(RuntimeError, match="matches no file"):
        code_files(("tl/_no_such_tool.py",))


def test_version_comes_from_pyproject():
    pyproject = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    assert mk.__version__ == importlib.metadata.version("mkcell")
    assert mk.__version__ == pyproject["project"]["version"]
    init = (ROOT / "__init__.py").read_text()
    assert not re.search(r"__version__\s*=\s*['\"]\d+\.\d", init), "a second, hard-coded version"
