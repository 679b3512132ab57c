"""Typed option dataclasses: every config value is checked against its field's type, by name, before any work.

``TrainConfig``, ``ToyConfig``, ``ImageConfig`` and ``UNetConfig`` call :func:`check_fields` first thing in their
``__post_init__``, so a value from a JSON config file, from ``--set section.option=value`` or from Python gets the
same treatment:

* booleans accept ``true``/``false`` (JSON literals, Python bools, or those two words as text) and nothing else, so
  ``"false"`` can never turn something on and ``no`` is an error;
* integers accept integers (and whole floats such as ``1e4``), floats accept any number; neither accepts text or
  booleans;
* a wrong type is reported as ``section.option: expected a float, got 'abc'`` (a ``TypeError``).

Nothing here imports the rest of the package.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping, Union

_BOOL_WORDS = {"true": True, "false": False}


def parse_bool(value: Any, name: str) -> bool:
    """``True``/``False``, or the words ``true``/``false`` (any case); anything else is a ``TypeError``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise TypeError(f"{name}: expected true or false, got {value!r}")


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "null"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
        return f"a list of {len(args)} numbers" if all(a in (int, float) for a in args) else f"a list of {len(args)}"
    if origin is dict or hint is dict:
        return "a mapping of options"
    return {bool: "true or false", int: "an integer", float: "a float", str: "a string"}.get(hint, str(hint))


def coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` checked against the type ``hint`` (and converted: ``"false"`` -> False, 3 -> 3.0, 1e4 -> 10000)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return coerce(value, option, name)
            except TypeError:
                continue
        raise TypeError(f"{name}: expected {_describe(hint)}, got {value!r}")
    if hint is bool:
        return parse_bool(value, name)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"{name}: expected a float, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"{name}: expected a string, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name}: expected {_describe(hint)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise TypeError(f"{name}: expected {_describe(hint)}, got {value!r}")
        return tuple(coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise TypeError(f"{name}: expected {_describe(hint)}, got {value!r}")
        return dict(value)
    return value


def check_fields(obj: Any, section: str) -> None:
    """Check (and normalise) every field of the dataclass instance ``obj`` against its annotated type."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, coerce(getattr(obj, f.name), hints[f.name], f"{section}.{f.name}"))


def from_dict(cls: type, values: Mapping[str, Any], what: str) -> Any:
    """Build the dataclass ``cls`` from ``values``, naming unknown keys and the accepted ones (a ``ValueError``)."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{what}s must be a mapping of option names to values, got {values!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {what}(s) {sorted(unknown)}; accepted: {sorted(known)}")
    return cls(**values)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and tuples stay values)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out
