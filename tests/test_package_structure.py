"""Conventions every public function follows (like scanpy's test_sig_conventions)."""

import inspect

import pytest

import mkcell as mk

MODULES = [mk.pp, mk.integrate, mk.tl, mk.pl, mk.io, mk.datasets]
PUBLIC = [(m.__name__, name) for m in MODULES for name in m.__all__ if callable(getattr(m, name))]


@pytest.mark.parametrize(("module", "name"), PUBLIC)
def test_sig_conventions(module, name):
    fn = getattr(__import__(module, fromlist=[name]), name)
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    # the data object first, then at most 3 positional parameters; the rest keyword-only
    assert len(positional) <= 4, (name, [p.name for p in positional])
    if params and params[0].name == "adata":
        if "copy" in inspect.signature(fn).parameters:
            assert inspect.signature(fn).parameters["copy"].default is False
    assert fn.__doc__ and fn.__doc__.strip(), f"{module}.{name} has no docstring"


def test_keys_live_in_one_module():
    from mkcell import _keys as K

    assert K.LATENT == "X_mk_scvi" and K.PSEUDOTIME == "mk_pseudotime" and K.FATE == "mk_fate"
    assert "MkP" in K.STATES and "Mk" in K.STATES


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, mkcell; "
        "heavy = [m for m in ('scvi', 'cellrank', 'torch', 'pertpy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", out


# ---------------------------------------------------------------- one return convention

TL_WRITERS = sorted(
    name
    for name in mk.tl.__all__
    if "key_added" in inspect.signature(getattr(mk.tl, name)).parameters
)


@pytest.mark.parametrize("name", TL_WRITERS)
def test_tools_that_write_take_copy_and_return_none_or_the_copy(name):
    """scanpy's convention: write to adata and return None; copy=True returns the copy."""
    sig = inspect.signature(getattr(mk.tl, name))
    copy = sig.parameters.get("copy")
    assert copy is not None, f"mk.tl.{name} has key_added but no copy="
    assert copy.default is False and copy.kind is copy.KEYWORD_ONLY
    assert sig.return_annotation in ("AnnData | None", "None"), (name, sig.return_annotation)


def _design_adata():
    """Obs-only AnnData: 2 conditions x 3 samples, MkP / Mk / HSC/MPP cells on a pseudotime."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for cond, shift in (("control", 0.0), ("MDS", 0.1)):
        for i in range(3):
            for state, n in (("MkP", 12 + 4 * i), ("Mk", 10), ("HSC/MPP", 20)):
                for _ in range(n):
                    t = rng.uniform(0, 0.5) if state == "MkP" else rng.uniform(0.5, 1.0)
                    rows.append(
                        {
                            "sample": f"{cond}_{i}",
                            "condition": cond,
                            "species": "mouse",
                            "mk_state": state,
                            "mk_pseudotime": t if state != "HSC/MPP" else np.nan,
                            "mk_score_e2f_targets": rng.normal(shift, 1.0),
                        }
                    )
    obs = pd.DataFrame(rows, index=[f"c{i}" for i in range(len(rows))])
    return ad.AnnData(X=np.zeros((len(obs), 1), dtype=np.float32), obs=obs)


@pytest.mark.parametrize(
    ("tool", "key", "kwargs"),
    [
        ("progenitor_pool", "mk_pool", {}),
        ("maturation_shift", "mk_maturation", {}),
        ("compare_scores", "mk_score_compare", {"keys": ["mk_score_e2f_targets"]}),
    ],
)
def test_copy_returns_new_adata_and_leaves_input(tool, key, kwargs):
    fn = getattr(mk.tl, tool)
    a = _design_adata()
    b = fn(a, copy=True, **kwargs)
    assert b is not a and key in b.uns and key not in a.uns
    assert fn(a, **kwargs) is None and key in a.uns


# ---------------------------------------------------------------- short public tools

#: Most lines a public function's body may span (statements after the docstring), so that
#: each tool reads as scanpy's do: check inputs, call a few private helpers, write, log.
MAX_PUBLIC_BODY_LINES = 100


def _public_function_bodies():
    """(module path, function name, body lines) of every public module-level function."""
    import ast
    from pathlib import Path

    root = Path(mk.__file__).parent
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("_"):
                continue
            body = node.body
            if ast.get_docstring(node, clean=False) is not None:
                body = body[1:]
            if body:
                lines = body[-1].end_lineno - body[0].lineno + 1
                yield path.relative_to(root.parent).as_posix(), node.name, lines


def test_public_functions_are_short():
    """No public function's body is over MAX_PUBLIC_BODY_LINES lines: the rest goes to helpers."""
    found = list(_public_function_bodies())
    assert len(found) > 50  # the walk saw the package
    long = [f"{m}::{name} ({n} lines)" for m, name, n in found if n > MAX_PUBLIC_BODY_LINES]
    assert not long, (
        f"public functions with bodies over {MAX_PUBLIC_BODY_LINES} lines; move steps into "
        f"private helpers: {', '.join(long)}"
    )
