"""The ``discmeasure`` command line (typer + rich).

Every command lives in its own module and registers itself on :data:`app`.
:func:`main` turns any :class:`~discmeasure.errors.DiscmeasureError` (and the
other failures bad input can cause) into one last line starting with
``error:`` on stderr and a non-zero exit code, without a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

app = typer.Typer(
    name="discmeasure",
    help="Measure lumbar intervertebral discs on MRI: posterior bulge (mm) and quantitative T2 (ms), per level.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# command modules; each defines its commands with @app.command()
_COMMAND_MODULES = ["info", "demo", "segment", "t2map", "measure", "pair", "batch"]

#: exit code for errors the user can fix (bad input)
EXIT_INPUT = 2
#: exit code for unexpected internal failures
EXIT_INTERNAL = 3


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # command not built yet
            if exc.name != f"{__name__}.{name}":
                raise


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
):
    if version:
        from .. import __version__

        typer.echo(f"discmeasure {__version__}")
        raise typer.Exit(0)


def error_line(exc: BaseException) -> str:
    """The one-line message shown for an exception."""
    from ..errors import DiscmeasureError

    if isinstance(exc, DiscmeasureError):
        return f"error: {exc}"
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return f"error: {exc.filename or ''}: {exc.strerror or exc} (check the path and permissions)"
    if isinstance(exc, MemoryError):
        return "error: out of memory (process fewer or smaller cases at a time)"
    return f"error: internal error {type(exc).__name__}: {exc} (please report this with the command you ran)"


def _one_line_warnings() -> None:
    """Show each distinct warning once, on one ``warning:`` line (libraries' multi-line warnings,
    repeated for every DICOM file, buried the one ``error:`` line)."""
    import re
    import warnings

    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        # pydicom quotes the offending header value (a UID, a name...): never echo header values
        text = re.sub(r"(Invalid value for VR \w+): .*", r"\1 in a DICOM header (value not shown; read anyway)", text)
        if text in seen:
            return
        seen.add(text)
        print(f"warning: {text[:300]}", file=sys.stderr)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the typer app; bad input ends in one ``error:`` line."""
    _register()
    _one_line_warnings()
    try:
        # standalone mode: typer/click handle --help, usage errors and exit codes;
        # any other exception propagates to here.
        app(args=argv, standalone_mode=True, prog_name="discmeasure")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 -- the CLI never shows a raw traceback
        if os.environ.get("DISCMEASURE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(error_line(exc), file=sys.stderr)
        from ..errors import DiscmeasureError

        return EXIT_INPUT if isinstance(exc, (DiscmeasureError, OSError)) else EXIT_INTERNAL
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
