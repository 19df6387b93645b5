"""Config sections made from the tools' signatures: every default lives in the tool only.

A section such as ``annotate`` is the keyword arguments of :func:`mkcell.tl.annotate` that the
workflow exposes. :func:`tool_section` builds its dataclass (the Hydra schema, so a misspelt
key or a wrong type fails at start) with the defaults and types read from the signature, and
:func:`tool_kwargs` hands a composed section back to the tool. Adding an option is one edit:
its name in the section's list. ``Literal`` choices become an Enum, so a value outside them
fails at start too.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

_PLAIN = (bool, int, float, str)


def _choices(name: str, values: Sequence[str], module: str) -> type[enum.Enum]:
    """An Enum of the choices of a ``Literal`` parameter (member name = value).

    It is set on ``module`` under ``name`` so that configs holding it pickle (submitit jobs).
    """
    kind = enum.StrEnum(name, {str(v): str(v) for v in values}, module=module, qualname=name)
    setattr(sys.modules[module], name, kind)
    return kind


def _config_type(name: str, hint: Any, module: str) -> Any:
    """The type OmegaConf can check for a tool annotation (``Any`` when it cannot)."""
    origin = typing.get_origin(hint)
    if hint in _PLAIN:
        return hint
    if origin is typing.Literal:
        return _choices(name, typing.get_args(hint), module)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _config_type(name, args[0], module) if len(args) == 1 else Any
        return inner | None if inner is not Any else Any
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return list[args[0]] if args and args[0] in _PLAIN else list[Any]
    return Any


def _default(value: Any) -> Any:
    """The dataclass default of a signature default (mutable ones through a factory)."""
    if isinstance(value, tuple | list):
        items = list(value)
        return dataclasses.field(default_factory=lambda: list(items))
    if isinstance(value, Mapping):
        items = dict(value)
        return dataclasses.field(default_factory=lambda: dict(items))
    return dataclasses.field(default=value)


def tool_fields(
    tool: Callable[..., Any], names: Sequence[str], *, prefix: str = "", module: str = __name__
) -> list[tuple[str, Any, Any]]:
    """Dataclass fields ``(name, type, field)`` of the keyword arguments ``names`` of ``tool``.

    Choice enums are named ``<prefix><Name>Choice`` and set on ``module``.
    """
    params = inspect.signature(tool).parameters
    hints = typing.get_type_hints(tool)
    out = []
    for name in names:
        if name not in params or params[name].default is inspect.Parameter.empty:
            msg = f"{tool.__qualname__} has no keyword argument {name!r} with a default"
            raise TypeError(msg)
        default = params[name].default
        choice = f"{prefix}{name.title().replace('_', '')}Choice"
        kind = _config_type(choice, hints.get(name, Any), module)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            default = kind(default)
        out.append((name, kind, _default(default)))
    return out


def tool_section(
    name: str,
    doc: str,
    tools: Mapping[Callable[..., Any], Sequence[str]],
    extra: Sequence[tuple[str, Any, Any]] = (),
    *,
    module: str = __name__,
) -> type:
    """The dataclass of a config section: the named keyword arguments of each tool, then ``extra``.

    ``extra`` holds the workflow's own fields (files to read, not tool arguments), as
    ``(name, type, dataclasses.field(...))``. ``module`` is where the class is bound under
    ``name`` (the caller's ``__name__``), so that configs holding it pickle.
    """
    prefix = name.removesuffix("Conf")
    fields = [
        f
        for tool, names in tools.items()
        for f in tool_fields(tool, names, prefix=prefix, module=module)
    ]
    cls = dataclasses.make_dataclass(name, [*fields, *extra])
    cls.__module__ = module
    cls.__doc__ = doc
    cls.tools = dict(tools)  # type: ignore[attr-defined]
    return cls


def tool_kwargs(section: DictConfig, tool: Callable[..., Any]) -> dict[str, Any]:
    """The values of ``section`` that are keyword arguments of ``tool``, as plain Python.

    Enum choices become their values and lists become tuples where the tool's default is a
    tuple.
    """
    params = inspect.signature(tool).parameters
    out = {}
    for key in section:
        if key not in params:
            continue
        value = section[key]
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(params[key].default, tuple) and isinstance(value, list):
            value = tuple(value)
        out[str(key)] = value
    return out
