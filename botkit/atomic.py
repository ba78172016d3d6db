"""Writing an output file atomically, or failing with one line that names it.

Every output botkit writes (samples, model files, corpora) is built in a temporary file beside its
final name and renamed over it once whole, so a full disk, a read-only folder, Ctrl-C or a kill
never leaves a half-written file where the old one was. This module is the one place that does it:

* a failure to write (missing folder, read-only folder, disk full, file too large) is one
  :class:`OutputError` naming the file, and the temporary file is removed;
* the temporary file's name holds the writer's host and process id
  (``.NAME.<host>.<pid>.<random>.tmp``), so a later write of the same output removes the ones
  left by killed writers (:func:`remove_stale_temps`) without touching a live writer's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

from botkit.errors import BotkitError

#: Temporary files named before they held the writer's pid (``tempfile``'s ``.NAME.xxxxxxxx.tmp``,
#: ``.NAME.tmp``, ``.tmp.NAME``) cannot tell a live writer from a dead one; they are removed only
#: once nothing has written to them for this long.
LEGACY_STALE_SECONDS = 3600


class OutputError(BotkitError):
    """An output file or folder cannot be written: its folder is missing or read-only, or the disk is full."""


def _host_tag() -> str:
    # A pid only means something on its own host (and pid namespace, which the host name of a
    # container tells apart): a writer elsewhere sharing the folder is never taken for a dead one.
    return hashlib.blake2b(socket.gethostname().encode("utf-8", "replace"), digest_size=3).hexdigest()


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` that says which process writes it."""
    return path.with_name(f".{path.name}.{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def remove_stale_temps(path: Path) -> int:
    """Remove the temporary files of ``path`` whose writer is gone; how many were removed.

    A file of this host names its writer's pid: it is stale when that process no longer exists.
    Older-style names, which name no process, are stale once untouched for an hour. Nothing that
    cannot be listed or removed stops the write that asked: that write will say what is wrong.
    """
    name, host = re.escape(path.name), _host_tag()
    ours = re.compile(rf"\.{name}\.([0-9a-f]{{6}})\.(\d+)\.[0-9a-f]+\.tmp")
    legacy = re.compile(rf"\.{name}(\.[A-Za-z0-9_]{{8}})?\.tmp|\.tmp\.{name}")
    removed = 0
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        match = ours.fullmatch(entry.name)
        try:
            if match:
                stale = match.group(1) == host and not _pid_alive(int(match.group(2)))
            elif legacy.fullmatch(entry.name):
                stale = now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_STALE_SECONDS
            else:
                continue
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def _reason(path: Path, exc: OSError) -> str:
    """What is wrong, in words: the folder itself when that is the trouble."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        for folder in (path.parent, *path.parent.parents):
            if folder.exists():
                if not folder.is_dir():
                    return f"{folder} is a file, not a folder"
                break
        return f"folder {path.parent} does not exist"
    return exc.strerror or type(exc).__name__


def cannot_write(path: Path, exc: OSError, what: str = "file", *, existed: bool | None = None) -> OutputError:
    """The one-line error for a failed write of ``path``: what, why, and that nothing was lost."""
    existed = path.exists() if existed is None else existed
    kept = f"the previous {what} is unchanged" if existed else "nothing written"
    return OutputError(f"{path}: cannot write {what} ({_reason(path, exc)}); {kept}")


def ensure_folder(folder: Path, what: str = "output folder") -> None:
    """Create ``folder`` (and its parents) or say in one line why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{folder}: cannot create the {what}: a file is in the way") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the {what} ({_reason(folder, exc)})") from None


@overload
def atomic_output(path: Path, *, binary: Literal[True], what: str = ..., keep_on_interrupt: bool = ...) -> contextlib.AbstractContextManager[IO[bytes]]: ...
@overload
def atomic_output(path: Path, *, binary: Literal[False] = ..., what: str = ..., keep_on_interrupt: bool = ...) -> contextlib.AbstractContextManager[IO[str]]: ...


def atomic_output(path: Path, *, binary: bool = False, what: str = "file", keep_on_interrupt: bool = False) -> contextlib.AbstractContextManager[IO[Any]]:
    """A handle to write ``path`` through: renamed over it when the block ends, removed on any error.

    An ``OSError`` in the block (the writes failing: disk full, file too large) or in creating,
    syncing or renaming the file becomes one :class:`OutputError` naming ``path``; any other error
    passes through unchanged, the old file kept and the temporary one removed all the same. With
    ``keep_on_interrupt``, Ctrl-C keeps what was written so far (every write being whole).
    """
    return _atomic_output(Path(path), binary, what, keep_on_interrupt)


@contextlib.contextmanager
def _atomic_output(path: Path, binary: bool, what: str, keep_on_interrupt: bool) -> Iterator[IO[Any]]:
    existed = path.exists()
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        # 0o666 less the umask, as a plain open() would give; O_EXCL: never write through a link.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise cannot_write(path, exc, what, existed=existed) from None
    handle: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
    try:
        try:
            yield handle
        except KeyboardInterrupt:
            if not keep_on_interrupt:
                raise
            _commit(handle, tmp, path)
            raise
        _commit(handle, tmp, path)
    except OSError as exc:
        raise cannot_write(path, exc, what, existed=existed) from None
    finally:
        # Closing flushes what is buffered; after a failed write (disk full) that fails again, and
        # the file is only being thrown away. After the rename there is nothing left to remove.
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _commit(handle: IO[Any], tmp: Path, path: Path) -> None:
    """Sync (a full disk may only say so here) and rename over ``path``, keeping its permissions."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    if path.exists():
        with contextlib.suppress(OSError):  # e.g. another owner's file: the umask's mode is fine
            os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def write_bytes(path: Path, data: bytes, what: str = "file") -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, binary=True, what=what) as handle:
        handle.write(data)
