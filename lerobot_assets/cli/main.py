"""The `lerobot-assets` entry point: runs the typer app and turns every error into one line.

A user sees `error: <what>` on stderr and exit code 1 (2 for usage errors, 130 for Ctrl-C); the
traceback only with `--debug` (anywhere on the command line) or LEROBOT_ASSETS_DEBUG=1. Commands raise
errors whose message names the file and the problem; this module only decides how they are shown.
"""

import errno
import os
import sys

import typer

from lerobot_assets.cli import app

DEBUG_FLAG = "--debug"
DEBUG_ENV = "LEROBOT_ASSETS_DEBUG"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def one_line(exc: BaseException) -> str:
    """The exception as one line: an OSError as `<file>: <reason>`, anything else its first line
    (the rest is in the --debug traceback)."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = "no space left on device" if exc.errno == errno.ENOSPC else exc.strerror
        where = exc.filename if exc.filename is not None else ""
        return f"{where}: {reason}" if where else reason
    text = str(exc).strip() or type(exc).__name__
    first, _, rest = text.partition("\n")
    return f"{first} (+{rest.count(chr(10)) + 1} more lines with {DEBUG_FLAG})" if rest else first


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get(DEBUG_ENV) == "1"
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        code = app(args=args, prog_name="lerobot-assets", standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this code, with no message
            typer.echo("error: interrupted", err=True)
    except typer.Exit as e:
        code = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("error: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except typer.TyperException as e:
        # Usage errors (exit 2) and the like: typer's own message, with the usage line and a hint.
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {e.format_message()}", err=True)
        code = e.exit_code
    except Exception as e:
        if debug:
            raise
        typer.echo(f"error: {one_line(e)}", err=True)
        code = EXIT_ERROR
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
