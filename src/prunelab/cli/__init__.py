"""Command line: the only package that parses argv and prints; its commands are thin over `api`."""

from __future__ import annotations

import sqlite3
import sys
import warnings

import click

from .. import distributed
from ..errors import PrunelabError, PrunelabWarning
from ..experiment.failures import os_failure
from .commands import cli
from .out import answer_line

__all__ = ["answer_line", "cli", "main"]


_SHOW_WARNING = warnings.showwarning


def _show_warning(message, category, *args, **kwargs) -> None:
    """prunelab's own warnings on one line ('warning: ...'); others as Python shows them."""
    if issubclass(category, PrunelabWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _SHOW_WARNING(message, category, *args, **kwargs)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2; so do files the OS
    or SQLite would not write (a full disk, a read-only folder) that no writer named first."""
    warnings.showwarning = _show_warning
    try:
        distributed.init_from_env()
        cli.main(standalone_mode=False)
    except PrunelabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted; results stored so far are kept, the same command resumes", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # a mistyped option: one line naming it, not click's usage block
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (OSError, sqlite3.Error) as exc:
        click.echo(f"error: {os_failure(exc, action=None)}", err=True)
        sys.exit(2)
    finally:
        distributed.shutdown()
