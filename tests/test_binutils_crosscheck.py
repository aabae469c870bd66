"""Independent oracle: binutils `as` must encode every shipped .s file exactly as keystone did.

Each shipped program manifest is linked twice, once through each backend, and the images must
agree byte for byte. Where they differ, the test names the first differing instruction with
both disassemblies (objdump), so a keystone mis-encoding (it silently accepts some garbage)
cannot slip into BOOTX64.EFI.
"""
from __future__ import annotations

from importlib import resources
import shutil
from pathlib import Path

import pytest

from peasm.crosscheck import first_difference
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
    assert first_difference(ks, gas) is None, first_difference(ks, gas)
    assert [(s.name, s.rva) for s in ks.symbols] == [(s.name, s.rva) for s in gas.symbols]


def test_link_check_names_a_mis_encoding(tmp_path):
    """`peasm link --check` refuses an operand keystone encodes wrong without a word."""
    require_tool("as", "ld", "objdump")
    from tests.peasm_helpers import manifest, peasm, write
    write(tmp_path, "m.s", ".global efi_main\nefi_main:\n    xor eax, eax\n    add rax, -\n    ret\n")
    r = peasm("link", manifest(tmp_path, ["m.s"]), "-o", tmp_path / "x.efi", "--check")
    assert r.returncode == 1 and not (tmp_path / "x.efi").exists()
    assert "Traceback" not in r.stderr
    # binutils rejects the line outright: the error names it
    assert "m.s:4:" in r.stderr
    write(tmp_path, "ok.s", ".global efi_main\nefi_main:\n    xor eax, eax\n    ret\n")
    assert peasm("link", manifest(tmp_path, ["ok.s"], name="ok.toml"), "-o", tmp_path / "y.efi", "--check").returncode == 0


def test_first_difference_names_the_statement(tmp_path):
    from dataclasses import replace

    from tests.peasm_helpers import write
    src = write(tmp_path, "m.s", ".global efi_main\nefi_main:\n    xor eax, eax\n    inc eax\n    ret\n")
    a = link([src], "efi_main")
    assert first_difference(a, a) is None
    text = a.sections[0]
    changed = bytearray(text.data)
    changed[3] ^= 0x08                                   # ff c0 inc eax -> ff c8 dec eax
    b = replace(a, sections=[replace(text, data=bytes(changed))] + a.sections[1:])
    message = first_difference(a, b)
    assert message.startswith(f".text differs at rva 0x{text.rva + 3:x} efi_main+0x3 (")
    assert "m.s:4)" in message
    if shutil.which("objdump"):
        assert "keystone `inc eax`, binutils `dec eax`" in message
