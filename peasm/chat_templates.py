"""Chat templates as data, declared once: generated into `chat_templates.inc` (constants, the
row layout, the .rdata table, its string pool and the detection list) for app_asm/template.s,
and read by the tests.

A row describes how one chat format turns a conversation into text (the tokenizer, with
special tokens parsed, then turns control-token texts such as "<|im_start|>" into single ids):

    [BOS] [SYSTEM_PREFIX system SYSTEM_SUFFIX]               (a system turn, unless SYS_IN_USER)
    USER_PREFIX [SYSTEM_PREFIX system SYSTEM_SUFFIX] user USER_SUFFIX GENERATION_PROMPT
    ASSISTANT_PREFIX reply ASSISTANT_SUFFIX                   (a reply already in the history)
    USER_PREFIX user USER_SUFFIX GENERATION_PROMPT ...

SYS_IN_USER: the format has no system turn; the system text goes inside the first user turn
(Llama 2's <<SYS>> block, Mistral's and Gemma's "system\\n\\n" before the first user text).
TRIM: user and reply texts lose leading and trailing ASCII whitespace, as the templates'
`content.strip()` / `| trim` do (the first user text keeps its leading whitespace when the
system text is folded in front of it, as the template strips the joined string).
BOS_IN_TEXT: the rendered text already starts (or every user turn starts) with the BOS
token's text, so the session must not add a BOS id of its own.
STOP0/STOP1: the end-of-turn texts that end a reply (the session looks up their token ids).

The texts are the ones each model's own Jinja template (its tokenizer_config.json
`chat_template`, or the GGUF's `tokenizer.chat_template`) renders; tests/test_app_template.py
renders the same conversations with jinja2 from those templates and requires equal text.

Detection (template_detect) reads a GGUF's `tokenizer.chat_template` the way llama.cpp's
llm_chat_detect_template does: distinctive substrings, tried in order, first match wins.
"""
from __future__ import annotations

from dataclasses import dataclass

from .layouts import AppStruct, _s

FIELDS = ("NAME", "BOS", "SYSTEM_PREFIX", "SYSTEM_SUFFIX", "USER_PREFIX", "USER_SUFFIX",
          "ASSISTANT_PREFIX", "ASSISTANT_SUFFIX", "GENERATION_PROMPT", "STOP0", "STOP1")
F_SYS_IN_USER = 1
F_TRIM = 2
F_BOS_IN_TEXT = 4       # the rendered text carries the BOS token's text: the session adds no BOS


@dataclass(frozen=True)
class Template:
    name: str
    bos: str = ""
    system_prefix: str = ""
    system_suffix: str = ""
    user_prefix: str = ""
    user_suffix: str = ""
    assistant_prefix: str = ""
    assistant_suffix: str = ""
    generation_prompt: str = ""
    stop0: str = ""
    stop1: str = ""
    flags: int = 0

    def text(self, field: str) -> str:
        return getattr(self, field.lower())


