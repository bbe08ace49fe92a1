"""One writer per output: an exclusive ``flock`` on a lock file beside it (:class:`OutputLock`)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from maskbench.io.safety import sibling


def lock_path(out_dir: Path) -> Path:
    """The lock file of ``out_dir`` (beside it, so it guards the output and its staging folder)."""
    return sibling(out_dir, ".maskbench-lock")


class OutputLockedError(RuntimeError):
    """Another live process is writing the same output."""


class OutputLock:
    """An exclusive lock on one output location, held for the whole write.

    ``flock`` on ``.<name>.maskbench-lock`` beside the output: the kernel releases it when the
    process dies, so a killed writer never leaves a stale lock and a reused pid blocks nothing. The
    file holds the owner's pid (for the message) and is removed on release; a process that locked a
    file another one removed meanwhile notices (different inode) and tries again.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = lock_path(out_dir)
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise OutputLockedError(f"{self.out_dir} is being written by another maskbench process"
                                        f"{self._owner()} (lock {self.path}); wait for it to finish") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self._fd = fd
                return self
            os.close(fd)  # the file was removed by its last owner between our open and flock
        raise OutputLockedError(f"could not lock {self.path}")

    def _owner(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            return ""
        return f" (pid {pid})" if pid.isdigit() else ""

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            os.close(self._fd)  # releases the flock
            self._fd = None
