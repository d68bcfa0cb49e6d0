"""User-facing errors. The CLI prints their message and exits with ``exit_code``."""

from __future__ import annotations


class MarketJepaError(Exception):
    """An error a user can act on; the message says what is wrong and what to do."""

    exit_code = 1


class DataValidationError(MarketJepaError):
    """Bad input data. The message names the file, row/time and problem."""

    exit_code = 2

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        parts = []
        if file:
            parts.append(str(file))
        if where:
            parts.append(str(where))
        prefix = ": ".join(parts)
        msg = f"{prefix}: {problem}" if prefix else problem
        if hint:
            msg += f" — {hint}"
        super().__init__(msg)
        self.file = file
        self.where = where
        self.problem = problem
        self.hint = hint


class StageInputMissing(MarketJepaError):
    """A pipeline stage was run before the stage that produces its inputs."""

    exit_code = 2


class TrainingDiverged(MarketJepaError):
    """NaN/inf loss or gradient; the last good checkpoint is kept."""

    exit_code = 3


class RunDirBusy(MarketJepaError):
    """Another process holds the run directory's lock."""

    exit_code = 2


# errno values that mean "this path cannot be written" rather than a bug.
STORAGE_ERRNOS = {"EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR", "EEXIST", "EISDIR"}


class StorageError(MarketJepaError):
    """A path cannot be written: no permission, read-only, disk full, not a folder."""

    exit_code = 2

    @classmethod
    def from_os_error(cls, exc: OSError, path: object = None, verb: str = "write") -> StorageError:
        """``cannot <verb> <path>: <reason> — <hint>``; the error's own file name wins."""
        import errno
        import os

        where = exc.filename if exc.filename is not None else path
        name = errno.errorcode.get(exc.errno or 0, "")
        reason = exc.strerror or os.strerror(exc.errno or 0)
        hint = {
            "ENOSPC": "free disk space or point the output elsewhere",
            "EDQUOT": "free disk space or point the output elsewhere",
            "EACCES": "fix its permissions or choose another location",
            "EPERM": "fix its permissions or choose another location",
            "EROFS": "choose a writable location",
        }.get(name, "choose another location")
        return cls(f"cannot {verb} {where}: {reason} — {hint}")


def is_storage_error(exc: BaseException) -> bool:
    """An OSError that says a path is unwritable (see ``STORAGE_ERRNOS``)."""
    import errno

    return isinstance(exc, OSError) and errno.errorcode.get(exc.errno or 0) in STORAGE_ERRNOS
