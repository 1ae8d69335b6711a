"""The ``callsense`` command. Each command group lives in its own module with a ``register(app)``.

Exit codes (the tree in :mod:`callsense.errors`): 0 ok, 1 internal, 2 usage (bad option, missing
argument, bad rule file), 3 bad input (recording, path, output folder), 4 model, 5 store, 6 a missing
optional extra. Every :class:`~callsense.errors.CallsenseError` and every usage error becomes one line
on stderr (usage errors also print the usage); ``--debug`` shows the traceback instead.

Console logs: callsense's own logger at INFO (WARNING with ``--quiet``); the logs of libraries
(alembic, modelscope, httpx, ...) only with ``-v/--verbose`` or ``--debug``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from typing import Any

import typer

from callsense._version import __version__
from callsense.cli.compat import click_exceptions, readable_help
from callsense.errors import CallsenseError

COMMAND_MODULES = ("analyze", "models", "emotion", "rules", "store", "alerts", "serve", "agents", "live", "adapt", "clip",
                   "clusters")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

app = typer.Typer(
    name="callsense",
    help="Analyse customer-service call recordings: who said what, in which language, with which emotion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state: dict[str, bool] = {"debug": False}


class OwnLogsOnly(logging.Filter):
    """Lets through callsense's records; a library's only when ``verbose``."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or record.name == "callsense" or record.name.startswith("callsense.")


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests and embedders swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(*, verbose: bool = False, quiet: bool = False, debug: bool = False) -> None:
    """One stderr handler on the root logger; levels and the library filter from the flags."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_callsense", False)), None)
    if handler is None:
        handler = StderrHandler()
        handler._callsense = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    for f in list(handler.filters):
        handler.removeFilter(f)
    handler.addFilter(OwnLogsOnly(verbose or debug))
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("callsense").setLevel(logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO))
    logging.captureWarnings(True)  # libraries' warnings.warn() become py.warnings records: filtered the same way
    # modelscope gives its logger a handler of its own at import, bypassing the filter above; it reads
    # this variable then (an explicit setting by the user wins)
    if not (verbose or debug):
        if "MODELSCOPE_LOG_LEVEL" not in os.environ:
            os.environ["MODELSCOPE_LOG_LEVEL"] = str(logging.CRITICAL)
            _state["set_modelscope_level"] = True
        for name in ("modelscope", "modelscope_hub"):
            if name in logging.Logger.manager.loggerDict:  # imported already: quieten its own handler too
                logging.getLogger(name).setLevel(logging.CRITICAL)
    elif _state.pop("set_modelscope_level", False):  # a later -v run in the same process (tests, embedders)
        os.environ.pop("MODELSCOPE_LOG_LEVEL", None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"callsense {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and all debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show the logs of libraries (alembic, hubs, "
                                                                 "httpx)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool | None = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    _state["debug"] = debug
    setup_logging(verbose=verbose, quiet=quiet, debug=debug)


for _name in COMMAND_MODULES:
    importlib.import_module(f"callsense.cli.{_name}").register(app)


def debug_enabled() -> bool:
    return _state["debug"] or "--debug" in sys.argv


def report_error(err: CallsenseError | str) -> None:
    """``error: <one line>`` on stderr."""
    from rich.console import Console
    from rich.markup import escape

    # escape: hints like "pip install 'callsense[torch]'" must not be read as Rich markup tags
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(str(err))}", markup=True,
                                                soft_wrap=True)


def _usage_error(err: BaseException) -> None:
    """The usage of the command concerned, then one ``error:`` line."""
    ctx = getattr(err, "ctx", None)
    hint = ""
    if ctx is not None:
        with contextlib.suppress(Exception):
            sys.stderr.write(ctx.get_usage().strip() + "\n")
            hint = f" (see `{ctx.command_path} --help`)"
    message = err.format_message() if hasattr(err, "format_message") else str(err)
    report_error(f"{message.strip()}{hint}")


def _help_to_stderr() -> None:
    with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(BaseException):
        app(args=["--help"], prog_name="callsense", standalone_mode=False)


def main(argv: list[str] | None = None) -> None:
    readable_help()
    exc = click_exceptions()
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # every Click release treats this differently: print the help, exit 2 (usage)
        _help_to_stderr()
        sys.exit(2)
    try:
        rc = _run(args, exc)
    finally:
        # Models load on background threads while the audio is decoded; an error raised meanwhile must not
        # leave one inside native code at interpreter shutdown, which aborts the process (exit 134 instead
        # of 2 or 3). Waiting here, before shutdown begins, lets the loads finish cleanly.
        analyzer = sys.modules.get("callsense.pipeline.analyzer")  # imported only by commands that analyse
        if analyzer is not None:
            analyzer.finish_loading()
    sys.exit(rc)


def _run(args: list[str], exc: Any) -> int:
    """The command's exit status: its own, or the documented one for each kind of error."""
    try:
        rc = app(args=args, prog_name="callsense", standalone_mode=False)  # typer.Exit(n) comes back as n
    except CallsenseError as err:
        if debug_enabled():
            raise
        report_error(err)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except exc.exit as err:
        return getattr(err, "exit_code", 0)
    except exc.no_args_is_help:
        return 2  # the group's help was printed already
    except exc.usage_error as err:
        _usage_error(err)
        return 2
    except exc.abort:
        return 130
    except exc.click_exception as err:
        report_error(err.format_message())
        return getattr(err, "exit_code", 1) or 1
    except BrokenPipeError:  # `callsense search --json | head`: the reader left; nothing to report
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141
    except OSError as err:
        # a path the user gave that cannot be written or read, met outside the places checked up front
        if debug_enabled():
            raise
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        report_error(f"{where}{err.strerror or err} (check the path and its permissions)")
        return 3
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    main()
