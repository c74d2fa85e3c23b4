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
from typer.core import TyperGroup


def _bare_flags(params):
    """Boolean flags (``--overwrite``, ``--dicom-seg``, ``--help``...) without a value placeholder in
    the help: typer's help printed ``--overwrite <bool>``, as if the flag took a value, and
    ``--dicom-seg true`` then failed. An explicit metavar of a flag is kept."""
    for p in params:
        if getattr(p, "is_flag", False) and not getattr(p, "count", False) and p.metavar is None:
            p.metavar = ""
    return params


class _Group(TyperGroup):
    """The ``discmeasure`` group: its options' and every command's boolean flags shown bare in
    ``--help`` (:func:`_bare_flags`)."""

    def get_params(self, ctx):
        return _bare_flags(super().get_params(ctx))

    def get_command(self, ctx, cmd_name):
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            _bare_flags(cmd.get_params(ctx))
        return cmd


app = typer.Typer(
    name="discmeasure",
    help="Measure lumbar intervertebral discs on MRI: posterior bulge (mm) and quantitative T2 (ms), per level.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
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


def _click_exception_types() -> tuple[type, ...]:
    """click's ``ClickException`` classes: typer >= 0.2x bundles its own copy of click
    (``typer._click``), older typer uses click itself."""
    types = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            types.append(importlib.import_module(name).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def usage_error_line(exc: BaseException) -> str:
    """The one ``error:`` line for a command-line usage error (missing or unknown option, a value
    that is not a number...): click's message, and where to look for the command's options."""
    msg = " ".join(str(exc.format_message()).split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = f" (see {ctx.command_path} --help)" if ctx is not None and getattr(ctx, "command_path", None) else ""
    return f"error: {msg}{where}"


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
    click_errors = _click_exception_types()
    try:
        # not standalone: click's usage errors come here (standalone mode printed them as a
        # multi-line panel); --help, --version and typer.Exit return their exit code.
        rv = app(args=argv, standalone_mode=False, prog_name="discmeasure")
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except click_errors as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare ``discmeasure``: the help, as before
            if exc.format_message().strip():  # (rich help is printed as it is made, the plain one is returned)
                print(exc.format_message())
        else:
            print(usage_error_line(exc), file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_INPUT))
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 -- the CLI never shows a raw traceback
        if type(exc).__name__ == "Abort":  # click's Abort (end of input at a prompt), raised when not standalone
            print("error: aborted", file=sys.stderr)
            return 1
        if os.environ.get("DISCMEASURE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(error_line(exc), file=sys.stderr)
        from ..errors import DiscmeasureError

        return EXIT_INPUT if isinstance(exc, (DiscmeasureError, OSError)) else EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
