"""Fuzz kind `cfg`: repl.cfg texts through app_asm/settings.s's config_parse under unicorn,
its prints caught by tests/fuzz/runtime_stubs.s (what judges it: tests/fuzz/harness.py)."""
from __future__ import annotations

import math
import re
import struct
from functools import lru_cache
from pathlib import Path
from random import Random

from peasm import chat_templates
from peasm.linker import link

from tests.fuzz.mutate import MAX_FILE, Case
from tests.fuzz.runner import APP, REPO, Area, Outcome, Runner
from tests.support import inc_constants

STUBS = Path(__file__).resolve().parent / "runtime_stubs.s"

SC = inc_constants(APP / "settings.inc", {})


@lru_cache(maxsize=None)
def cfg_image():
    return link([APP / "settings.s", APP / "settings_print.s", APP / "util.s", APP / "template.s",
                 REPO / "efi_stubs" / "format.s", STUBS], "config_parse", include_dirs=[APP])


_BOOL_WORDS = (b"0", b"1", b"off", b"on", b"false", b"true", b"no", b"yes")
_ENUMS = {"attn": (b"auto", b"sse2", b"avx2"), "kv_type": (b"auto", b"f16", b"f32"),
          "chat_format": tuple(t.name.encode() for t in chat_templates.TEMPLATES) + (b"auto",)}
_FLOAT_RE = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _trim(b: bytes) -> bytes:
    return b.strip(b" \t\r\n")


