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

    code = "import sys, mkcell; heavy = [m for m in ('scvi', 'cellrank', 'torch', 'pertpy') if m in sys.modules]; print(heavy)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", out
