"""Independent oracle: binutils `as` must encode every shipped .s file exactly as keystone did.

Each shipped program manifest is linked twice, once through each backend, and the images must
agree byte for byte. Where they differ, the test names the first differing instruction with
both disassemblies (objdump), so a keystone mis-encoding (it silently accepts some garbage)
cannot slip into BOOTX64.EFI.
"""
from __future__ import annotations

import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import pytest

from peasm.linker import link, load_manifest
from peasm.programs import shipped_sources
from tests.support import require_tool

PACKAGES = ("efi_stubs", "kernels_asm", "app_asm")


def shipped_manifests() -> list[Path]:
    out = []
    for package in PACKAGES:
        try:
            root = Path(str(resources.files(package)))
        except (ModuleNotFoundError, NotADirectoryError, TypeError):
            continue
        out.extend(sorted(root.glob("*.toml")))
    return out


def _disassemble(code: bytes, vma: int) -> list[str]:
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(code)
        f.flush()
        out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel",
                              f"--adjust-vma=0x{vma:x}", f.name], capture_output=True, text=True).stdout
    return [ln.strip() for ln in out.splitlines() if ln[:1] == " " and ":" in ln]


def test_every_shipped_source_is_in_a_manifest():
    covered = {p.resolve() for m in shipped_manifests() for p in load_manifest(m).sources}
    missing = [str(p) for p in shipped_sources() if p.resolve() not in covered]
    assert not missing, f"shipped .s files no manifest links (so the cross-check misses them): {missing}"


@pytest.mark.parametrize("manifest", shipped_manifests(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_keystone_and_binutils_agree(manifest):
    require_tool("as", "ld", "objdump")
    m = load_manifest(manifest)
    ks = link(m.sources, m.entry, backend="keystone", include_dirs=m.include_dirs)
    gas = link(m.sources, m.entry, backend="gas", include_dirs=m.include_dirs)
    assert [s.name for s in ks.sections] == [s.name for s in gas.sections]
    for a, b in zip(ks.sections, gas.sections):
        if a.data == b.data and a.vsize == b.vsize:
            continue
        first = next((i for i, (x, y) in enumerate(zip(a.data, b.data)) if x != y), min(len(a.data), len(b.data)))
        rva = a.rva + first
        where = ks.locate(rva)
        start = max(a.rva, rva - 16)
        ks_dis = _disassemble(a.data[start - a.rva:start - a.rva + 48], start)
        gas_dis = _disassemble(b.data[start - b.rva:start - b.rva + 48], start)
        pytest.fail(f"{a.name} differs at rva 0x{rva:x} {where}\nkeystone:\n  " + "\n  ".join(ks_dis)
                    + "\nbinutils:\n  " + "\n  ".join(gas_dis))
    assert ks.relocs == gas.relocs
    assert [(s.name, s.rva) for s in ks.symbols] == [(s.name, s.rva) for s in gas.symbols]
