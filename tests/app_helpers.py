"""Helpers for tests of the whole chat program: build it, make a volume, run it, read it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from peasm.linker import link, load_manifest
from peasm.pe import build_pe
from peasm.programs import manifest_path
from peasm.runners.hosted import RunResult, run


@pytest.fixture(scope="session")
def chat_efi(tmp_path_factory) -> Path:
    """The default program (the chat), linked once per test process, with its map beside it."""
    out = tmp_path_factory.mktemp("chat") / "BOOTX64.EFI"
    m = load_manifest(manifest_path("chat"))
    image = link(m.sources, m.entry, include_dirs=m.include_dirs)
    out.write_bytes(build_pe(image))
    out.with_suffix(".map").write_text(image.map_text(), encoding="utf-8")
    return out


def make_volume(root: Path, *, files: dict[str, bytes | Path] = (), cfg: str | None = None,
                autorun: list[str] | None = None) -> Path:
    """A boot volume directory: files (name -> bytes or a file to copy), repl.cfg, autorun.txt."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in dict(files).items():
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content.read_bytes() if isinstance(content, Path) else content)
    if cfg is not None:
        (root / "repl.cfg").write_text(cfg, encoding="utf-8")
    if autorun is not None:
        (root / "autorun.txt").write_bytes("\n".join(autorun).encode("utf-8") + b"\n")
    return root


def run_chat(efi: Path, volume: Path, cpu: str = "native", input_bytes: bytes = b"",
             timeout_s: float = 600, cpus: int = 1) -> RunResult:
    return run(efi, volume, cpu=cpu, input_bytes=input_bytes, out=None, timeout_s=timeout_s, cpus=cpus)


def generations(output: str) -> list[str]:
    """The text of each generation: what follows an echoed prompt line, up to the [stats] line."""
    return re.findall(r"(?m)^> [^\n]*\n(.*?)\n\[stats\]", output, flags=re.S)


def console_render(pieces: list[bytes]) -> str:
    """What the program's console shows for these decoded pieces: a lone control byte other
    than newline/tab is skipped (as llama2.c's safe_printf), then UTF-8 becomes UCS-2 the way
    efi_stubs/console.s does it (U+FFFD for malformed sequences and for characters outside the
    BMP; a character still incomplete at the end is not shown)."""
    data = b"".join(p for p in pieces if not (len(p) == 1 and p[0] < 0x20 and p not in (b"\n", b"\t")))
    out, i, need, cp = [], 0, 0, 0
    while i < len(data):
        b = data[i]
        i += 1
        if need:
            if b & 0xC0 != 0x80:
                out.append("\ufffd")
                need = 0
                i -= 1
                continue
            cp = (cp << 6) | (b & 0x3F)
            need -= 1
            if need == 0:
                out.append("\ufffd" if cp > 0xFFFF or 0xD800 <= cp <= 0xDFFF else chr(cp))
            continue
        if b < 0x80:
            out.append(chr(b))
        elif b & 0xE0 == 0xC0:
            cp, need = b & 0x1F, 1
        elif b & 0xF0 == 0xE0:
            cp, need = b & 0x0F, 2
        elif b & 0xF8 == 0xF0:
            cp, need = b & 0x07, 3
        else:
            out.append("\ufffd")
    return "".join(out).replace("\r", "")
