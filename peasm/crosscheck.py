"""Two assemblers, one program: where keystone and binutils disagree, and on what.

keystone accepts some malformed operands without a word and mis-encodes others, so the same
sources are also assembled by binutils (the `gas` backend) and the images compared. Used by
`peasm link --check` and by the test that checks every shipped program.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from peasm.linker import LinkedImage, link


def disassemble(code: bytes, vma: int) -> list[str]:
    """objdump's Intel-syntax lines for raw x86-64 bytes placed at `vma` ([] without objdump)."""
    if shutil.which("objdump") is None:
        return []
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(code)
        f.flush()
        out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel",
                              f"--adjust-vma=0x{vma:x}", f.name], capture_output=True, text=True).stdout
    return [" ".join(ln.split("\t")[-1].split()) for ln in out.splitlines() if ln[:1] == " " and ":" in ln]


def first_difference(a: LinkedImage, b: LinkedImage) -> str | None:
    """None when the two images are the same, else where and how they first differ."""
    if [s.name for s in a.sections] != [s.name for s in b.sections]:
        return f"different sections: {[s.name for s in a.sections]} / {[s.name for s in b.sections]}"
    for sa, sb in zip(a.sections, b.sections):
        if sa.data == sb.data and sa.vsize == sb.vsize and sa.rva == sb.rva:
            continue
        n = min(len(sa.data), len(sb.data))
        first = next((i for i in range(n) if sa.data[i] != sb.data[i]), n)
        rva = sa.rva + first
        # disassemble from the start of the statement that holds the first differing byte
        start = max((r for r, _ in a.lines if r <= rva and sa.rva <= r), default=sa.rva)
        one = disassemble(sa.data[start - sa.rva:start - sa.rva + 16], start)[:1]
        two = disassemble(sb.data[start - sb.rva:start - sb.rva + 16], start)[:1]
        what = f": keystone `{one[0]}`, binutils `{two[0]}`" if one and two else ""
        return f"{sa.name} differs at rva 0x{rva:x} {a.locate(rva)}{what}"
    if a.relocs != b.relocs:
        return "the relocations differ"
    return None


def check_with_binutils(sources: list[Path], entry: str, image: LinkedImage,
                        include_dirs: list[Path] = ()) -> str | None:
    """Link the same program with binutils and compare it with `image` (keystone's)."""
    other = link(sources, entry, backend="gas", include_dirs=include_dirs)
    return first_difference(image, other)
