"""The QEMU + OVMF runner (imagetool.qemu) and `imagetool boot`.

Fast tests check the command line, OVMF discovery and ANSI stripping. Slow tests boot for real:
OVMF's own UEFI shell reads files from our image (driven through `interact`), a timeout is
enforced, and the project's EFI app (built by `peasm link`) prints its banner and powers off,
both from an image and from a plain directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagetool import qemu
from imagetool.image import Item, build_image
from tests.support import REPO, require, require_tool
from tests.test_imagetool_support import fake_efi, imagetool


def test_strip_ansi_handles_ovmf_sequences():
    raw = ("\x1b[0m\x1b[30m\x1b[40m\x1b[2J\x1b[01;01H\x1b[=3h\x1b[1mBdsDxe\x1b[0m: loading\r\n"
           "\x1bc\x1b(B\x1b]0;title\x07text\x1b[?25l more\x1b[K")
    assert qemu.strip_ansi(raw) == "BdsDxe: loading\r\ntext more"
    assert qemu.strip_ansi("plain [brackets] stay") == "plain [brackets] stay"


def test_command_line_for_image_and_directory(tmp_path):
    img = tmp_path / "x.img"
    img.write_bytes(b"")
    code, vars_copy = tmp_path / "CODE.fd", tmp_path / "VARS.fd"
    cmd = qemu.qemu_command(img, code, vars_copy, cpu="qemu64", smp=2, mem_mib=256, extra_args=["-S"])
    joined = " ".join(cmd)
    for piece in ["-machine q35", "-accel tcg", "-cpu qemu64", "-smp 2", "-m 256", "-display none",
                  "-serial stdio", "-monitor none", "-no-reboot", "-net none",
                  f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                  f"if=pflash,format=raw,unit=1,file={vars_copy}", f"file={img},format=raw"]:
        assert piece in joined, piece
    assert cmd[-1] == "-S"
    d = tmp_path / "dir"
    d.mkdir()
    cmd = qemu.qemu_command(d, code, vars_copy)
    assert any(a.startswith(f"file=fat:rw:{d.resolve()},format=raw") for a in cmd)


def test_find_ovmf_layouts(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGETOOL_OVMF_CODE", raising=False)
    monkeypatch.delenv("IMAGETOOL_OVMF_VARS", raising=False)
    with pytest.raises(qemu.QemuError, match="OVMF firmware not found"):
        qemu.find_ovmf([tmp_path])
    # an older Debian layout (2 MiB files) is found ...
    old = tmp_path / "OVMF"
    old.mkdir()
    (old / "OVMF_CODE.fd").write_bytes(b"c")
    (old / "OVMF_VARS.fd").write_bytes(b"v")
    assert qemu.find_ovmf([tmp_path]) == (old / "OVMF_CODE.fd", old / "OVMF_VARS.fd")
    # ... but the 4M pair wins when both exist, and code and vars always come as a pair
    (old / "OVMF_CODE_4M.fd").write_bytes(b"c")
    assert qemu.find_ovmf([tmp_path]) == (old / "OVMF_CODE.fd", old / "OVMF_VARS.fd")
    (old / "OVMF_VARS_4M.fd").write_bytes(b"v")
    assert qemu.find_ovmf([tmp_path]) == (old / "OVMF_CODE_4M.fd", old / "OVMF_VARS_4M.fd")
    fedora = tmp_path / "f" / "edk2" / "ovmf"
    fedora.mkdir(parents=True)
    (fedora / "OVMF_CODE.fd").write_bytes(b"c")
    (fedora / "OVMF_VARS.fd").write_bytes(b"v")
    assert qemu.find_ovmf([tmp_path / "f"])[0] == fedora / "OVMF_CODE.fd"
    monkeypatch.setenv("IMAGETOOL_OVMF_CODE", str(fedora / "OVMF_CODE.fd"))
    with pytest.raises(qemu.QemuError, match="both"):
        qemu.find_ovmf()
    monkeypatch.setenv("IMAGETOOL_OVMF_VARS", str(tmp_path / "missing.fd"))
    with pytest.raises(qemu.QemuError, match="does not exist"):
        qemu.find_ovmf()


def test_system_ovmf_is_found():
    _judges()
    code, vars_ = qemu.find_ovmf()
    assert code.is_file() and vars_.is_file()


def test_clear_errors_before_starting_qemu(tmp_path, monkeypatch):
    with pytest.raises(qemu.QemuError, match="no such image"):
        qemu.boot(tmp_path / "nope.img")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(qemu.QemuError, match="empty"):
        qemu.boot(empty)
    img = tmp_path / "x.img"
    img.write_bytes(b"x")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("IMAGETOOL_QEMU", raising=False)
    with pytest.raises(qemu.QemuError, match="qemu-system-x86_64 not found"):
        qemu.boot(img)


def _judges():
    require_tool("qemu-system-x86_64")
    try:
        qemu.find_ovmf()
    except qemu.QemuError as e:
        require(False, str(e))


@pytest.fixture(scope="module")
def shell_image(tmp_path_factory) -> Path:
    """An image whose BOOTX64.EFI is not a real program: OVMF falls back to its UEFI shell."""
    d = tmp_path_factory.mktemp("qemu")
    efi = fake_efi(d / "BOOTX64.EFI", 2048)
    img = d / "shell.img"
    build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=efi),
                      Item("/repl.cfg", data=b"temperature=0\r\nfrom-our-image=yes\r\n"),
                      Item("/models/A long model name.bin", data=b"x" * 5000)])
    return img


@pytest.mark.slow
def test_ovmf_shell_reads_our_image_via_interact(shell_image):
    _judges()
    res = qemu.boot(shell_image, timeout=240, interact=[
        ("Shell>", b"\r"),  # (also skips the startup.nsh countdown)
        ("Shell>", b"type fs0:\\repl.cfg\r"),
        ("from-our-image", b"ls fs0:\\models\r"),
        ("A long model name.bin", b"reset -s\r"),
    ])
    assert not res.timed_out, res.output[-2000:]
    assert res.powered_off and res.returncode == 0
    assert "from-our-image=yes" in res.output
    assert "A long model name.bin" in res.output
    assert "\x1b" not in res.output and "\r\n" not in res.output
    assert b"\x1b[" in res.raw  # the raw console did carry escapes


@pytest.mark.slow
def test_timeout_stops_qemu(shell_image):
    _judges()
    res = qemu.boot(shell_image, timeout=15)  # the shell waits for input forever
    assert res.timed_out and not res.powered_off
    assert res.returncode != 0
    assert 14 <= res.seconds < 40


# The project's default program prints a line containing 'llm-uefi'; the first one powered off by
# itself, the chat app waits at its '> ' prompt, where '/shutdown' powers off. Both pass.
SHUTDOWN = [("> ", b"/shutdown\r")]


def _peasm_efi(path: Path) -> Path:
    """BOOTX64.EFI from the project's own toolchain (`peasm link`, default program)."""
    try:
        import peasm.cli  # noqa: F401
    except ImportError:
        require(False, "peasm (python -m peasm link)")
    r = subprocess.run([sys.executable, "-m", "peasm", "link", "-o", str(path)], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, f"peasm link failed: {r.stderr.strip()}"
    return path


@pytest.mark.slow
def test_boot_peasm_app_from_image(tmp_path):
    _judges()
    efi = _peasm_efi(tmp_path / "BOOTX64.EFI")
    img = tmp_path / "app.img"
    r = imagetool("build", "-q", "-o", img, "--efi", efi)
    assert r.returncode == 0, r.stderr
    res = qemu.boot(img, timeout=240, interact=SHUTDOWN)
    assert not res.timed_out, res.output[-2000:]
    assert res.powered_off, (res.returncode, res.stderr[-2000:])
    assert "llm-uefi" in res.output


@pytest.mark.slow
def test_boot_peasm_app_from_directory(tmp_path):
    _judges()
    root = tmp_path / "esp"
    (root / "EFI" / "BOOT").mkdir(parents=True)
    _peasm_efi(root / "EFI" / "BOOT" / "BOOTX64.EFI")
    res = qemu.boot(root, timeout=240, cpu="qemu64", smp=2, mem_mib=256, interact=SHUTDOWN)
    assert res.powered_off and "llm-uefi" in res.output, res.output[-2000:]


@pytest.mark.slow
def test_cli_boot_exit_status(tmp_path):
    _judges()
    efi = _peasm_efi(tmp_path / "BOOTX64.EFI")
    img = tmp_path / "app.img"
    assert imagetool("build", "-q", "-o", img, "--efi", efi).returncode == 0
    # console on "the terminal" (here: pipes); type /shutdown at the prompt like a user would
    p = subprocess.Popen([sys.executable, "-m", "imagetool", "boot", str(img), "--timeout", "240"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    seen = b""
    while True:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        if qemu.strip_ansi(seen.decode("utf-8", "replace")).rstrip().endswith(">"):
            p.stdin.write(b"/shutdown\r")
            p.stdin.flush()
            seen += p.stdout.read()
            break
    p.wait(300)
    assert p.returncode == 0, p.stderr.read()
    assert b"llm-uefi" in seen
    # a guest that never powers off: non-zero status and one line naming the timeout
    junk = tmp_path / "junk.img"
    build_image(junk, [Item("/EFI/BOOT/BOOTX64.EFI", src=fake_efi(tmp_path / "j.efi"))])
    r = imagetool("boot", junk, "--timeout", "10", timeout=120, input=b"")
    assert r.returncode != 0 and b"timed out after 10 s" in r.stderr