def _f32(x: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def value_verdict(entry: dict, value: bytes) -> bool | None:
    """settings_set's verdict restated: True valid, False refused, None either (a float at a
    range boundary, with an extreme exponent or more digits than parse_float keeps)."""
    t = entry["type"]
    if t == SC["SET_T_STR"]:   # a file name: no control bytes (a NUL would cut it short)
        return 0 < len(value) <= SC["SET_STR_MAX"] - 1 and min(value) >= 0x20
    if t == SC["SET_T_TEXT"]:  # one line of text, may be empty
        return len(value) <= SC["SET_TEXT_MAX"] - 1 and (not value or min(value) >= 0x20)
    if t == SC["SET_T_BOOL"]:
        return value.lower() in _BOOL_WORDS
    if t == SC["SET_T_ENUM"]:
        return value.lower() in _ENUMS[entry["name"]]
    if t in (SC["SET_T_U32"], SC["SET_T_U64"]):
        if not re.fullmatch(rb"\+?\d+", value) or len(value.lstrip(b"+0")) > 20 \
                or int(value) >= 1 << 64:
            return False
        return t == SC["SET_T_U64"] or entry["min"] <= int(value) <= entry["max"]
    m = _FLOAT_RE.fullmatch(value)
    if not m:
        return False
    lo, hi = entry["min"], entry["max"]
    x = float(value)
    digits = len(re.sub(rb"^0+", b"", re.sub(rb"[^0-9]", b"", m.group(1))))
    exp = int(m.group(2)[1:]) if m.group(2) else 0
    if abs(exp) > 30 or digits > 17:
        return None
    x = _f32(x)
    if any(abs(x - b) <= 1e-6 * max(1.0, abs(b)) for b in (lo, hi)):
        return None
    return lo <= x <= hi


def expected_cfg_reports(text: bytes, table: dict[str, dict]) -> dict[int, tuple[str, bytes, bytes, bool]]:
    """{line number: (kind, key, value, sure)} for the lines config_parse must report."""
    out = {}
    if text.startswith(b"\xef\xbb\xbf"):    # text_skip_bom
        text = text[3:]
    lines = re.split(rb"\r\n|\n|\r", text)   # text_line: LF, CR LF or a lone CR end a line
    if lines and lines[-1] == b"":
        lines.pop()
    for n, line in enumerate(lines, 1):
        stmt = _trim(line.split(b"#", 1)[0])
        if not stmt:
            continue
        if b"=" not in stmt:
            out[n] = ("noeq", b"", b"", True)
            continue
        k, v = stmt.split(b"=", 1)
        key, value = _trim(k), _trim(v)
        entry = table.get(key.decode("latin-1"))
        if entry is None or not key:
            out[n] = ("unknown", key, b"", True)
            continue
        verdict = value_verdict(entry, value)
        if verdict is not True:
            out[n] = ("bad", key, value, verdict is False)
    return out


class CfgRunner(Runner):
    kind = "cfg"

    def __init__(self):
        image = cfg_image()
        super().__init__(image)
        self.printed = bytearray()
        emu = self.emu

        def cstr(e, a):
            self.printed += e.read_cstr(a(0), 1 << 16)

        def utf8(e, a):
            self.printed += e.read(a(0), a(1)) if a(1) else b""

        def u64(e, a):
            self.printed += str(a(0)).encode()

        for slot, fn in (("fuzz_print_cstr_slot", cstr), ("fuzz_print_utf8_slot", utf8),
                         ("fuzz_print_u64_slot", u64)):
            emu.write_u64(emu.address(slot), emu.trap(fn, slot))
        data = next(s for s in image.sections if s.name == ".data")
        self.data_at = emu.base + data.rva
        self.data_bytes = emu.read(self.data_at, data.vsize)
        self.text = Area(emu, MAX_FILE + 4096)
        self.table = self._table()
        self.has_write_cfg = any(s.name == "settings_write_cfg" and s.is_global for s in image.symbols)

    def _table(self) -> dict[str, dict]:
        emu, at, table = self.emu, self.emu.call("settings_first"), {}
        while True:
            name_p, ptr = struct.unpack("<QQ", emu.read(at, 16))
            if not name_p:
                return table
            typ, _src, mn, mx = struct.unpack("<IIII", emu.read(at + 16, 16))
            name = emu.read_cstr(name_p).decode()
            if typ == SC["SET_T_F32"]:
                mn, mx = (struct.unpack("<f", struct.pack("<I", x))[0] for x in (mn, mx))
            table[name] = {"name": name, "ptr": ptr, "type": typ, "min": mn, "max": mx}
            at += SC["SET_ENTRY"]

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        emu = self.emu
        emu.write(self.data_at, self.data_bytes)             # every setting back to its default
        self.printed = bytearray()
        tp = self.text.place(case.data)
        self.call("config_parse", tp, len(case.data))
        printed = bytes(self.printed)
        out.message = printed.decode("utf-8", "replace").rstrip("\n")
        if printed and not printed.endswith(b"\n"):
            out.problems.append("the output does not end with a newline")
        got: dict[int, bytes] = {}
        for line in printed.split(b"\n")[:-1] if printed else []:
            m = re.match(rb"repl\.cfg:(\d+): (.*)\Z", line, re.S)
            if not m or not line.endswith(b"(line ignored)"):
                out.problems.append(f"malformed line {line[:200]!r}")
                continue
            n = int(m.group(1))
            if n in got or (got and n < max(got)):
                out.problems.append(f"line {n} reported out of order or twice")
            got[n] = m.group(2)
        want = expected_cfg_reports(case.data, self.table)
        out.verdict = f"{len(got)} lines reported"
        for n, (kind, key, value, sure) in want.items():
            body = got.get(n)
            if body is None:
                if sure:
                    out.problems.append(f"line {n} ({kind} {key[:60]!r} {value[:60]!r}) not reported")
                continue
            if kind == "noeq":
                ok = body == b"expected key=value (line ignored)"
            elif kind == "unknown":
                ok = body == b"unknown key '" + key + b"' (line ignored)"
            else:
                ok = body.startswith(b"bad value '" + value + b"' for " + key + b": expected ")
            if not ok:
                out.problems.append(f"line {n}: expected a {kind} report, got {body[:200]!r}")
        for n in got:
            if n not in want:
                out.problems.append(f"line {n} reported but valid: {got[n][:200]!r}")
        self._check_settings(out)
        if self.has_write_cfg:
            self._round_trip(out)

    def _values(self) -> dict[str, object]:
        emu, vals = self.emu, {}
        for name, e in self.table.items():
            t, p = e["type"], e["ptr"]
            if t == SC["SET_T_F32"]:
                vals[name] = struct.unpack("<f", emu.read(p, 4))[0]
            elif t == SC["SET_T_U64"]:
                vals[name] = emu.read_u64(p)
            elif t == SC["SET_T_STR"]:
                vals[name] = emu.read(p, SC["SET_STR_MAX"]).split(b"\0", 1)[0]
            elif t == SC["SET_T_TEXT"]:
                vals[name] = emu.read(p, SC["SET_TEXT_MAX"]).split(b"\0", 1)[0]
            else:
                vals[name] = struct.unpack("<I", emu.read(p, 4))[0]
        return vals

    def _round_trip(self, out: Outcome) -> None:
        """What /save_cfg writes (settings_write_cfg) reads back with no report and the
        same values (floats to the 3 decimals it prints)."""
        before = self._values()
        self.printed = bytearray()
        self.call("settings_write_cfg")
        written = bytes(self.printed)
        self.emu.write(self.data_at, self.data_bytes)
        self.printed = bytearray()
        self.call("config_parse", self.text.place(written), len(written))
        if self.printed:
            out.problems.append(f"the file settings_write_cfg writes is not read back cleanly: "
                                f"{bytes(self.printed)[:300]!r} (written: {written[:600]!r})")
        after = self._values()
        for name, v in before.items():
            w = after[name]
            same = abs(v - w) <= 0.0005 + 1e-6 * abs(v) if isinstance(v, float) else v == w
            if not same:
                out.problems.append(f"{name}: {v!r} written by settings_write_cfg, read back as {w!r}")

    def _check_settings(self, out: Outcome) -> None:
        emu = self.emu
        for name, e in self.table.items():
            t, p = e["type"], e["ptr"]
            if t == SC["SET_T_F32"]:
                x = struct.unpack("<f", emu.read(p, 4))[0]
                if not e["min"] <= x <= e["max"]:
                    out.problems.append(f"{name} = {x} after the parse")
            elif t in (SC["SET_T_U32"], SC["SET_T_BOOL"]):
                x = struct.unpack("<I", emu.read(p, 4))[0]
                if not e["min"] <= x <= e["max"]:
                    out.problems.append(f"{name} = {x} after the parse")
            elif t == SC["SET_T_ENUM"]:
                x = struct.unpack("<I", emu.read(p, 4))[0]
                if x >= len(_ENUMS[name]):
                    out.problems.append(f"{name} = {x} after the parse")
            elif t in (SC["SET_T_STR"], SC["SET_T_TEXT"]):
                size = SC["SET_STR_MAX"] if t == SC["SET_T_STR"] else SC["SET_TEXT_MAX"]
                if b"\0" not in emu.read(p, size):
                    out.problems.append(f"{name} is not NUL-terminated within its storage")
