"""What differs between the Typer/Click releases callsense supports (pinned in pyproject.toml).

Typer up to 0.2x builds on the ``click`` package; newer releases carry their own copy as
``typer._click``. The exception classes therefore live in one module or the other, and an
``except click.UsageError`` written for one never matches the other. :func:`click_exceptions`
returns the classes of every copy that is installed, so the CLI's error handler matches either.

The vendoring releases also print help placeholders such as ``<bool>``, ``<list[Path]>`` and
``{files}...``. :func:`readable_help` restores the conventional ``FILE...``, ``[TEXT]`` and ``DIR``
(an option's ``metavar`` wins, flags show none). Both are no-ops where the attributes do not exist.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# Typer's type labels (``<int>``) -> the placeholders Click has always printed
_TYPE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "Path": "PATH", "bool": "BOOLEAN",
               "file": "FILE", "directory": "DIR", "datetime": "DATETIME"}


@dataclass(frozen=True)
class ClickExceptions:
    """Exception classes of every installed Click copy, as tuples for ``isinstance``."""

    click_exception: tuple[type[BaseException], ...]
    usage_error: tuple[type[BaseException], ...]
    no_args_is_help: tuple[type[BaseException], ...]
    exit: tuple[type[BaseException], ...]
    abort: tuple[type[BaseException], ...]


def _modules() -> list[ModuleType]:
    found = []
    for name in ("typer._click.exceptions", "click.exceptions", "typer.exceptions"):
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            continue
    return found


def click_exceptions() -> ClickExceptions:
    mods = _modules()

    def collect(attr: str) -> tuple[type[BaseException], ...]:
        return tuple(dict.fromkeys(getattr(m, attr) for m in mods if isinstance(getattr(m, attr, None), type)))

    return ClickExceptions(click_exception=collect("ClickException"), usage_error=collect("UsageError"),
                           no_args_is_help=collect("NoArgsIsHelpError"), exit=collect("Exit"),
                           abort=collect("Abort"))


def _argument_name(param: Any) -> str:
    name = param.metavar or (param.name or "arg").upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


def _argument_usage(param: Any) -> str:
    name = _argument_name(param)
    return name if param.required else f"[{name}]"


def _option_placeholder(param: Any, ctx: Any) -> str | None:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.metavar is not None:
        return param.metavar
    label = param.display_type(ctx).strip("<>")
    repeat = label.startswith("list[")
    if repeat:
        label = label[len("list["):-1]
    if "|" not in label:
        label = _TYPE_WORDS.get(label, label.upper())
    return label


def readable_help() -> None:
    """Patch the vendoring Typer's placeholder rendering (idempotent; no-op on Click-based Typer)."""
    try:
        core = importlib.import_module("typer.core")
    except ImportError:
        return
    if getattr(core, "_click", None) is None:
        return  # Click-based Typer: Click's own conventional placeholders are printed
    arg_cls, opt_cls = getattr(core, "TyperArgument", None), getattr(core, "TyperOption", None)
    if arg_cls is None or getattr(arg_cls, "_callsense_help", False):
        return
    if isinstance(getattr(arg_cls, "display_name_raw", None), property):
        arg_cls.display_name_raw = property(lambda self: self.metavar or (self.name or "arg").upper())
    if hasattr(arg_cls, "_usage_display_name"):
        arg_cls._usage_display_name = _argument_usage
    if hasattr(arg_cls, "_rich_display_name"):
        arg_cls._rich_display_name = _argument_name
    if hasattr(arg_cls, "display_type_rich"):
        arg_cls.display_type_rich = lambda self, *a, **k: None  # the name column already says FILE...
    if hasattr(arg_cls, "get_error_hint"):
        arg_cls.get_error_hint = lambda self, *a, **k: f"'{_argument_name(self)}'"
    if opt_cls is not None and hasattr(opt_cls, "display_type_rich") and hasattr(opt_cls, "display_type"):
        opt_cls.display_type_rich = _option_placeholder
    arg_cls._callsense_help = True
