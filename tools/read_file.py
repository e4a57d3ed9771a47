"""Read a text file, but only below one directory.

The model chooses the path, so the path is untrusted: ``../../etc/passwd``, ``/root/.ssh/id_rsa``
or a symlink inside the directory that points outside it must all be refused, and so must a
symlink that someone swaps in *while* the call runs. A check on the resolved path followed by
an open of the path has that race, so the file is opened the way ``openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS)`` would: from a handle on the root directory, one component at a time,
each opened with ``O_NOFOLLOW`` relative to the handle of its parent. Symlinks are not followed
at all, ``..`` may not climb above the root, and what is read is the file that was opened.
Directories are listed so the model can pick a file; binary files are refused; large files are
cut at ``max_bytes``.

The default ``read_file`` reads below ``$AGENTRT_FILES_ROOT``, or the current directory, looked
up at each call so that a runtime configured after import still gets the right root.
"""

from __future__ import annotations

import codecs
import errno
import os
import posixpath
import stat
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
    base = Path(os.path.abspath(root))
    if not path.strip():
        raise ValueError('empty path; give a file path, or "." to list the files directory')
    if "\x00" in path:
        raise ValueError(f"invalid path {path!r}: it contains a NUL character")
    parts = _components(base, path)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise ValueError(f"the files directory {base} does not exist") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                raise _refusal(path, parts[: i + 1], exc, _is_link(part, fd)) from None
            os.close(fd)
            fd = child
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            shown = "." if not parts else path
            raise ValueError(f"{shown!r} is a directory, not a file. {_listing(fd, parts)}")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path!r} is not a regular file (a device, socket or pipe)")
        data = os.read(fd, max_bytes) if max_bytes else b""
        while len(data) < min(max_bytes, info.st_size) and (more := os.read(fd, max_bytes - len(data))):
            data += more
    finally:
        os.close(fd)
    size = info.st_size
    truncated = size > len(data)
    text = _decode(data, final=not truncated)
    if text is None:
        raise ValueError(f"{path!r} is a binary file ({size} bytes), not text; it cannot be shown")
    if truncated:
        text += f"\n[truncated: showing the first {len(data)} of {size} bytes]"
    return text


def _components(base: Path, path: str) -> list[str]:
    """The path's names below ``base``, ``..`` folded lexically; refused if it leaves ``base``."""
    outside = PermissionError(f"{path!r} is outside the files directory; only files below it can be read")
    if os.path.isabs(path):
        relative = posixpath.relpath(posixpath.normpath(path), str(base))
    else:
        relative = posixpath.normpath(path)
    if relative == ".":
        return []
    if relative == ".." or relative.startswith("../") or os.path.isabs(relative):
        raise outside
    return [p for p in relative.split("/") if p not in ("", ".")]


def _refusal(path: str, walked: list[str], exc: OSError, link: bool) -> Exception:
    where = "/".join(walked)
    if exc.errno == errno.ENOENT:
        return ValueError(f'no such file: {path!r}. Pass "." (or a directory) to list the files that exist')
    if link or exc.errno == errno.ELOOP:
        return PermissionError(f"{where!r} is a symbolic link; read_file does not follow links (they could "
                               "lead outside the files directory)")
    if exc.errno == errno.ENOTDIR:
        return ValueError(f"{where!r} is not a directory")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionError(f"{where!r} cannot be read (permission denied)")
    return ValueError(f"cannot open {path!r}: {exc.strerror}")


def _is_link(name: str, dir_fd: int) -> bool:
    """For the message only (``O_DIRECTORY | O_NOFOLLOW`` on a link fails with ENOTDIR, not ELOOP)."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


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


def _listing(fd: int, parts: list[str]) -> str:
    with os.scandir(fd) as it:
        entries = sorted(((e.name, e.is_dir(follow_symlinks=False)) for e in it))
    prefix = "/".join(parts)
    names = [posixpath.join(prefix, n) + ("/" if d else "") for n, d in entries[:MAX_LISTED]]
    more = f" (and {len(entries) - MAX_LISTED} more)" if len(entries) > MAX_LISTED else ""
    if not names:
        return "It is empty."
    return "It contains: " + ", ".join(names) + more + ". Call read_file with one of these paths."


read_file = _make(_default_root, DEFAULT_MAX_BYTES)
