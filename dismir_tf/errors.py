"""User-facing errors.

Every problem with what a user supplied (a data file, a flag) is raised as a
:class:`UserInputError`.  The entry points catch it, print its one-line
message and exit with status 2, so nobody sees a traceback from deep inside
TensorFlow for a typo in their data.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2


class UserInputError(Exception):
    """Bad input from the user: a file, a line of a file, or a flag."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.detail = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class DataFormatError(UserInputError):
    """A data file does not have the format it was declared to have."""


class ConfigError(UserInputError):
    """Contradictory or out-of-range configuration values."""


class UnreadableConfigError(ConfigError):
    """A stored configuration (config.json, a study's settings) whose
    structure this version cannot read: an unknown field, a section that is
    not an object."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""
