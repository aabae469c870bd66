"""Boot a disk image (or a directory, as a virtual FAT drive) in QEMU + OVMF.

Used by `imagetool boot` (console on the user's terminal) and by tests (capture the serial
console, drive the guest with an expect-like script). TCG unless told `accel="kvm"`: the
choice (and the CPU count and memory) for `imagetool boot` is made in imagetool.bootplan.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["QemuError", "BootResult", "find_ovmf", "find_qemu", "boot", "strip_ansi", "qemu_command",
           "check_target", "OVMF_CANDIDATES"]

QEMU_BINARY = "qemu-system-x86_64"

# (code, vars template) pairs, most preferred first; relative to each search root.
OVMF_CANDIDATES: list[tuple[str, str]] = [
    ("OVMF/OVMF_CODE_4M.fd", "OVMF/OVMF_VARS_4M.fd"),        # Debian >= 12, Ubuntu >= 22.04
    ("OVMF/OVMF_CODE.fd", "OVMF/OVMF_VARS.fd"),              # older Debian / Ubuntu (2 MiB)
    ("ovmf/OVMF_CODE.fd", "ovmf/OVMF_VARS.fd"),
    ("edk2/ovmf/OVMF_CODE.fd", "edk2/ovmf/OVMF_VARS.fd"),    # Fedora
    ("edk2/x64/OVMF_CODE.4m.fd", "edk2/x64/OVMF_VARS.4m.fd"),  # Arch
    ("edk2/x64/OVMF_CODE.fd", "edk2/x64/OVMF_VARS.fd"),
    ("qemu/edk2-x86_64-code.fd", "qemu/edk2-i386-vars.fd"),  # QEMU's own bundle
]
OVMF_ROOTS = [Path("/usr/share"), Path("/usr/local/share")]


class QemuError(Exception):
    """QEMU or OVMF missing, a bad target, QEMU failing to start: one clear line."""


@dataclass
class BootResult:
    returncode: int
    output: str          # serial console text: UTF-8 (errors replaced), ANSI escapes stripped, \r\n -> \n
    raw: bytes
    timed_out: bool
    powered_off: bool    # QEMU exited 0 on its own (the guest shut down via ResetSystem)
    stderr: str = ""     # QEMU's own diagnostics (capture mode)
    seconds: float = 0.0


_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"            # CSI ... final byte (colours, cursor moves, clear screen)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*\x1b\\"          # DCS / SOS / PM / APC strings
    r"|\x1b[ -/]+[0-~]"                    # nF escapes, e.g. ESC ( B
    r"|\x1b[0-~]"                           # two-character escapes (ESC c, ESC 7, ESC =, ...)
)


def strip_ansi(text: str) -> str:
    """Remove ANSI/VT100 escape sequences (OVMF decorates its serial console with them)."""
    return _ANSI.sub("", text)


def _clean(raw: bytes) -> str:
    return strip_ansi(raw.decode("utf-8", "replace")).replace("\r\n", "\n")


def find_qemu() -> str:
    exe = os.environ.get("IMAGETOOL_QEMU") or shutil.which(QEMU_BINARY)
    if not exe:
        raise QemuError(f"{QEMU_BINARY} not found (install the qemu-system-x86 package)")
    return exe


def find_ovmf(roots: Sequence[Path] | None = None) -> tuple[Path, Path]:
    """(OVMF code, OVMF vars template). IMAGETOOL_OVMF_CODE / IMAGETOOL_OVMF_VARS override."""
    env_code, env_vars = os.environ.get("IMAGETOOL_OVMF_CODE"), os.environ.get("IMAGETOOL_OVMF_VARS")
    if env_code or env_vars:
        if not (env_code and env_vars):
            raise QemuError("set both IMAGETOOL_OVMF_CODE and IMAGETOOL_OVMF_VARS, or neither")
        code, vars_ = Path(env_code), Path(env_vars)
        for p in (code, vars_):
            if not p.is_file():
                raise QemuError(f"OVMF file {p} (from the environment) does not exist")
        return code, vars_
    for root in (OVMF_ROOTS if roots is None else roots):
        for c, v in OVMF_CANDIDATES:
            code, vars_ = Path(root) / c, Path(root) / v
            if code.is_file() and vars_.is_file():
                return code, vars_
    raise QemuError("OVMF firmware not found (install the ovmf package; looked for "
                    "OVMF_CODE_4M.fd/OVMF_VARS_4M.fd and other layouts under /usr/share)")


def qemu_command(target: Path, code: Path, vars_copy: Path, *, cpu: str = "max", smp: int = 1,
                 mem_mib: int = 512, accel: str = "tcg", extra_args: Iterable[str] = (),
                 qemu: str = QEMU_BINARY) -> list[str]:
    """The QEMU command line for booting `target` (an image file or a directory)."""
    target = Path(target)
    if target.is_dir():
        # QEMU's vvfat driver parses ':' in the file name; refuse paths it would misread.
        if "," in str(target.resolve()):
            raise QemuError(f"{target}: QEMU cannot use a directory whose path contains ','")
        drive = f"file=fat:rw:{target.resolve()},format=raw,if=none,id=bootdisk"
    else:
        if "," in str(target):
            raise QemuError(f"{target}: QEMU cannot use an image whose path contains ','")
        drive = f"file={target},format=raw,if=none,id=bootdisk"
    return [
        qemu, "-machine", "q35", "-accel", accel, "-cpu", cpu, "-smp", str(smp), "-m", str(mem_mib),
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
        "-drive", drive, "-device", "virtio-blk-pci,drive=bootdisk,bootindex=1",
        "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-net", "none",
        *extra_args,
    ]


def check_target(target: Path) -> None:
    """One clear line for a boot target QEMU could not use (before anything is started)."""
    if not target.exists():
        raise QemuError(f"{target}: no such image file or directory")
    if not (target.is_dir() or target.is_file()):
        raise QemuError(f"{target}: not an image file or directory")
    if target.is_dir() and not (target / "EFI").exists() and not any(target.iterdir()):
        raise QemuError(f"{target}: the directory is empty (expected EFI/BOOT/BOOTX64.EFI)")
    if "," in str(target.resolve()):
        raise QemuError(f"{target}: QEMU's -drive option cannot take a path containing ','; rename it")


def _check_args(target: Path, smp: int, mem_mib: int, timeout: float | None, accel: str = "tcg") -> None:
    if accel not in ("tcg", "kvm"):
        raise QemuError(f"accel must be tcg or kvm (got {accel!r})")
    check_target(target)
    if smp < 1:
        raise QemuError(f"--smp must be at least 1 (got {smp})")
    if mem_mib < 32:
        raise QemuError(f"--mem must be at least 32 MiB for OVMF (got {mem_mib})")
    if timeout is not None and timeout <= 0:
        raise QemuError(f"timeout must be positive (got {timeout})")


def _stop(proc: subprocess.Popen) -> None:
    """Stop QEMU gently (SIGTERM lets it restore the terminal), then firmly."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def boot(target: Path, *, cpu: str = "max", smp: int = 1, mem_mib: int = 512, accel: str = "tcg",
         timeout: float | None = 300.0,
         interact: Sequence[tuple[str, bytes]] = (), capture: bool = True,
         extra_args: Sequence[str] = ()) -> BootResult:
    """Boot `target` in QEMU + OVMF and wait until QEMU exits or `timeout` seconds pass.

    interact: for each (text, data), wait until `text` appears in the console output after the
    previous match, then send `data` to the serial port (the app's ConIn). capture=False puts the
    console on this terminal (stdin goes to the guest) instead of capturing it.
    """
    target = Path(target)
    _check_args(target, smp, mem_mib, timeout, accel)
    qemu = find_qemu()
    code, vars_template = find_ovmf()
    with tempfile.TemporaryDirectory(prefix="imagetool-boot-") as tmp:
        vars_copy = Path(tmp) / vars_template.name
        shutil.copyfile(vars_template, vars_copy)
        cmd = qemu_command(target, code, vars_copy, cpu=cpu, smp=smp, mem_mib=mem_mib, accel=accel,
                           extra_args=extra_args, qemu=qemu)
        if capture:
            return _run_captured(cmd, timeout, interact)
        return _run_interactive(cmd, timeout)


