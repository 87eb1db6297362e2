"""The kit's own error type: one line that names the file, the row and the field."""

from __future__ import annotations


class ReproError(Exception):
    """A user-facing error. The CLI prints it as one line and exits non-zero."""


class DataError(ReproError):
    """A data source that does not match its published schema."""

    def __init__(self, file: str, message: str, row: int | str | None = None, field: str | None = None):
        self.file, self.row, self.field, self.detail = str(file), row, field, message
        where = self.file
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


class ConfigError(ReproError):
    """A profile or override that names an unknown key or has a wrong type."""
