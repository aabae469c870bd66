"""The text routines every input and message goes through, called one by one under unicorn
(guard pages around every buffer, the ABI checked at each return): the formatter
(efi_stubs/format.s: str_format, the buffer half of rt_printf) and the line splitter and BOM
skipper every text file is read with (app_asm/util.s) - against Python's own formatting and
str.splitlines. Plus two source checks: no unused message strings, and no limit typed into a
message next to the constant it repeats."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from peasm.linker import link, load_manifest
from peasm.programs import manifest_path
from peasm.runners.emu import Emu

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def emu():
    m = load_manifest(manifest_path("chat"))
    return Emu(link(m.sources, m.entry, include_dirs=m.include_dirs))


def _fmt(emu, fmt: str, *args, capacity: int = 256):
    """str_format into a guard-paged buffer of `capacity` bytes -> (text, rdx)."""
    from unicorn.x86_const import UC_X86_REG_RDX
    buf = emu.alloc(max(capacity, 1))
    f = emu.alloc(0, fmt.encode() + b"\0")
    vals = []
    for a in args:
        if isinstance(a, (bytes, str)):
            data = a.encode() if isinstance(a, str) else a
            vals.append(emu.alloc(0, data + b"\0"))
        else:
            vals.append(a & (2**64 - 1))
    n = emu.call("str_format", buf, capacity, f, *vals)
    cut = emu.uc.reg_read(UC_X86_REG_RDX)
    text = emu.read(buf, n).decode("utf-8") if capacity else ""
    if capacity:
        assert emu.read(buf + n, 1) == b"\0"
    return text, cut


@pytest.mark.parametrize("fmt,args,want", [
    ("plain text", (), "plain text"),
    ("", (), ""),
    ("%s and %s", ("cats", "dogs"), "cats and dogs"),
    ("[%u]", (0,), "[0]"),
    ("%u", (2**64 - 1,), "18446744073709551615"),
    ("%d|%d|%d", (-1, 0, -(2**63)), "-1|0|-9223372036854775808"),
    ("%x %x", (0xDEADBEEF, 0), "deadbeef 0"),
    ("%h MiB", (12345,), "123.45 MiB"),
    ("%h", (7,), "0.07"),
    ("%h", (100,), "1.00"),
    ("100%% sure", (), "100% sure"),
    ("%q %", (), "%q %"),
    ("%.*s!", (3, "abcdef"), "abc!"),
    ("%.x", (), "%.x"),
    ("repl.cfg:%u: bad value '%.*s' for %s: expected", (3, 2, "xyz", "top_k"),
     "repl.cfg:3: bad value 'xy' for top_k: expected"),
    ("%u %u %u %u %u %u %u", (1, 2, 3, 4, 5, 6, 7), "1 2 3 4 5 6 7"),   # stack arguments
    ("é %s ü", ("日本",), "é 日本 ü"),
])
def test_str_format(emu, fmt, args, want):
    assert _fmt(emu, fmt, *args) == (want, 0)


def test_str_format_null_string_prints_nothing(emu):
    assert _fmt(emu, "<%s>", 0) == ("<>", 0)


@pytest.mark.parametrize("capacity", [1, 2, 5, 9, 10, 11])
def test_str_format_cuts_at_capacity_and_says_so(emu, capacity):
    full = "12345 678"
    text, cut = _fmt(emu, "%u %s", 12345, "678", capacity=capacity)
    assert text == full[:capacity - 1]
    assert cut == (1 if capacity - 1 < len(full) else 0)


def test_str_format_with_no_room_writes_nothing(emu):
    assert _fmt(emu, "abc", capacity=0) == ("", 1)


def _lines(emu, data: bytes) -> list[bytes]:
    from unicorn.x86_const import UC_X86_REG_RDX, UC_X86_REG_R8
    buf = emu.alloc(len(data), data) if data else emu.alloc(1)
    start = emu.call("text_skip_bom", buf, len(data))
    length = emu.uc.reg_read(UC_X86_REG_RDX)
    cur, end, out = start, start + length, []
    while cur < end:
        line = emu.call("text_line", cur, end)
        n = emu.uc.reg_read(UC_X86_REG_RDX)
        nxt = emu.uc.reg_read(UC_X86_REG_R8)
        assert line == cur and cur < nxt <= end
        out.append(emu.read(line, n) if n else b"")
        cur = nxt
    return out


@pytest.mark.parametrize("data", [
    b"", b"a", b"a\n", b"a\r\nb\r\n", b"a\rb\r", b"a\n\nb", b"\r\n\r\n", b"\r\r\n\n", b"one\rtwo\nthree\r\nfour",
    b"\xef\xbb\xbfkey=1\r\n", b"\xef\xbb\xbf", b"\xef\xbb", b"\xef\xbb\xbf\xef\xbb\xbfx", b"x\r",
])
def test_text_lines_match_python(emu, data):
    """LF, CR LF and CR each end a line, a missing final newline loses nothing, a leading BOM
    is skipped (once) - as Python's splitlines() over the text without its BOM."""
    text = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    want = [ln for ln in re.split(rb"\r\n|\r|\n", text)]
    if want and want[-1] == b"" and text:
        want.pop()
    if not text:
        want = []
    assert _lines(emu, data) == want


