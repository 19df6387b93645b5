"""The package files a stage function depends on, read from the source (ast), not listed by hand.

A stage's entry points are the tools its function names (``mk.tl.progenitor_pool``,
resolved to the defining module through the subpackage's lazy ``_NAMES`` table or its
imports), the imports inside the function, and the same for the functions of its own
module that it calls. From there every ``mkcell`` module they import is followed,
transitively, function-level (lazy) imports included.

Two kinds of module are not followed:

* package ``__init__`` files only route names to modules; what they import is not a
  dependency of whoever imports them (``mk.tl.umap`` depends on ``tl/_embed.py``, not on
  every tool ``tl/__init__.py`` can load);
* :data:`DISPATCH`, the workflow machinery: it imports tools inside functions to check a
  config or to run a stage, so only its module-level imports count;
* :data:`SIGNATURES`, the config sections, read the tools' signatures only.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

PACKAGE = "mkcell"
#: Modules whose function-level imports are not dependencies of whoever imports them.
DISPATCH = frozenset(
    {
        "workflow/_runner.py",
        "workflow/_stages.py",
        "workflow/_map_stages.py",
        "workflow/_config.py",
    }
)
#: Modules that import tools only to read their signatures (the config sections): their imports
#: are not followed; a changed default reaches the fingerprints through the config values.
SIGNATURES = frozenset({"workflow/_sections.py"})
#: Where the running package lives (a stage function's own source is read from its copy in root).
RUNNING_ROOT = Path(__file__).resolve().parents[1]

Parts = tuple[str, ...]
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _absolute(module: str) -> Parts | None:
    """``mkcell.tl._pool`` -> ``("tl", "_pool")``; None outside the package."""
    head, *rest = module.split(".")
    return tuple(rest) if head == PACKAGE else None


def _statements(tree: ast.AST, *, functions: bool = True) -> Iterator[ast.stmt]:
    """Every statement of ``tree`` (imports are statements: expressions are not walked).

    ``functions=False``: only those that run on import, not the ones in function bodies.
    """
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.stmt):
            yield node
            if not functions and isinstance(node, _FUNCTIONS):
                continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            value = getattr(node, field, None)
            if isinstance(value, list):
                todo.extend(value)


def _strings(node: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


class PackageImports:
    """The import graph of one copy of the package (each file parsed at most once).

    Modules are named by their path relative to ``root`` (``tl/_pool.py``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._trees: dict[str, ast.Module] = {}
        self._exports: dict[str, dict[str, str]] = {}
        self._files: dict[Parts, str | None] = {}
        self._imports: dict[tuple[str, bool], frozenset[str]] = {}

    def tree(self, rel: str) -> ast.Module:
        if rel not in self._trees:
            self._trees[rel] = ast.parse((self.root / rel).read_bytes(), rel)
        return self._trees[rel]

    def file(self, parts: Parts) -> str | None:
        """The module or package ``mkcell.<parts>`` (None when there is none)."""
        if parts not in self._files:
            candidates = ("/".join(parts) + ".py", "/".join((*parts, "__init__.py")))
            found = (c for c in candidates[0 if parts else 1 :] if (self.root / c).is_file())
            self._files[parts] = next(found, None)
        return self._files[parts]

    def member(self, parts: Parts, name: str) -> str | None:
        """The file that defines ``name`` as seen from module ``mkcell.<parts>``."""
        sub = self.file((*parts, name))
        if sub is not None:
            return sub
        here = self.file(parts)
        if here is not None and here.endswith("__init__.py"):
            return self.exports(here).get(name, here)
        return here

    def exports(self, init: str) -> dict[str, str]:
        """``{name: defining file}`` of a package ``__init__``: its ``_NAMES`` table and imports."""
        if init in self._exports:
            return self._exports[init]
        package = Path(init).parent.parts
        table: dict[str, str] = {}
        for node in self.tree(init).body:
            if isinstance(node, ast.ImportFrom):
                base = self._base(init, node)
                for alias in node.names if base is not None else ():
                    if alias.name == "*":
                        continue
                    rel = self.file((*base, alias.name)) or self.file(base)
                    if rel is not None and rel != init:
                        table[alias.asname or alias.name] = rel
            elif isinstance(node, ast.Assign | ast.AnnAssign) and _is_names_table(node):
                try:
                    names = ast.literal_eval(node.value)
                except ValueError:
                    continue
                for name, target in names.items():
                    level = len(target) - len(target.lstrip("."))
                    if level:
                        parts = (*package[: len(package) - level + 1], *target[level:].split("."))
                    else:
                        parts = _absolute(target)
                    rel = self.file(parts) if parts is not None else None
                    if rel is not None:
                        table[name] = rel
        self._exports[init] = table
        return table

    def _base(self, rel: str, node: ast.ImportFrom) -> Parts | None:
        """The module a ``from ... import`` in file ``rel`` reads from (None: not mkcell)."""
        if node.level == 0:
            return _absolute(node.module or "")
        package = Path(rel).parent.parts
        up = node.level - 1
        if up > len(package):
            return None
        module = tuple(node.module.split(".")) if node.module else ()
        return (*package[: len(package) - up], *module)

    def _imported(self, rel: str | None, node: ast.AST) -> set[str]:
        """Package files one import statement in file ``rel`` loads (``rel`` None: outside)."""
        found: list[str | None] = []
        if isinstance(node, ast.ImportFrom):
            base = None if rel is None and node.level else self._base(rel or "", node)
            for alias in node.names if base is not None else ():
                found.append(
                    self.file(base) if alias.name == "*" else self.member(base, alias.name)
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = _absolute(alias.name)
                found.append(self.file(parts) if parts is not None else None)
        return {f for f in found if f is not None and f != rel}

    def imports(self, rel: str, *, lazy: bool = True) -> frozenset[str]:
        """Package files module ``rel`` imports; ``lazy``: function-level imports too."""
        key = (rel, lazy)
        if key not in self._imports:
            nodes = _statements(self.tree(rel), functions=lazy)
            self._imports[key] = frozenset(f for n in nodes for f in self._imported(rel, n))
        return self._imports[key]

    def closure(self, starts: Iterable[str]) -> frozenset[str]:
        """``starts`` and every package file they import, transitively (see the module doc)."""
        seen: set[str] = set()
        todo = list(starts)
        while todo:
            rel = todo.pop()
            if rel in seen:
                continue
            seen.add(rel)
            if rel.endswith(".py") and not rel.endswith("__init__.py") and rel not in SIGNATURES:
                todo.extend(self.imports(rel, lazy=rel not in DISPATCH))
        return frozenset(seen)

    def entries(self, func: Callable[..., object]) -> frozenset[str]:
        """Package files ``func`` reaches directly.

        The tools it names, what it imports, and the same for the functions of its own
        module that it calls.
        """
        found = self._definition(func)
        if found is None:
            return frozenset()
        node, module, rel = found
        contexts: dict[str | None, tuple] = {}

        def context(rel: str | None, module: ast.Module) -> tuple:
            if rel not in contexts:
                helpers = {n.name: n for n in module.body if isinstance(n, _FUNCTIONS)}
                constants = {
                    t.id: _strings(n.value)
                    for n in module.body
                    if isinstance(n, ast.Assign)
                    for t in n.targets
                    if isinstance(t, ast.Name)
                }
                contexts[rel] = (helpers, self._bindings(module, rel), constants)
            return contexts[rel]

        out: set[str] = set()
        done: set[tuple[str | None, str]] = set()
        todo = [(node, module, rel)]
        while todo:
            fn, module, rel = todo.pop()
            if (rel, fn.name) in done:
                continue
            done.add((rel, fn.name))
            helpers, names, constants = context(rel, module)
            # a name assigned in the function is its own, not the module's
            used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} - _local_names(fn)
            todo.extend((helpers[n], module, rel) for n in used & helpers.keys())
            strings = _strings(fn).union(*(constants.get(n, ()) for n in used))
            bound = {n: names[n] for n in used & names.keys()}
            out |= {f for f in bound.values() if isinstance(f, str)}
            # a function of another workflow module (a shared stage step): follow it too
            for n, f in bound.items():
                if isinstance(f, str) and f.startswith("workflow/") and f.endswith(".py"):
                    other = self.tree(f)
                    todo.extend(
                        (d, other, f)
                        for d in other.body
                        if isinstance(d, _FUNCTIONS) and d.name == n
                    )
            out |= {f for sub in _statements(fn) for f in self._imported(rel, sub)}
            out |= self._tools(fn, bound, strings)
        return frozenset(out)

    def _definition(
        self, func: Callable[..., object]
    ) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.Module, str | None] | None:
        """``func``'s definition, its module, and that module's file in the package (or None).

        A module-level function of the package is read from its copy under ``root``; any
        other function from its own source. None when there is no source to read.
        """
        try:
            path = Path(inspect.getsourcefile(func) or "").resolve()
        except TypeError:
            return None
        try:
            rel: str | None = path.relative_to(RUNNING_ROOT).as_posix()
        except ValueError:
            rel = None
        module = self.tree(rel) if rel is not None and (self.root / rel).is_file() else None
        if module is not None and func.__qualname__ == func.__name__:
            for node in module.body:
                if isinstance(node, _FUNCTIONS) and node.name == func.__name__:
                    return node, module, rel
        try:
            node = ast.parse(textwrap.dedent(inspect.getsource(func))).body[0]
            module = module or ast.parse(path.read_bytes(), str(path))
        except (OSError, TypeError, SyntaxError):
            return None
        return (node, module, rel) if isinstance(node, _FUNCTIONS) else None

    def _bindings(self, module: ast.Module, rel: str | None) -> dict[str, Parts | str]:
        """Module-level names bound to the package: a module (its parts) or an object (its file)."""
        out: dict[str, Parts | str] = {}
        for node in _statements(module, functions=False):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = _absolute(alias.name)
                    if parts is not None:
                        out[alias.asname or PACKAGE] = parts if alias.asname else ()
            elif isinstance(node, ast.ImportFrom):
                base = None if rel is None and node.level else self._base(rel or "", node)
                for alias in node.names if base is not None else ():
                    sub = (*base, alias.name)
                    target = sub if self.file(sub) is not None else self.member(base, alias.name)
                    if target is not None:
                        out[alias.asname or alias.name] = target
        return out

    def _tools(self, fn: ast.AST, names: dict[str, Parts | str], strings: set[str]) -> set[str]:
        """Files of the ``mk.<sub>.<name>`` and ``getattr(mk.<sub>, name)`` that ``fn`` uses."""
        inner = {id(n.value) for n in ast.walk(fn) if isinstance(n, ast.Attribute)}
        found: set[str | None] = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and id(node) not in inner:
                chain = _chain(node)
                parts = names.get(chain[0]) if chain is not None else None
                if chain is not None and isinstance(parts, tuple):
                    found.add(self._resolve(parts, chain[1:]))
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
            ):
                found |= self._getattr(node.args[0], node.args[1], names, strings)
        return {f for f in found if f is not None}

    def _getattr(
        self, obj: ast.AST, attr: ast.AST, names: dict[str, Parts | str], strings: set[str]
    ) -> set[str | None]:
        """``getattr(mk.pl, name)``: the tools of ``mk.pl`` named by a string ``fn`` can reach.

        With no such string, every tool of the subpackage (the safe side).
        """
        chain = _chain(obj)
        parts = names.get(chain[0]) if chain is not None else None
        if chain is None or not isinstance(parts, tuple):
            return set()
        for a in chain[1:]:
            if self.file((*parts, a)) is None:
                return {self.member(parts, a)}
            parts = (*parts, a)
        init = self.file(parts)
        if init is None or not init.endswith("__init__.py"):
            return {init}
        table = self.exports(init)
        if isinstance(attr, ast.Constant) and isinstance(attr.value, str):
            return {table.get(attr.value, init)}
        hits = {table[s] for s in strings if s in table}
        return hits or set(table.values())

    def _resolve(self, parts: Parts, attrs: tuple[str, ...]) -> str | None:
        """The file behind ``mkcell.<parts>.<attrs...>`` (a module, or the one defining a name)."""
        for a in attrs:
            if self.file((*parts, a)) is None:
                return self.member(parts, a)
            parts = (*parts, a)
        return self.file(parts)


