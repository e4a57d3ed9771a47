"""What every ``agentrt`` command shares: where output goes, how a command fails, the progress bar.

Results go to standard output (so they can be piped); progress, summaries and errors go to
standard error. A failure is one red line, ``error: ...``, and exit code 2 (or the code given).
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def progress_bar(to: Console | None = None) -> Progress:
    """done/total, elapsed and remaining time, on standard error unless told otherwise."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=to or err)
