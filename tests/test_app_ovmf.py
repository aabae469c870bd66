"""The real thing: OVMF boots an image that imagetool built around the chat program."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.app_helpers import chat_efi, generations  # noqa: F401
from tests.support import REFERENCE, model_file, require

pytestmark = pytest.mark.slow


def _qemu():
    qemu = pytest.importorskip("imagetool.qemu")
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 (apt-get install qemu-system-x86)")
    try:
        qemu.find_ovmf()
    except qemu.QemuError as e:
        require(False, f"OVMF ({e})")
    return qemu


def _image(tmp_path, efi, cfg: str, autorun: list[str], extra: list[str] = ()):
    (tmp_path / "repl.cfg").write_text(cfg, encoding="utf-8")
    (tmp_path / "autorun.txt").write_text("\n".join(autorun) + "\n", encoding="utf-8")
    img = tmp_path / "llm.img"
    args = [sys.executable, "-m", "imagetool", "build", "-q", "-o", str(img), "--efi", str(efi),
            "--model", str(model_file("stories260K.bin")), "--tokenizer", str(model_file("tok512.bin")),
            "--cfg", str(tmp_path / "repl.cfg"), "--add", str(tmp_path / "autorun.txt"), *extra]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return img


def test_golden_in_ovmf(chat_efi, tmp_path):
    qemu = _qemu()
    img = _image(tmp_path, chat_efi, "temperature=0\nmax_tokens=200\n", ["", "/shutdown"])
    result = qemu.boot(img, cpu="max", mem_mib=512, timeout=600)
    assert not result.timed_out, result.output[-2000:]
    assert result.powered_off, result.output[-2000:]
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (text,) = generations(result.output)
    assert text.startswith(golden.rstrip("\n")), text[:300]
    assert "kernels" not in result.output or "avx2" in result.output
