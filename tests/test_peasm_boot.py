"""OVMF is the final judge: the runtime check program boots and powers off by itself."""
from __future__ import annotations

import shutil

import pytest

from peasm.programs import manifest_path
from tests.peasm_helpers import peasm
from tests.support import require

pytestmark = pytest.mark.slow


def _boot_dir(tmp_path):
    qemu = pytest.importorskip("imagetool.qemu")
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 (apt-get install qemu-system-x86)")
    try:
        qemu.find_ovmf()
    except qemu.QemuError as e:
        require(False, f"OVMF ({e})")
    boot = tmp_path / "vol" / "EFI" / "BOOT"
    boot.mkdir(parents=True)
    r = peasm("link", manifest_path("hello"), "-o", boot / "BOOTX64.EFI")
    assert r.returncode == 0, r.stderr
    return qemu, tmp_path / "vol"


@pytest.mark.parametrize("cpu,present,absent", [
    ("max", {"sse2", "avx", "avx2", "fma", "f16c"}, set()),
    ("qemu64", {"sse2"}, {"avx", "avx2", "fma", "f16c"}),
])
def test_runtime_check_boots_in_ovmf(tmp_path, cpu, present, absent):
    qemu, vol = _boot_dir(tmp_path)
    result = qemu.boot(vol, cpu=cpu, mem_mib=256, timeout=240)
    assert not result.timed_out, result.output[-2000:]
    assert result.powered_off, result.output[-2000:]
    assert "llm-uefi 0.1.0: runtime check" in result.output
    cpu_line = next(ln for ln in result.output.splitlines() if ln.startswith("cpu:"))
    features = set(cpu_line.split()[1:])
    assert present <= features, cpu_line
    assert not (absent & features), cpu_line
