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