# Row ids are the `chat_format` setting's values; raw and you_ai keep their old numbers.
TEMPLATES: tuple[Template, ...] = (
    Template("raw"),
    Template("you_ai", user_prefix="You: ", user_suffix="\nAI:"),
    Template("chatml", system_prefix="<|im_start|>system\n", system_suffix="<|im_end|>\n",
             user_prefix="<|im_start|>user\n", user_suffix="<|im_end|>\n",
             assistant_suffix="<|im_end|>\n", generation_prompt="<|im_start|>assistant\n",
             stop0="<|im_end|>", stop1="<|endoftext|>"),
    Template("llama2", system_prefix="<<SYS>>\n", system_suffix="\n<</SYS>>\n\n",
             user_prefix="<s>[INST] ", user_suffix=" [/INST]",
             assistant_prefix=" ", assistant_suffix=" </s>", stop0="</s>",
             flags=F_SYS_IN_USER | F_TRIM | F_BOS_IN_TEXT),
    Template("llama3", bos="<|begin_of_text|>",
             system_prefix="<|start_header_id|>system<|end_header_id|>\n\n",
             system_suffix="<|eot_id|>",
             user_prefix="<|start_header_id|>user<|end_header_id|>\n\n", user_suffix="<|eot_id|>",
             generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
             assistant_suffix="<|eot_id|>", stop0="<|eot_id|>", stop1="<|end_of_text|>",
             flags=F_TRIM | F_BOS_IN_TEXT),
    Template("zephyr", system_prefix="<|system|>\n", system_suffix="</s>\n",
             user_prefix="<|user|>\n", user_suffix="</s>\n",
             generation_prompt="<|assistant|>\n", assistant_suffix="</s>\n", stop0="</s>"),
    Template("phi3", system_prefix="<|system|>\n", system_suffix="<|end|>\n",
             user_prefix="<|user|>\n", user_suffix="<|end|>\n",
             generation_prompt="<|assistant|>\n", assistant_suffix="<|end|>\n",
             stop0="<|end|>", stop1="<|endoftext|>"),
    Template("gemma", bos="<bos>", system_suffix="\n\n",
             user_prefix="<start_of_turn>user\n", user_suffix="<end_of_turn>\n",
             generation_prompt="<start_of_turn>model\n", assistant_suffix="<end_of_turn>\n",
             stop0="<end_of_turn>", stop1="<eos>", flags=F_SYS_IN_USER | F_TRIM | F_BOS_IN_TEXT),
    Template("mistral", bos="<s>", system_suffix="\n\n",
             user_prefix=" [INST] ", user_suffix=" [/INST]",
             assistant_prefix=" ", assistant_suffix="</s>", stop0="</s>",
             flags=F_SYS_IN_USER | F_BOS_IN_TEXT),
)
ROW = {t.name: i for i, t in enumerate(TEMPLATES)}

# Detection: (row, substrings that must all occur), tried in this order. Facts from llama.cpp's
# llm_chat_detect_template: "<|im_start|>" is chatml; "<|start_header_id|>" with
# "<|end_header_id|>" is Llama 3; "<start_of_turn>" is Gemma; "[INST]" is the Llama 2 family,
# with "<<SYS>>" for Llama 2 itself, without it Mistral; "<|assistant|>" with "<|end|>" is
# Phi-3; "<|user|>" with "<|assistant|>" (and an end-of-sequence token, not Phi-3's <|end|>)
# is Zephyr (TinyLlama-Chat).
DETECT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chatml", ("<|im_start|>",)),
    ("llama3", ("<|start_header_id|>", "<|end_header_id|>")),
    ("gemma", ("<start_of_turn>",)),
    ("llama2", ("[INST]", "<<SYS>>")),
    ("mistral", ("[INST]",)),
    ("phi3", ("<|assistant|>", "<|end|>")),
    ("zephyr", ("<|user|>", "<|assistant|>", "eos_token")),
)
DETECT_NEEDLES = 3

# One row: each field a u32 = pool offset | length << 16; then FLAGS.
CHAT_TEMPLATE = _s("CHAT_TEMPLATE", *(f"{f}:u32" for f in FIELDS), "FLAGS:u32")
# One detection entry: the row, then up to DETECT_NEEDLES strings (u32 as above; length 0: unused).
CHAT_DETECT = _s("CHAT_DETECT", "ROW:u32", ("NEEDLE", "u32", DETECT_NEEDLES))
# template_render_turn's argument: one new user turn and the generation prompt.
CHAT_TURN = _s("CHAT_TURN",
               "ROW:u32",
               "FLAGS:u32",        # CHAT_TURN_F_*
               "SYSTEM:ptr",       # the system text (used with CHAT_TURN_F_FIRST), or 0
               "SYSTEM_LEN:u64",   # 0: no system turn
               "TEXT:ptr",         # the user's text
               "TEXT_LEN:u64")
# template_render's argument: a whole conversation. MESSAGES alternate user, assistant, user...
CHAT_CONV = _s("CHAT_CONV",
               "ROW:u32", "N_MESSAGES:u32",
               "SYSTEM:ptr", "SYSTEM_LEN:u64",
               "MESSAGES:ptr")     # N_MESSAGES CHAT_MSG
