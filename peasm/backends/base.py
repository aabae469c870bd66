"""What an assembler backend is: statements at a base address in, bytes out."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class AsmError(Exception):
    """A backend's failure. `index` is the statement that failed when the backend knows it;
    `missing` lists symbols the unit uses but nobody defines."""

    def __init__(self, message: str, index: int | None = None, missing: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.index = index
        self.missing = missing or []


@dataclass
class Backend(ABC):
    """Turns one assembly unit (Intel syntax, one statement per line) placed at `base` into
    flat bytes. The unit is self-contained: every symbol it uses is defined in it."""

    name: str = field(default="", init=False)

    @abstractmethod
    def assemble(self, statements: list[str], base: int, *, lenient: bool = False) -> bytes:
        """Assemble, or raise AsmError. With `lenient`, undefined symbols are given a dummy
        value instead of failing, so that a prefix of a unit can be checked for syntax alone."""

    def available(self) -> tuple[bool, str]:
        """(usable here, why not)."""
        return True, ""
