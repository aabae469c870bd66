"""The one error type peasm reports to users: a location and a problem, on one line."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """Where a statement came from: file, 1-based line, and the original text."""

    file: str
    line: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class PeasmError(Exception):
    """A user-facing error. str() is one line: `file:line: problem  [source text]`."""

    def __init__(self, message: str, origin: Origin | None = None):
        super().__init__(message)
        self.message = message
        self.origin = origin

    def __str__(self) -> str:
        if self.origin is None:
            return self.message
        text = " ".join(self.origin.text.split())
        suffix = f"  [{text}]" if text else ""
        return f"{self.origin}: {self.message}{suffix}"