CHAT_MSG = _s("CHAT_MSG", "TEXT:ptr", "LEN:u64")
STRUCTS: tuple[AppStruct, ...] = (CHAT_TEMPLATE, CHAT_DETECT, CHAT_TURN, CHAT_CONV, CHAT_MSG)

CONSTANTS: dict[str, int] = {
    **{f"CHAT_{t.name.upper()}": i for i, t in enumerate(TEMPLATES)},
    "CHAT_N_TEMPLATES": len(TEMPLATES),
    "CHAT_AUTO": len(TEMPLATES),       # the chat_format setting: the model's own format
    "CHAT_NONE": 0xFFFF_FFFF,          # template_detect / template_find: no row
    "CHAT_F_SYS_IN_USER": F_SYS_IN_USER,
    "CHAT_F_TRIM": F_TRIM,
    "CHAT_F_BOS_IN_TEXT": F_BOS_IN_TEXT,
    "CHAT_N_DETECT": len(DETECT),
    "CHAT_DETECT_NEEDLES": DETECT_NEEDLES,
    "CHAT_TURN_F_FIRST": 1,            # the conversation starts here: BOS and the system text
    "CHAT_TURN_F_AFTER_REPLY": 2,      # close the reply before it (ASSISTANT_SUFFIX) first
    "CHAT_E_SPACE": -1,                # the text does not fit the caller's buffer
    "CHAT_E_ROW": -2,                  # no such row
}


class Pool:
    """The string pool: each distinct text once; offsets and lengths fit u16."""

    def __init__(self):
        self.data = bytearray()
        self.at: dict[bytes, int] = {}

    def ref(self, text: str) -> int:
        b = text.encode("utf-8")
        if not b:
            return 0
        if b not in self.at:
            self.at[b] = len(self.data)
            self.data += b
        off = self.at[b]
        assert off < 1 << 16 and len(b) < 1 << 16
        return off | len(b) << 16


def tables() -> tuple[list[list[int]], list[list[int]], bytes]:
    """(rows of u32 words, detection entries of u32 words, pool bytes)."""
    pool = Pool()
    rows = [[pool.ref(t.text(f)) for f in FIELDS] + [t.flags] for t in TEMPLATES]
    detect = []
    for name, needles in DETECT:
        refs = [pool.ref(n) for n in needles] + [0] * (DETECT_NEEDLES - len(needles))
        detect.append([ROW[name]] + refs)
    return rows, detect, bytes(pool.data)


def render_include() -> str:
    lines = ["# Generated by peasm.chat_templates from its declarations; do not edit.", ""]
    for s in STRUCTS:
        offsets, size, _ = s.layout()
        for name, off in offsets.items():
            lines.append(f".equ {s.name}_{name}, {off}")
        lines.append(f".equ {s.name}_SIZE, {size}")
    for name, value in CONSTANTS.items():
        lines.append(f".equ {name}, {value}")
    return "\n".join(lines) + "\n"


def render_table() -> str:
    """`chat_table.inc`: the rows, the detection list and the pool, in .rdata."""
    rows, detect, pool = tables()
    lines = ["# Generated by peasm.chat_templates from its declarations; do not edit.",
             ".section .rdata", ".balign 4, 0", "chat_template_table:"]
    for t, words in zip(TEMPLATES, rows):
        lines.append(f"    .long {', '.join(str(w) for w in words)}    # {t.name}")
    lines.append("chat_detect_table:")
    for (name, _), words in zip(DETECT, detect):
        lines.append(f"    .long {', '.join(str(w) for w in words)}    # {name}")
    lines.append("chat_template_pool:")
    for i in range(0, len(pool), 16):
        lines.append("    .byte " + ", ".join(str(b) for b in pool[i:i + 16]))
    lines.append(".balign 4, 0")
    # the chat_format setting's names, in row order, then "auto" (= CHAT_AUTO): "a\0b\0\0"
    lines.append(".global chat_format_names")
    lines.append("chat_format_names:")
    for t in TEMPLATES:
        lines.append(f'    .asciz "{t.name}"')
    lines.append('    .asciz "auto"')
    lines.append("    .byte 0")
    lines.append(".balign 4, 0")
    return "\n".join(lines) + "\n"
