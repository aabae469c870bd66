"""The include files peasm generates from Python declarations (never written by hand).

Each name here can be `.include`d by any source as if it were a file on the include path:
`uefi.inc` (peasm.uefi: UEFI tables, GUIDs, constants), `ggml.inc` and `ggml_table.inc`
(peasm.ggml: ggml's tensor types and the table the kernels dispatch on), `layouts.inc`
(peasm.layouts: the app's structs), `tokenizer_layouts.inc` and
`vocab_tables.inc` (peasm.tokenizer_layouts: the GGUF tokenizer's structs, codes, messages and
pre-tokenizer names), `unicode_table.inc` (peasm.unicode_table: Unicode classes, GPT-2's byte map).
"""
from __future__ import annotations

from . import ggml, layouts, tokenizer_layouts, uefi, unicode_table


def includes() -> dict:
    return {
        "uefi.inc": uefi.render_include(),
        "ggml.inc": ggml.render_include(),
        "ggml_table.inc": ggml.render_table(),
        "layouts.inc": layouts.render_include(),
        "tokenizer_layouts.inc": tokenizer_layouts.render_include(),
        "vocab_tables.inc": tokenizer_layouts.render_tables(),
        "unicode_table.inc": unicode_table.render_include,   # rendered when included (~1 s)
    }
