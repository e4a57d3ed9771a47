"""Read a text file, but only below one directory.

The model chooses the path, so the path is untrusted: ``../../etc/passwd``, ``/root/.ssh/id_rsa``
or a symlink inside the directory that points outside it must all be refused. The path is
therefore resolved (``..`` collapsed, symlinks followed) *before* the check, and the result has
to lie inside the resolved root. Directories are refused with a listing so the model can pick a
file; binary files are refused; large files are cut at ``max_bytes``.

The default ``read_file`` reads below ``$AGENTRT_FILES_ROOT``, or the current directory, looked
up at each call so that a runtime configured after import still gets the right root.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable
from pathlib import Path

from langchain_core.tools import BaseTool

from agentrt.tool import tool

DEFAULT_MAX_BYTES = 100_000
ROOT_ENV_VAR = "AGENTRT_FILES_ROOT"
MAX_LISTED = 50


def make_read_file(root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> BaseTool:
    """A ``read_file`` tool that reads text files below ``root``, at most ``max_bytes`` each."""
    return _make(lambda: Path(root), max_bytes)


def _default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV_VAR) or os.getcwd())


def _make(root: Callable[[], Path], max_bytes: int) -> BaseTool:
    @tool(timeout=10.0)
    def read_file(path: str) -> str:
        """Read a UTF-8 text file from the working files and return its contents.

        Paths are relative to the files directory; reading outside it is not allowed. Passing a
        directory (e.g. ".") lists its entries instead. Very long files are cut off.

        Args:
            path: The file's path relative to the files directory, e.g. "notes/todo.md".
        """
        return read_below(root(), path, max_bytes)

    return read_file


def read_below(root: Path, path: str, max_bytes: int) -> str:
    """The text of ``path`` (relative to ``root``, or absolute inside it), checked and capped."""
    base = root.resolve()
    if not base.is_dir():
        raise ValueError(f"the files directory {base} does not exist")
    if not path.strip():
        raise ValueError('empty path; give a file path, or "." to list the files directory')
    try:
        target = (base / path).resolve()  # an absolute path replaces base here, then gets checked
    except (OSError, ValueError) as exc:
        raise ValueError(f"invalid path {path!r}: {exc}") from None
    if not target.is_relative_to(base):
        raise PermissionError(f"{path!r} is outside the files directory; only files below {base} can be read")
    if target.is_dir():
        raise ValueError(f"{path!r} is a directory, not a file. {_listing(base, target)}")
    if not target.exists():
        raise ValueError(f'no such file: {path!r}. Pass "." (or a directory) to list the files that exist')
    if not target.is_file():
        raise ValueError(f"{path!r} is not a regular file (a device, socket or pipe)")

    size = target.stat().st_size
    with target.open("rb") as f:
        data = f.read(max_bytes)
    truncated = size > len(data)
    text = _decode(data, final=not truncated)
    if text is None:
        raise ValueError(f"{path!r} is a binary file ({size} bytes), not text; it cannot be shown")
    if truncated:
        text += f"\n[truncated: showing the first {len(data)} of {size} bytes]"
    return text


def _decode(data: bytes, final: bool) -> str | None:
    """UTF-8 text, with a few stray bytes replaced; ``None`` if it looks binary."""
    if b"\x00" in data[:8192]:
        return None
    try:
        # Not final when the file was cut: a character split at the cut is dropped, not an error.
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        return None if text.count("\ufffd") > len(text) / 10 else text


def _listing(base: Path, directory: Path) -> str:
    entries = sorted(directory.iterdir(), key=lambda p: p.name)
    names = [str(p.relative_to(base)) + ("/" if p.is_dir() else "") for p in entries[:MAX_LISTED]]
    more = f" (and {len(entries) - MAX_LISTED} more)" if len(entries) > MAX_LISTED else ""
    if not names:
        return "It is empty."
    return "It contains: " + ", ".join(names) + more + ". Call read_file with one of these paths."


read_file = _make(_default_root, DEFAULT_MAX_BYTES)
