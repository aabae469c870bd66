"""Shared test helpers and the one rule for missing judges.

A test may skip when an external judge (QEMU, OVMF, mtools, binutils...) or a real model is
absent on a developer's machine, but under CI (CI=true) that is a failure, not a skip:
`require()` is the single place that decides.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LLM_UEFI_SHARED", REPO.parent / "shared"))
MODELS = Path(os.environ.get("LLM_UEFI_MODELS", SHARED / "models"))
REFERENCE = SHARED / "reference"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, what: str) -> None:
    """Skip (locally) or fail (under CI) when a judge, tool or data file is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required under CI but missing: {what}")
    pytest.skip(f"missing: {what}")


def require_tool(*names: str) -> None:
    for name in names:
        require(shutil.which(name) is not None, f"command {name!r} (apt-get install the judge)")


def model_file(name: str) -> Path:
    """A real model/tokenizer from ../shared/models (never committed here)."""
    path = MODELS / name
    require(path.is_file(), f"model file {path}")
    return path


@pytest.fixture
def models_dir() -> Path:
    require(MODELS.is_dir(), f"models directory {MODELS}")
    return MODELS


def inc_constants(path: Path, into: dict[str, int]) -> dict[str, int]:
    """The .equ constants of an .inc file added to `into` (values may use earlier ones;
    one that does not evaluate to a number is left out)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*\.equ\s+(\w+)\s*,\s*([^#]+)", line)
        if m:
            try:
                into[m.group(1)] = int(eval(m.group(2), {"__builtins__": {}}, dict(into)))
            except Exception:  # noqa: BLE001 - a constant the tests do not need
                pass
    return into


class Area:
    """A region of a test machine (alloc/write) whose end touches a guard page: data is
    placed at its end, so the asm cannot read or write past what it was given without
    faulting."""

    def __init__(self, machine, size: int):
        self.m, self.size = machine, size
        self.end = machine.alloc(size) + size

    def place(self, data: bytes = b"", size: int | None = None) -> int:
        size = len(data) if size is None else size
        assert len(data) <= size <= self.size, (len(data), size, self.size)
        address = self.end - size
        if data:
            self.m.write(address, data)
        return address
