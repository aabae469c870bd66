"""The settings of an image's repl.cfg that decide how much memory the program takes.

The program reads repl.cfg (app_asm/settings.s, config_parse) as `key = value` lines: a UTF-8
BOM is skipped, a line ends at LF, CR LF or CR, `#` starts a comment, key and value are
trimmed, keys match exactly, enum values in any case. A bad value is reported and ignored
(the setting keeps what it had), so a later good line wins over an earlier one. These rules
are followed here for the two keys `imagetool boot --mem auto` needs:

* `ctx_len`: a decimal number 0..1048576 (an optional '+'); 0 means the model's own context;
* `kv_type`: auto, f16 or f32 (peasm.layouts.KV_TYPE_SETTINGS), the KV cache's element type.

Every other key is the program's alone and leaves the memory as it is: the sampling knobs,
and `repack = on|off` (Q4 weights repacked in place into 8-row groups at load, the scratch
inside the run state: app_asm/model_repack.s), so they are accepted and change nothing here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from peasm.layouts import KV_TYPE_SETTINGS

from .errors import ImageError

__all__ = ["ReplCfg", "parse_cfg", "read_cfg", "CTX_LEN_MAX", "CFG_PATH"]

CFG_PATH = "/repl.cfg"
CTX_LEN_MAX = 1048576          # settings.s: ctx_len is a SET_T_U32 in 0..1048576
_READ_MAX = 1 << 16
_LINE_END = re.compile(r"\r\n|\r|\n")
_UINT = re.compile(r"\+?[0-9]+")


@dataclass(frozen=True)
class ReplCfg:
    ctx_len: int | None = None     # None (or 0 in the file): the model's own context
    kv_type: str = "auto"          # one of KV_TYPE_SETTINGS


def parse_cfg(raw: bytes) -> ReplCfg:
    """ctx_len and kv_type from repl.cfg's bytes, as the program takes them."""
    text = raw[:_READ_MAX]
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    ctx, kv = None, "auto"
    for line in _LINE_END.split(text.decode("utf-8", "replace")):
        key, sep, value = line.split("#", 1)[0].partition("=")
        if not sep:
            continue
        key, value = key.strip(" \t"), value.strip(" \t")
        if key == "ctx_len" and _UINT.fullmatch(value) and int(value) <= CTX_LEN_MAX:
            ctx = int(value) or None
        elif key == "kv_type" and value.lower() in KV_TYPE_SETTINGS:
            kv = value.lower()
    return ReplCfg(ctx, kv)


def read_cfg(vol) -> ReplCfg:
    """The settings of a FAT volume's /repl.cfg (the defaults when it has none or it cannot
    be read)."""
    try:
        if not vol.exists(CFG_PATH):
            return ReplCfg()
        return parse_cfg(vol.read_file(CFG_PATH))
    except ImageError:
        return ReplCfg()
