"""The fuzz runners' common part (tests/fuzz/harness.py says what each kind runs and what
judges it): a case's Outcome, guard-paged Areas with data flush against the upper guard page,
the one-line message check, and Runner (one Emu per kind, every call with an instruction
limit and a wall-clock timeout; a fault, a judge's failed check or a harness error becomes a
problem of the case)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from peasm.runners.emu import Emu, EmuFault

from tests.fuzz.mutate import Case

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app_asm"

#: per call: instructions, then wall-clock seconds (a loop that never ends hits one of them)
MAX_INSTRUCTIONS = 50_000_000
TIMEOUT_S = 30.0
U32 = 0xFFFF_FFFF


@dataclass
class Outcome:
    case: Case
    verdict: str = ""                 # "accepted" / "refused: ..." / "N lines reported"
    message: str = ""                 # the asm's line(s)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        head = f"{self.case.id}: {'ok' if self.ok else 'FAIL'} ({self.verdict})"
        lines = [head, f"  case: {self.case.describe()}"]
        if self.message:
            msg = self.message if len(self.message) <= 3000 else self.message[:3000] + " ..."
            lines.append("  asm said: " + msg.replace("\n", "\n            "))
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


class Area:
    """A guard-paged region allocated once; data is placed at its end (flush against the
    upper guard page)."""

    def __init__(self, emu: Emu, size: int):
        self.emu, self.size = emu, size
        self.end = emu.alloc(size, align=1) + size

    def place(self, data: bytes = b"", size: int | None = None) -> int:
        size = len(data) if size is None else size
        assert len(data) <= size <= self.size, (len(data), size, self.size)
        address = self.end - size
        if data:
            self.emu.write(address, data)
        return address


def line_problems(what: str, text: bytes) -> list[str]:
    """A message must be one non-empty line of valid UTF-8."""
    out = []
    if not text.strip():
        out.append(f"{what} is empty")
    if b"\n" in text or b"\r" in text:
        out.append(f"{what} has a line break: {text!r}")
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        out.append(f"{what} is not UTF-8: {text!r}")
    return out


class Runner:
    kind = ""

    def __init__(self, image):
        self.emu = Emu(image)

    def call(self, fn: str, *args: int) -> int:
        return self.emu.call(fn, *args, max_instructions=MAX_INSTRUCTIONS, timeout_s=TIMEOUT_S)

    def run_case(self, case: Case) -> Outcome:
        out = Outcome(case)
        t0 = time.perf_counter()
        try:
            self._run(case, out, Random(case.id + ":run"))
        except EmuFault as e:
            out.problems.append(f"EmuFault: {e}")
        except AssertionError as e:  # noqa: PERF203 - a judge's check, reported as a problem
            out.problems.append(f"check failed: {e}")
        except Exception:  # noqa: BLE001 - the harness itself broke: say so, with where
            import traceback
            out.problems.append("harness error: " + traceback.format_exc(limit=-3))
        out.seconds = time.perf_counter() - t0
        return out

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        raise NotImplementedError