def _local_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names ``fn`` binds itself: arguments, assignments, imports, nested definitions."""
    a = fn.args
    args = (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg)
    out = {x.arg for x in args if x is not None}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            out.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            out |= {x.asname or x.name.split(".")[0] for x in node.names}
        elif isinstance(node, (*_FUNCTIONS, ast.ClassDef)) and node is not fn:
            out.add(node.name)
    return out


def _is_names_table(node: ast.Assign | ast.AnnAssign) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(t, ast.Name) and t.id == "_NAMES" for t in targets) and isinstance(
        node.value, ast.Dict
    )


def _chain(node: ast.AST) -> tuple[str, ...] | None:
    """``mk.tl.pool`` -> ``("mk", "tl", "pool")``; None unless it is names and dots only."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id, *reversed(attrs)) if isinstance(node, ast.Name) else None


@functools.cache
def package_imports(root: Path) -> PackageImports:
    """The import graph of the package at ``root`` (once per process)."""
    return PackageImports(root)


@functools.cache
def depends_on(func: Callable[..., object], root: Path) -> frozenset[str]:
    """Package files (relative to ``root``) whose code ``func``'s results depend on."""
    graph = package_imports(root)
    return graph.closure(graph.entries(func))


@functools.cache
def machinery(root: Path) -> frozenset[str]:
    """:data:`DISPATCH` and what it imports at module level, transitively."""
    return package_imports(root).closure(DISPATCH)
