"""The package's own rules, checked on its source: layers, and every key in ``_keys.py``.

Both rules are read from the syntax tree (imports, string constants), so a lazy import inside
a function counts as much as one at the top of a module. docs/architecture.md explains them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mkcell"

#: Which layers each layer may import. ``base`` is every module directly under ``mkcell/``
#: (keys, settings, utilities, marker panels, ortholog table, species rule, docs).
ALLOWED = {
    "base": {"base"},
    "io": {"base", "io"},
    "datasets": {"base", "io", "datasets"},
    "pp": {"base", "io", "pp"},
    "integrate": {"base", "io", "pp", "integrate"},
    "tl": {"base", "io", "pp", "integrate", "tl"},
    "pl": {"base", "pl"},
    "workflow": {"base", "io", "datasets", "pp", "integrate", "tl", "pl", "workflow"},
}
#: String values allowed outside ``_keys.py`` although they start with ``mk_``: none today.
KEY_EXCEPTIONS: set[str] = set()


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    """Layer of a module of the package (None for the public faces: ``mkcell``, ``python -m``)."""
    parts = module.split(".")
    if parts[0] != "mkcell" or len(parts) == 1 or parts[1] == "__main__":
        return None
    return parts[1] if parts[1] in ALLOWED else "base"


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every mkcell import in a file, lazy ones included."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("mkcell")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("mkcell"):
                continue
            if node.module:  # from .x import name: the module x
                out.append((node.lineno, target))
            else:  # from .. import tl: the subpackage tl
                out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return out


def layer_violations(package: Path = PACKAGE) -> list[str]:
    """Imports that break :data:`ALLOWED`, as ``file:line: a imports b (module)`` strings."""
    root = package.parent
    bad = []
    for path in sorted(package.rglob("*.py")):
        src = _layer(_module_name(path, root))
        if src is None:
            continue
        for line, target in _imports(path, root):
            dst = _layer(target)
            if dst is not None and dst not in ALLOWED[src]:
                bad.append(f"{path.relative_to(root)}:{line}: {src} imports {dst} ({target})")
    return bad


def _docstring_ids(tree: ast.AST) -> set[int]:
    """Ids of the string constants that are docstrings or bare string statements."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            out.add(id(node.value))
    return out


def key_literals(paths: list[Path], root: Path = ROOT) -> list[str]:
    """``mk_…`` string literals (and f-strings starting with ``mk_``) outside docstrings."""
    bad = []
    for path in paths:
        tree = ast.parse(path.read_text())
        docs = _docstring_ids(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                docs.update(id(v) for v in node.values)  # judged as a whole below
                first = node.values[0] if node.values else None
                if isinstance(first, ast.Constant) and str(first.value).startswith("mk_"):
                    bad.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and node.value.startswith("mk_")
                and node.value not in KEY_EXCEPTIONS
            ):
                bad.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return bad


def _code_files() -> list[Path]:
    files = list(PACKAGE.rglob("*.py")) + list((ROOT / "workflows").rglob("*.py"))
    return sorted(p for p in files if p.name != "_keys.py")


def test_layers_import_only_downwards():
    bad = layer_violations()
    assert not bad, "imports against the layers (see docs/architecture.md):\n" + "\n".join(bad)


def test_keys_live_in_one_module():
    bad = key_literals(_code_files())
    assert not bad, "key literals outside mkcell/_keys.py:\n" + "\n".join(bad)


def test_state_names_live_in_one_module():
    """Names other modules would spell out are taken from ``_keys`` (``K.HSC_MPP``...)."""
    bad = []
    for path in _code_files():
        tree = ast.parse(path.read_text())
        docs = _docstring_ids(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in docs:
                if node.value in ("HSC/MPP", "cycling_fraction"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not bad, "names outside mkcell/_keys.py:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ..tl._gsea import gsea\n", "pl imports tl"),
        ("def f():\n    from ..datasets import simulate_marrow\n", "pl imports datasets"),
    ],
)
def test_layer_rule_catches_a_backward_import(tmp_path, source, expected):
    """The rule fails when broken: a plot module that imports a tool (even lazily)."""
    pkg = tmp_path / "mkcell"
    (pkg / "pl").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "pl" / "__init__.py").write_text("")
    (pkg / "pl" / "_bad.py").write_text(source)
    bad = layer_violations(pkg)
    assert len(bad) == 1 and expected in bad[0], bad


def test_key_rule_catches_a_literal(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text(
        '"""Doc mentions uns[\'mk_pool\'] freely."""\nKEY = "mk_pool"\nx = f"mk_{KEY}"\n'
    )
    bad = key_literals([path], tmp_path)
    assert [b.split(": ", 1)[1] for b in bad] == ["f'mk_{KEY}'", "'mk_pool'"], bad


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(command):
    """``ruff check`` and ``ruff format --check`` pass on the whole tree (the pinned ruff)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the `test` extra)")
    res = subprocess.run([ruff, *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
