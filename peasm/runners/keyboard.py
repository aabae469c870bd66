"""The hosted firmware's keyboard: keys from a script or a terminal, as a UEFI console
delivers EFI_INPUT_KEYs. Part of peasm.runners.firmware (which re-exports Keyboard).
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO

from .firmware_common import S, InputEnded


class Keyboard:
    """Keys from bytes (a script, or a terminal read as it comes), as EFI_INPUT_KEYs, the way a
    console delivers them. Two kinds of console (`mode`):

    "serial" (the default; what OVMF's serial terminal driver does with what a terminal sends):
    every byte is one key. CR is CHAR_CARRIAGE_RETURN and LF is CHAR_LINEFEED, so "\\r\\n" is
    two keys; 0x08 is CHAR_BACKSPACE; 0x7F (DEL) is SCAN_DELETE; ESC [ A..D/H/F are scan codes;
    a byte >= 0x80 is the character U+0080..U+00FF (so UTF-8 text arrives one byte per key).

    "local" (a PC keyboard): text is UTF-8; Enter is one CHAR_CARRIAGE_RETURN whether the script
    says "\\n", "\\r" or "\\r\\n"; DEL and BS are CHAR_BACKSPACE; a character outside the BMP
    is a UTF-16 surrogate pair (two keys), as a UCS-2 UnicodeChar cannot hold it."""

    ARROWS = {b"A": S["SCAN_UP"], b"B": S["SCAN_DOWN"], b"C": S["SCAN_RIGHT"], b"D": S["SCAN_LEFT"],
              b"H": S["SCAN_HOME"], b"F": S["SCAN_END"]}
    MODES = ("serial", "local")

    def __init__(self, data: bytes = b"", stream: BinaryIO | None = None, mode: str = "serial"):
        if mode not in self.MODES:
            raise ValueError(f"keyboard mode {mode!r}: serial or local")
        self.mode = mode
        self.pending = bytearray(data)
        self.stream = stream
        self.keys: list[tuple[int, int]] = []

    def _fill(self, block: bool) -> None:
        if self.stream is None or (not block and not _readable(self.stream)):
            return
        chunk = os.read(self.stream.fileno(), 4096)
        if not chunk:
            self.stream = None
        self.pending += chunk

    def _parse(self) -> None:
        p = self.pending
        serial = self.mode == "serial"
        while p:
            b = p[0]
            if b == 0x1B:
                if len(p) >= 3 and p[1:2] == b"[" and bytes(p[2:3]) in self.ARROWS:
                    self.keys.append((self.ARROWS[bytes(p[2:3])], 0))
                    del p[:3]
                else:
                    self.keys.append((S["SCAN_ESC"], 0))
                    del p[:1]
            elif b in (0x0A, 0x0D):
                if serial:
                    self.keys.append((0, b))
                    del p[:1]
                else:
                    self.keys.append((0, 0x0D))
                    del p[:2 if p[:2] == b"\r\n" else 1]
            elif b == 0x7F and serial:
                self.keys.append((S["SCAN_DELETE"], 0))
                del p[:1]
            elif b in (0x08, 0x7F):
                self.keys.append((0, 0x08))
                del p[:1]
            elif b < 0x80 or serial:
                self.keys.append((0, b))
                del p[:1]
            else:
                need = 2 if b >> 5 == 6 else 3 if b >> 4 == 14 else 4 if b >> 3 == 30 else 1
                if len(p) < need and self.stream is not None:
                    return  # the rest of the character is still coming
                ch = bytes(p[:need]).decode("utf-8", "replace")[0]
                units = ch.encode("utf-16-le")
                self.keys.extend((0, u) for (u,) in struct.iter_unpack("<H", units))
                del p[:need]

    def poll(self) -> tuple[int, int] | None:
        if not self.keys:
            self._fill(block=False)
            self._parse()
        return self.keys.pop(0) if self.keys else None

    def wait(self) -> None:
        while not self.keys:
            self._parse()
            if self.keys:
                return
            if self.stream is None:
                raise InputEnded()
            self._fill(block=True)


def _readable(stream: BinaryIO) -> bool:
    import select

    try:
        return bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError):
        return False
