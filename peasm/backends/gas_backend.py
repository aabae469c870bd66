"""binutils as the second backend: `as` (Intel syntax) then `ld` to a flat binary.

Not in the user's build path; the tests use it as an independent oracle for what keystone
encoded. Needs the Debian package binutils.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from peasm.backends.base import AsmError, Backend

_HEADER = [".intel_syntax noprefix", ".text"]
_AS_ERROR = re.compile(r"^[^:]*:(\d+): (?:Error|Fatal error): (.*)$")
_LD_UNDEF = re.compile(r"undefined reference to `([^']+)'")


@dataclass
class GasBackend(Backend):
    def __post_init__(self):
        self.name = "gas"

    def available(self) -> tuple[bool, str]:
        missing = [t for t in ("as", "ld") if shutil.which(t) is None]
        if missing:
            return False, f"{' and '.join(missing)} not found (apt-get install binutils)"
        return True, ""

    def assemble(self, statements: list[str], base: int, *, lenient: bool = False) -> bytes:
        with tempfile.TemporaryDirectory(prefix="peasm-gas-") as tmp:
            src, obj, out = Path(tmp, "u.s"), Path(tmp, "u.o"), Path(tmp, "u.bin")
            src.write_text("\n".join(_HEADER + statements) + "\n", encoding="utf-8")
            r = subprocess.run(["as", "--64", "-o", str(obj), str(src)], capture_output=True, text=True)
            if r.returncode != 0:
                for line in r.stderr.splitlines():
                    m = _AS_ERROR.match(line)
                    if m:
                        raise AsmError(m.group(2), int(m.group(1)) - 1 - len(_HEADER))
                raise AsmError(r.stderr.strip() or "as failed")
            args = ["ld", "-m", "elf_x86_64", "-nostdlib", "-e", "0", f"-Ttext=0x{base:x}",
                    "--oformat", "binary", "-o", str(out), str(obj)]
            if lenient:
                args.insert(1, "--unresolved-symbols=ignore-all")
            r = subprocess.run(args, capture_output=True, text=True)
            if r.returncode != 0:
                missing = sorted(set(_LD_UNDEF.findall(r.stderr)))
                raise AsmError("undefined symbol" if missing else r.stderr.strip(), None, missing)
            return out.read_bytes()
