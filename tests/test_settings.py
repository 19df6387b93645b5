"""mk.settings: every setting is read somewhere; an unknown one cannot be set."""

from __future__ import annotations

import pytest

import mkcell as mk
from mkcell._settings import MkcellError
from mkcell.integrate._scvi import resolve_accelerator


def test_accelerator_setting_is_the_auto_default(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(mk.settings, "accelerator", "cpu")
    assert resolve_accelerator("auto") == "cpu"
    assert resolve_accelerator(None) == "cpu"
    monkeypatch.setattr(mk.settings, "accelerator", "auto")
    assert resolve_accelerator("auto") == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(mk.settings, "accelerator", "gpu")
    assert resolve_accelerator("cpu") == "cpu"  # an explicit argument wins
    if not torch.cuda.is_available():
        with pytest.raises(MkcellError, match=r"mk\.settings\.accelerator='gpu'"):
            resolve_accelerator("auto")
    monkeypatch.setattr(mk.settings, "accelerator", "tpu")
    with pytest.raises(MkcellError, match=r"mk\.settings\.accelerator='tpu'"):
        resolve_accelerator(None)


def test_no_package_wide_seed():
    """Seeds are arguments (seed=, default 0); a package-wide seed would be read by nothing."""
    with pytest.raises(AttributeError):
        mk.settings.seed = 1
