"""Stage fingerprints hold the code: every module is claimed, and editing one re-runs its stage.

The end-to-end check (a scratch copy of the package, one tool file edited, the real
``mkcell`` command re-run) is ``tests/test_workflow.py::test_code_edit_reruns_stage_and_later``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import mkcell as mk
from mkcell.workflow import MAP_STAGES, STAGES, fingerprints
from mkcell.workflow import _stages as stages_module
from mkcell.workflow._runner import code_files, package_root

ROOT = package_root()
#: Modules that only hand work to the stages (imports, config checks, stage dispatch): their
#: own imports are not dependencies of the first stage, which claims them.
DISPATCH = {"workflow/_stages.py", "workflow/_config.py"}
LISTS = {"run": STAGES, "map": MAP_STAGES}


def _all_modules() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts
    }


def _claims(stages) -> dict[str, int]:
    """``{file: index of the first stage that claims it}``."""
    out: dict[str, int] = {}
    for i, st in enumerate(stages):
        for f in code_files(st.code):
            out.setdefault(f, i)
    return out


def _imports(rel: str) -> set[str]:
    """Package files that module ``rel`` imports (anywhere in it, lazy imports included)."""
    here = Path(rel).parent
    out: set[str] = set()

    def add(base: Path, name: str | None) -> None:
        for cand in (
            *((base / f"{name}.py", base / name / "__init__.py") if name else ()),
            base.with_suffix(".py") if str(base) != "." else None,
            base / "__init__.py",
        ):
            if cand is not None and (ROOT / cand).is_file():
                out.add(cand.as_posix())
                return

    for node in ast.walk(ast.parse((ROOT / rel).read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("mkcell"):
                    continue
                base = Path(*node.module.split(".")[1:]) if "." in node.module else Path()
            else:
                base = here
                for _ in range(node.level - 1):
                    base = base.parent
                if node.module:
                    base = base / Path(*node.module.split("."))
            for alias in node.names:
                add(base, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mkcell"):
                    add(Path(*alias.name.split(".")[1:]) if "." in alias.name else Path(), None)
    out.discard(rel)
    return out


def test_every_module_is_claimed_by_a_stage():
    """A new module must enter a stage's ``code`` (or ``NOT_RUN``): it cannot be forgotten."""
    claimed = set(_claims(STAGES)) | set(_claims(MAP_STAGES))
    not_run = set(stages_module.NOT_RUN)
    assert not (claimed & not_run), "NOT_RUN lists modules a stage claims"
    missing = sorted(_all_modules() - claimed - not_run)
    assert not missing, f"modules no stage claims (add them to a Stage's code=): {missing}"
    assert not_run <= _all_modules(), "NOT_RUN lists files that do not exist"


@pytest.mark.parametrize("mode", LISTS)
def test_stage_code_holds_what_it_imports(mode):
    """What a claimed module imports is claimed by the same stage or an earlier one."""
    stages = LISTS[mode]
    first = _claims(stages)
    problems = []
    for i, st in enumerate(stages):
        for rel in code_files(st.code):
            if not rel.endswith(".py") or rel in DISPATCH or rel.endswith("__init__.py"):
                continue
            for dep in sorted(_imports(rel)):
                if first.get(dep, len(stages)) > i:
                    problems.append(f"{st.name}: {rel} imports {dep}")
    assert not problems, problems


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
def test_stage_code_holds_the_tools_it_calls(mode):
    """Every ``mk.<sub>.<tool>`` a stage calls lives in a file claimed by it or an earlier stage."""
    stages = LISTS[mode]
    first = _claims(stages)
    problems = []
    for i, st in enumerate(stages):
        calls = set(re.findall(r"\bmk\.(\w+)\.(\w+)", _stage_source(st.func)))
        if st.name == "report":  # figures drawn through getattr(mk.pl, name)
            extra = stages_module.MAP_FIGURES if mode == "map" else ()
            names = (*stages_module.FIGURES, *extra)
            calls |= {("pl", n) for n in names}
        for sub, name in sorted(calls):
            module = inspect.getmodule(getattr(getattr(mk, sub), name))
            rel = Path(module.__file__).resolve().relative_to(ROOT).as_posix()
            if first.get(rel, len(stages)) > i:
                problems.append(f"{st.name} calls mk.{sub}.{name} from {rel}, not claimed")
    assert not problems, problems


def test_code_edit_changes_that_stage_and_later(tmp_path):
    copy = tmp_path / "mkcell"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = OmegaConf.create({"seed": 0})
    before = fingerprints(cfg, STAGES, root=copy)
    assert before == fingerprints(cfg, STAGES)  # the copy is byte-identical
    with (copy / "tl" / "_pool.py").open("a") as fh:
        fh.write("# edited\n")
    after = fingerprints(cfg, STAGES, root=copy)
    names = [st.name for st in STAGES]
    changed = [n for n in names if before[n] != after[n]]
    assert changed == names[names.index("pool") :]
    with (copy / "_utils.py").open("a") as fh:
        fh.write("# edited\n")
    again = fingerprints(cfg, STAGES, root=copy)
    assert all(again[n] != after[n] for n in names)  # a bottom module re-runs everything


def test_code_pattern_without_files_fails():
    with pytest.raises(RuntimeError, match="matches no file"):
        code_files(("tl/_no_such_tool.py",))


def test_version_comes_from_pyproject():
    pyproject = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    assert mk.__version__ == importlib.metadata.version("mkcell")
    assert mk.__version__ == pyproject["project"]["version"]
    init = (ROOT / "__init__.py").read_text()
    assert not re.search(r"__version__\s*=\s*['\"]\d+\.\d", init), "a second, hard-coded version"
