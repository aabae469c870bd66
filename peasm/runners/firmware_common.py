"""What the hosted firmware's parts share: UEFI status values and the exceptions that end a
hosted run (ResetSystem, a simulated power cut, scripted input running dry).
Part of peasm.runners.firmware (which re-exports these names).
"""
from __future__ import annotations

from peasm import uefi

S = uefi.CONSTANTS
EFI_SUCCESS = 0
ERR = {name: value for name, value in S.items() if name.startswith("EFI_") and value >> 63}
PAGE = 4096


class PowerOff(Exception):
    """ResetSystem was called: the program is done."""

    def __init__(self, reset_type: int, status: int):
        super().__init__(f"ResetSystem(type={reset_type}, status=0x{status:x})")
        self.reset_type = reset_type
        self.status = status


class PowerCut(PowerOff):
    """A simulated power cut (Firmware.power_cut_after): the program is stopped mid-way."""

    def __init__(self, operation: str):
        super().__init__(-1, 0)
        self.operation = operation


class InputEnded(Exception):
    """The program waits for a key and the scripted input has none left."""
