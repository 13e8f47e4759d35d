"""Command-line options generated from dataclasses and function signatures.

The CLI does not list `TrainConfig`'s fields or a problem's arguments by hand: every
field of a dataclass becomes `--field-name` (help from the class docstring's Args
section, type from its annotation, choices where the library has them), and every
parameter of a problem factory becomes `--problem.NAME` (type from its default).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

from gdlab._checks import InputError

_SCALARS = (bool, int, float, str)


def docstring_args(doc: str | None) -> dict[str, str]:
    """{name: description} from a Google-style docstring's Args section."""
    found, current, inside = {}, None, False
    for line in (doc or "").splitlines():
        if line.strip() in ("Args:", "Attributes:"):
            inside = True
            continue
        if inside and line.strip() and not line.startswith("      ") and line.strip()[-1] == ":":
            break  # the next section (Returns:, Example:)
        match = re.match(r"^\s{2,6}([a-z_]+(?:, [a-z_]+)*): (.*)", line) if inside else None
        if match:
            current = match.group(1).split(", ")
            for name in current:
                found[name] = match.group(2).strip()
        elif inside and current and line.strip():
            for name in current:
                found[name] += " " + line.strip()
    return found


def scalar_type(annotation: Any) -> type | None:
    """The scalar type a CLI value of this annotation parses to (None: not a CLI type)."""
    if annotation in _SCALARS:
        return annotation
    for arg in typing.get_args(annotation):
        if arg in (int, float, str):
            return arg
    return None


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *,
                            choices: Mapping[str, tuple] | None = None,
                            aliases: Mapping[str, str] | None = None,
                            skip: tuple[str, ...] = (),
                            defaults: Mapping[str, Any] | None = None) -> None:
    """`--field-name` for every scalar field of dataclass `cls` (None: not given; the help
    shows the field's default, or the caller's from `defaults`)."""
    hints = typing.get_type_hints(cls)
    helps = docstring_args(cls.__doc__)
    choices, aliases = choices or {}, aliases or {}
    for field in dataclasses.fields(cls):
        kind = scalar_type(hints[field.name])
        if field.name in skip or kind is None:
            continue
        flags = [f"--{field.name.replace('_', '-')}"]
        if field.name in aliases:
            flags.append(aliases[field.name])
        default = field.default if field.default is not dataclasses.MISSING else None
        default = (defaults or {}).get(field.name, default)
        parser.add_argument(*flags, dest=field.name, type=kind, default=None,
                            choices=choices.get(field.name), metavar=kind.__name__.upper()
                            if field.name not in choices else None,
                            help=f"{helps.get(field.name, '')} (default {default!r})")


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` that were given on the command line (not None)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def parse_like(text: str, like: Any, name: str) -> Any:
    """`text` parsed as a value of the same kind as `like` (bool, int, float, str, tuple)."""
    try:
        if isinstance(like, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(like, tuple | list):
            inner = like[0] if like else int
            return tuple(parse_like(x, inner, name) for x in text.split(",") if x.strip())
        if like is None:
            return _guess(text)
        return type(like)(text)
    except ValueError:
        raise InputError(f"{name}: cannot read {text!r} as {type(like).__name__} "
                         f"(like the default {like!r})") from None


def _guess(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None if text.lower() == "none" else text


def signature_defaults(fn: Callable) -> dict[str, Any]:
    """{parameter: default} of a factory (parameters without defaults map to None)."""
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def add_signature_arguments(parser: argparse.ArgumentParser, fn: Callable, prefix: str) -> None:
    """`--PREFIX.NAME VALUE` for every parameter of `fn` (parsed like its default)."""
    helps = docstring_args(fn.__doc__)
    group = parser.add_argument_group(f"{prefix} arguments", f"the arguments of {fn.__name__}")
    for name, default in signature_defaults(fn).items():
        group.add_argument(f"--{prefix}.{name}", dest=f"{prefix}.{name}", default=None,
                           metavar="VALUE",
                           help=f"{helps.get(name, '')} (default {default!r})")


def signature_kwargs(args: argparse.Namespace, fn: Callable, prefix: str) -> dict[str, Any]:
    """The `--PREFIX.NAME` values given, parsed like the parameters' defaults."""
    values = vars(args)
    return {name: parse_like(values[f"{prefix}.{name}"], default, f"--{prefix}.{name}")
            for name, default in signature_defaults(fn).items()
            if values.get(f"{prefix}.{name}") is not None}


def import_factory(spec: str) -> Callable:
    """The function named by "package.module:function"."""
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise InputError(f"cannot load problem factory {spec!r} ({err}); give "
                         "'package.module:function' importable from here") from None
    if not callable(factory):
        raise InputError(f"{spec!r} is not callable; give a function returning a gdlab.Problem")
    return factory
