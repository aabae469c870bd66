"""The include files peasm generates from Python declarations (never written by hand).

Each name here can be `.include`d by any source as if it were a file on the include path:
`uefi.inc` (peasm.uefi: UEFI tables, GUIDs, constants), `ggml.inc` and `ggml_table.inc`
(peasm.ggml: ggml's tensor types and the table the kernels dispatch on), `layouts.inc`
(peasm.layouts: the app's structs), `tokenizer_layouts.inc` and
`vocab_tables.inc` (peasm.tokenizer_layouts: the GGUF tokenizer's structs, codes, messages and
pre-tokenizer names), `unicode_table.inc` (peasm.unicode_table: Unicode classes, GPT-2's byte map),
`chat_templates.inc` and `chat_table.inc` (peasm.chat_templates: the chat formats' rows).
"""
from __future__ import annotations

from . import chat_templates, ggml, layouts, tokenizer_layouts, uefi, unicode_table


def includes() -> dict[str, str]:
    return {
        "uefi.inc": uefi.render_include(),
        "ggml.inc": ggml.render_include(),
        "ggml_table.inc": ggml.render_table(),
        "layouts.inc": layouts.render_include(),
        "tokenizer_layouts.inc": tokenizer_layouts.render_include(),
        "vocab_tables.inc": tokenizer_layouts.render_tables(),
        "unicode_table.inc": unicode_table.render_include(),
        "chat_templates.inc": chat_templates.render_include(),
        "chat_table.inc": chat_templates.render_table(),
    }


def constants(names: tuple[str, ...] = ("ggml.inc", "layouts.inc")) -> dict[str, int]:
    """The `.equ NAME, number` lines of generated includes, for tests and tools."""
    out: dict[str, int] = {}
    texts = includes()
    for name in names:
        for line in texts[name].splitlines():
            if line.startswith(".equ "):
                key, value = line[5:].split(",", 1)
                out[key.strip()] = int(value.split("#")[0].strip(), 0)
    return out
