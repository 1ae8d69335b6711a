"""The ``callsense`` command. Each command group lives in its own module with a ``register(app)``.

Every :class:`~callsense.errors.CallsenseError` becomes one line on stderr and its exit code
(2 usage, 3 bad input, 4 missing model, 5 store); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from callsense.errors import CallsenseError

COMMAND_MODULES = ("analyze", "models", "emotion", "rules", "store", "serve", "live")

app = typer.Typer(
    name="callsense",
    help="Analyse customer-service call recordings: who said what, in which language, with which emotion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "modelscope", "modelscope_hub", "huggingface_hub", "filelock"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)


for _name in COMMAND_MODULES:
    importlib.import_module(f"callsense.cli.{_name}").register(app)


def debug_enabled() -> bool:
    return _state["debug"] or "--debug" in sys.argv


def report_error(err: CallsenseError) -> None:
    from rich.console import Console
    from rich.markup import escape

    # escape: hints like "pip install 'callsense[torch]'" must not be read as Rich markup tags
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(str(err))}", markup=True,
                                                soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    try:
        rc = app(args=argv, standalone_mode=False)  # a typer.Exit(n) inside a command comes back as n
    except CallsenseError as err:
        if debug_enabled():
            raise
        report_error(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # click usage errors and friends
        import click

        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(2 if isinstance(err, click.UsageError) else err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
