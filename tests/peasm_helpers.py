"""Small helpers shared by the peasm tests: write sources, run the CLI."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def write(dirpath: Path, name: str, text: str) -> Path:
    path = dirpath / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def manifest(dirpath: Path, sources: list[str], entry: str = "efi_main", name: str = "prog.toml") -> Path:
    body = f'entry = "{entry}"\nsources = [{", ".join(repr(s).replace(chr(39), chr(34)) for s in sources)}]\n'
    return write(dirpath, name, body)


def peasm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peasm", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """A user error: exit status 1, no traceback, one line on stderr containing the needles."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
