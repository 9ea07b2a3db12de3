"""Advisory file locks: one writer per run folder and per cache entry, across the processes of one machine.

``fcntl.flock`` on a ``<entry>.lock`` file beside the entry.  The kernel drops a lock when its holder exits or is
killed, so a crashed job never leaves a stale lock and nothing has to guess whether a pid is still alive.  After
locking, the holder checks that the path still names the file it locked (same inode); if not, it locks again.
That makes it safe to delete a lock file *while holding it* (``ddfad-apps cache clear`` does, so lock files do
not pile up): a process that was waiting on the deleted file notices and locks the new one instead.

Two handles of one process on the same lock file exclude each other too (flock locks belong to open files, not
processes), so code must not take the same lock twice in a nested way.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self

LOCK_SUFFIX = ".lock"


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file guarding ``target`` (a file or folder): ``<target>.lock`` beside it."""
    target = Path(target)
    return target.with_name(target.name + LOCK_SUFFIX)


class LockTimeout(TimeoutError):
    """A lock was not obtained within the time asked for."""


class FileLock:
    """An exclusive (writer) or shared (user) lock on the file ``path``; a context manager.

    ``remove_on_release`` deletes the lock file when releasing (while still holding it), for locks whose file
    should not outlive the job, such as a checkpoint's.
    """

    def __init__(self, path: str | os.PathLike, shared: bool = False, remove_on_release: bool = False) -> None:
        self.path = Path(path)
        self.shared = shared
        self.remove_on_release = remove_on_release
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """Who holds the lock, as written by its exclusive holder (pid, host, since when), for wait messages."""
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def acquire(self, blocking: bool = True, timeout: float | None = None,
                on_wait: Callable[[str], None] | None = None) -> bool:
        """Take the lock; ``False`` when not ``blocking`` and it is held elsewhere.

        ``on_wait`` is called once with a message naming the lock file and its holder if we have to wait;
        ``timeout`` (seconds) raises :class:`LockTimeout` instead of waiting longer.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this FileLock")
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not blocking:
                        os.close(fd)
                        return False
                    if on_wait is not None and not told:
                        on_wait(f"waiting for {self.path} (held by {self.holder()})")
                        told = True
                    self._wait(fd, mode, deadline)
                if not self._still_names(fd):  # deleted or replaced while we waited: lock the current file
                    os.close(fd)
                    continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            if not self.shared:
                info = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                os.ftruncate(fd, 0)
                os.pwrite(fd, info.encode(), 0)
            return True

    def _wait(self, fd: int, mode: int, deadline: float | None) -> None:
        if deadline is None:
            fcntl.flock(fd, mode)
            return
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{self.path} is still held by {self.holder()}") from None
                time.sleep(0.05)

    def _still_names(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self.remove_on_release:
                self.path.unlink(missing_ok=True)
            elif not self.shared:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> Self:
        if not self.held:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # a lock object dropped without release() must not keep its descriptor open
        with suppress(OSError):
            self.release()


@contextmanager
def locked(target: str | os.PathLike, shared: bool = False, on_wait: Callable[[str], None] | None = None,
           timeout: float | None = None, remove_on_release: bool = False) -> Iterator[FileLock]:
    """Hold the lock of ``target`` (file ``<target>.lock``) for the ``with`` block."""
    lock = FileLock(lock_path(target), shared=shared, remove_on_release=remove_on_release)
    lock.acquire(timeout=timeout, on_wait=on_wait)
    try:
        yield lock
    finally:
        lock.release()


def is_locked(target: str | os.PathLike) -> bool:
    """Whether some process holds ``target``'s lock right now (creates no lock file)."""
    path = lock_path(target)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