# ------------------------------------------------------------------ source checks

def _asm_files():
    return sorted([*REPO.glob("app_asm/*.s"), *REPO.glob("efi_stubs/*.s")])


def _rdata_labels(text: str) -> list[str]:
    labels, section = [], None
    for line in text.splitlines():
        s = line.split("#", 1)[0].strip()
        if s.startswith(".section"):
            section = s.split()[1]
        elif s in (".rdata", ".text", ".data", ".bss"):
            section = s
        m = re.match(r"^([A-Za-z_][\w]*):", s)
        if m and section in (".rdata",) and not m.group(1).startswith(".L"):
            labels.append(m.group(1))
    return labels


def test_no_unused_message_strings():
    """Every label in a read-only data section is used somewhere (unused strings go)."""
    sources = {p: p.read_text(encoding="utf-8") for p in _asm_files()}
    everything = "\n".join(sources.values())
    unused = []
    for path, text in sources.items():
        for label in _rdata_labels(text):
            uses = len(re.findall(rf"(?<![\w.]){re.escape(label)}(?!\w)", everything))
            if uses < 2:
                unused.append(f"{path.relative_to(REPO)}: {label}")
    assert not unused, unused


def test_messages_do_not_repeat_limits_the_constants_hold():
    """A limit in a message comes from its constant through %u, never typed next to it: no
    string in the files touched for issue 13 holds the value of a limit constant of 3+ digits
    that its file uses."""
    files = ["app_asm/repl.s", "app_asm/lineedit.s", "app_asm/settings.s", "app_asm/settings_print.s", "app_asm/commands.s", "app_asm/generate.s",
             "app_asm/cmd_settings.s", "app_asm/cmd_tokens.s", "app_asm/cmd_files.s", "app_asm/picker.s", "app_asm/tokenizer.s", "efi_stubs/keyboard.s", "efi_stubs/format.s", "efi_stubs/console.s"]
    incs = "\n".join(p.read_text(encoding="utf-8") for p in [*REPO.glob("app_asm/*.inc"), *REPO.glob("efi_stubs/*.inc")])
    consts = {}
    for text in [incs] + [(REPO / f).read_text(encoding="utf-8") for f in files]:
        for name, value in re.findall(r"^\.equ\s+(\w+),\s*(\d+)\b", text, flags=re.M):
            if int(value) >= 100:
                consts[name] = value
    bad = []
    for f in files:
        text = (REPO / f).read_text(encoding="utf-8")
        strings = re.findall(r'\.asciz\s+"((?:[^"\\]|\\.)*)"', text)
        for name, value in consts.items():
            if name in text:
                bad += [f"{f}: {s!r} repeats {name} = {value}" for s in strings if re.search(rf"\b{value}\b", s)]
    assert not bad, bad


def test_tokenizer_messages_say_their_limits_from_the_constants(emu):
    """tok_error_text gives a format and the limit it names (rdx); formatted, the limits are
    the constants' values (TOK_MAX_TOKEN_LEN, TOK_MAX_VOCAB, TOK_MAX_FILE in MiB, TOK_MAX_TEXT)."""
    from unicorn.x86_const import UC_X86_REG_RDX
    from tests.test_app_tokenizer import C

    def said(code):
        fmt = emu.call("tok_error_text", code)
        limit = emu.uc.reg_read(UC_X86_REG_RDX)
        buf = emu.alloc(200)
        n = emu.call("str_format", buf, 200, fmt, limit)
        return emu.read(buf, n).decode()

    assert said(C["TOK_E_MAX_LEN"]).endswith(f"(1..{C['TOK_MAX_TOKEN_LEN']})")
    assert said(C["TOK_E_VOCAB_SIZE"]).endswith(f"(1..{C['TOK_MAX_VOCAB']})")
    assert said(C["TOK_E_FILE_SIZE"]).endswith(f"(over {C['TOK_MAX_FILE'] >> 20} MiB)")
    assert said(C["TOK_E_TEXT_TOO_LONG"]).endswith(f"(over {C['TOK_MAX_TEXT']} bytes)")
    for code in range(C["TOK_E_LAST"] + 2):
        assert "%" not in said(code)