def _run_interactive(cmd: list[str], timeout: float | None) -> BootResult:
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd)
    except OSError as e:
        raise QemuError(f"cannot start {cmd[0]}: {e.strerror}") from None
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
    except KeyboardInterrupt:
        _stop(proc)
        raise
    rc = proc.returncode
    if timed_out and rc == 0:
        rc = -15  # QEMU exits 0 on SIGTERM; a timeout must not look like a clean power-off
    return BootResult(rc, "", b"", timed_out, rc == 0 and not timed_out, "", time.monotonic() - start)


def _reader(stream, q: "queue.Queue[bytes | None]") -> None:
    fd = stream.fileno()
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            q.put(None)
            return
        q.put(data)


def _run_captured(cmd: list[str], timeout: float | None, interact: Sequence[tuple[str, bytes]]) -> BootResult:
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise QemuError(f"cannot start {cmd[0]}: {e.strerror}") from None
    out_q: "queue.Queue[bytes | None]" = queue.Queue()
    err_chunks: list[bytes] = []
    t_out = threading.Thread(target=_reader, args=(proc.stdout, out_q), daemon=True)
    t_err = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    t_out.start()
    t_err.start()
    raw = bytearray()
    steps = [(t, d.encode() if isinstance(d, str) else bytes(d)) for t, d in interact]
    search_from = 0
    timed_out = False
    eof = False
    try:
        while not eof:
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                chunk = out_q.get(timeout=wait)
            except queue.Empty:
                chunk = b""
            if chunk is None:
                eof = True
            elif chunk:
                raw += chunk
                while steps:
                    text = _clean(bytes(raw))
                    pos = text.find(steps[0][0], search_from)
                    if pos < 0:
                        break
                    search_from = pos + len(steps[0][0])
                    data = steps.pop(0)[1]
                    try:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                    except (BrokenPipeError, OSError):
                        steps.clear()
            if deadline is not None and time.monotonic() >= deadline and not eof:
                timed_out = True
                break
    except KeyboardInterrupt:
        _stop(proc)
        raise
    finally:
        if timed_out and proc.poll() is None:
            proc.kill()  # no terminal to restore here; a killed QEMU reports a non-zero status
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        _stop(proc)
    t_out.join(2)
    # drain what the reader thread still queued
    while True:
        try:
            chunk = out_q.get_nowait()
        except queue.Empty:
            break
        if chunk:
            raw += chunk
    t_err.join(2)
    for s in (proc.stdin,):
        try:
            s.close()
        except OSError:
            pass
    rc = proc.returncode
    stderr = b"".join(c for c in err_chunks if c).decode("utf-8", "replace")
    return BootResult(rc, _clean(bytes(raw)), bytes(raw), timed_out, rc == 0 and not timed_out, stderr,
                      time.monotonic() - start)
