"""Config sections are the tools' keyword arguments, and every default lives in one place."""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
from pathlib import Path

import pytest
import yaml

from mkcell.workflow import _config, _stages
from mkcell.workflow._schema import tool_kwargs, tool_section

CONFIGS = Path(_config.config_dir())
SECTIONS = {
    "orthologs": _config.OrthologsConf,
    "qc": _config.QcConf,
    "integrate": _config.IntegrateConf,
    "annotate": _config.AnnotateConf,
    "trajectory": _config.TrajectoryConf,
    "score": _config.ScoreConf,
}


def _default(f: dataclasses.Field):
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return value.value if isinstance(value, enum.Enum) else value


@pytest.mark.parametrize("name", list(SECTIONS))
def test_section_fields_are_tool_kwargs_with_their_defaults(name):
    cls = SECTIONS[name]
    params = {}
    for tool, names in cls.tools.items():
        sig = inspect.signature(tool).parameters
        params.update({n: sig[n] for n in names})
    for f in dataclasses.fields(cls):
        if f.name not in params:  # the workflow's own fields (files to read)
            continue
        default = params[f.name].default
        want = list(default) if isinstance(default, tuple) else default
        assert _default(f) == want, (name, f.name)
    own = [f.name for f in dataclasses.fields(cls) if f.name not in params]
    own_fields = {
        "annotate": ["labels_file", "labels_cell_column", "labels_column", "label_map_file"],
        "qc": ["enabled", "keep_flagged"],
    }
    assert own == own_fields.get(name, [])


def test_yaml_repeats_no_default():
    """A group option's YAML sets only what differs from the tool's default."""
    for name, cls in SECTIONS.items():
        defaults = {f.name: _default(f) for f in dataclasses.fields(cls)}
        for path in sorted((CONFIGS / name).glob("*.yaml")) if (CONFIGS / name).is_dir() else []:
            values = {
                k: v for k, v in (yaml.safe_load(path.read_text()) or {}).items() if k != "defaults"
            }
            same = {k: v for k, v in values.items() if k in defaults and defaults[k] == v}
            assert not same, f"{path.name} repeats the default of {sorted(same)}"


def test_no_hand_written_kwargs_dicts():
    """Stages pass a section with tool_kwargs, never ``{"n_neighbors": c.n_neighbors, ...}``."""
    fields = {f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)}
    nodes = [
        (path.name, node)
        for path in sorted(Path(_stages.__file__).parent.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
    ]
    for name, node in nodes:
        pairs = []
        if isinstance(node, ast.Dict):
            pairs = [
                (k.value, v)
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            ]
        elif isinstance(node, ast.Call):
            pairs = [(kw.arg, kw.value) for kw in node.keywords if kw.arg]
        copied = [
            k for k, v in pairs if k in fields and isinstance(v, ast.Attribute) and v.attr == k
        ]
        assert not copied, f"{name} line {node.lineno} copies section fields: {copied}"


def test_literal_choices_fail_at_compose_and_come_back_as_values():
    from omegaconf import OmegaConf

    def tool(adata, *, method: str = "a", how: Literal[x, y] = "x", n: tuple = (1, 2)):  # noqa: F821, ARG001
        return None

    tool.__annotations__["how"] = __import__("typing").Literal["x", "y"]
    cls = tool_section("T", "test", {tool: ["how", "n"]})
    cfg = OmegaConf.structured(cls)
    with pytest.raises(Exception):  # noqa: B017, PT011 - OmegaConf's validation error
        cfg.how = "z"
    cfg.how = "y"
    assert tool_kwargs(cfg, tool) == {"how": "y", "n": (1, 2)}
    with pytest.raises(TypeError, match="no keyword argument 'nope'"):
        tool_section("T", "test", {tool: ["nope"]})


def test_composed_config_pickles():
    """Submitit sends the config to its jobs pickled: sections and choice enums must pickle."""
    import pickle

    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3", job_name="t"):
        cfg = compose(config_name="config", overrides=["integrate=sysvi"])
    assert pickle.loads(pickle.dumps(cfg)) == cfg
