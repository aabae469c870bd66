"""The GGUF tokenizer's layouts and constants, declared once: generated as
`tokenizer_layouts.inc` for app_asm/vocab.s, bpe.s, pretok.s, unicode.s and read by the tests.

VOCAB_SOURCE is what the session fills from GGUF metadata (keys `tokenizer.ggml.*`, GGUF
value type numbers as in the GGUF spec) before vocab_build: for an array, a pointer to its
first element inside the loaded file image (a string array is COUNT x {u64 length, bytes},
already bounds-checked by the GGUF reader), the element count and the element type; 0
pointer = key absent. Scalars: NO_ID (0xFFFFFFFF) = absent.

VOCAB is the built tokenizer (caller-allocated, VOCAB_SIZE bytes); its arrays live in the
workspace vocab_workspace_bytes sizes. Contracts: app_asm/vocab.inc.
"""
from __future__ import annotations

from . import unicode_table
from .uefi import declare as _s


VOCAB_SOURCE = _s(
    "VOCAB_SOURCE",
    "MODEL:ptr", "MODEL_LEN:u64",          # tokenizer.ggml.model (string bytes)
    "PRE:ptr", "PRE_LEN:u64",              # tokenizer.ggml.pre (0 = absent: "default")
    "TOKENS:ptr", "N_TOKENS:u64",          # tokenizer.ggml.tokens
    "SCORES:ptr", "N_SCORES:u64",          # tokenizer.ggml.scores (f32)
    "TOKEN_TYPE:ptr", "N_TOKEN_TYPE:u64",  # tokenizer.ggml.token_type (i32)
    "MERGES:ptr", "N_MERGES:u64",          # tokenizer.ggml.merges ("a b" strings)
    "TOKENS_TYPE:u32", "SCORES_TYPE:u32", "TOKEN_TYPE_TYPE:u32", "MERGES_TYPE:u32",
    "BOS_ID:u32", "EOS_ID:u32", "UNK_ID:u32",   # tokenizer.ggml.{bos,eos,unknown}_token_id
    "ADD_BOS:u32",                         # tokenizer.ggml.add_bos_token: 0, 1 or NO_ID
    "ADD_SPACE_PREFIX:u32",                # tokenizer.ggml.add_space_prefix: 0, 1 or NO_ID
)

VOCAB = _s(
    "VOCAB",
    "MAGIC:u32",            # VOCAB_MAGIC_VALUE once built
    "KIND:u32",             # VOCAB_KIND_*
    "N_VOCAB:u32",
    "BOS_ID:u32", "EOS_ID:u32", "UNK_ID:u32",   # NO_ID = none
    "ADD_BOS:u32",          # what the vocabulary asks for (the session decides)
    "ADD_SPACE_PREFIX:u32",
    "PRE:u32",              # PRE_* (BPE)
    "IGNORE_MERGES:u32",    # BPE: a word that is a whole token is that token (llama3)
    "N_SPECIALS:u32",
    "TOK_HASH_MASK:u32",    # slots - 1
    "MERGE_HASH_MASK:u32",
    "N_MERGES:u32",
    "TEXT_COPIES:ptr",      # the workspace room for the token texts (and DEC_COPIES, SPM_WS)
    "DEC_COPIES:ptr",
    "SPM_WS:ptr", "SPM_WS_SIZE:u64",
    "TEXT:ptr",             # -> u64[n]: token text as stored (NUL-terminated copies)
    "TEXT_LEN:ptr",         # -> u32[n]
    "DEC:ptr",              # -> u64[n]: decoded bytes (BPE)
    "DEC_LEN:ptr",          # -> u32[n]
    "TYPES:ptr",            # -> u8[n]: GGUF token types (1 normal, 3 control, 4 user-defined, 6 byte)
    "TOK_HASH:ptr",         # -> u32[slots]: id + 1, 0 = empty (open addressing, linear probe)
    "MERGE_HASH:ptr",       # -> MERGE_SLOT[slots]
    "BYTE_TOKEN:ptr",       # -> i32[256]: the token of each byte's GPT-2 character, -1 none
    "SPECIALS:ptr",         # -> u32[N_SPECIALS]: control/user-defined ids, longest text first
    "CPS:ptr",              # scratch -> u32[SLOTS]: code points of a fragment
    "CPF:ptr",              # scratch -> u8[SLOTS]: their UC_* flags
    "OFFS:ptr",             # scratch -> u32[SLOTS]: byte offset of each code point (+ end)
    "BND_A:ptr", "BND_B:ptr",  # scratch -> u32[SLOTS]: word boundaries (code point indices)
    "SYM:ptr", "NEXT:ptr", "PREV:ptr", "STAMP:ptr",   # scratch -> i32[SLOTS]: BPE symbols
    "HEAP:ptr",             # scratch -> 3 * SLOTS entries of 16 bytes
    "MAPBUF:ptr",           # scratch -> 2 * SLOTS bytes: a word in GPT-2 characters
    "FRAG_A:ptr", "FRAG_B:ptr",  # scratch -> FRAG[SLOTS]: the special-token partition
    "PROTECT:ptr",          # vocab_encode with VOCAB_ENCODE_PROTECT: u32 [start, end) byte ranges
    "N_PROTECT:u32",        #   of the text (sorted, disjoint) where no special is matched
    ("ERROR_TEXT", "u8", 192),   # vocab_build's one-line message (NUL-terminated)
    ("SPM", "u8", 160),     # the SentencePiece Tokenizer struct (tokenizer.inc, TOK_SIZE)
)

MERGE_SLOT = _s("MERGE_SLOT", "LEFT:u32", "RIGHT:u32", "RANK:u32", "RESULT:u32")   # RANK NO_ID = empty
FRAG = _s("FRAG", "START:u32", "END:u32", "ID:u32")    # ID NO_ID = raw text [START, END)

STRUCTS = {s.name: s for s in (VOCAB_SOURCE, VOCAB, MERGE_SLOT, FRAG)}

# (name, value) constants
CONSTANTS = {
    "VOCAB_MAGIC_VALUE": 0x42434F56,     # "VOCB"
    "VOCAB_MAGIC_BUILDING": 0x444C4942,  # "BILD": vocab_build's token hash is usable
    "VOCAB_FNV_BASIS": 0x811C9DC5,       # FNV-1a 32-bit offset basis (the token hash)
    "NO_ID": 0xFFFFFFFF,
    "VOCAB_KIND_SPM": 1, "VOCAB_KIND_BPE": 2,
    "PRE_GPT2": 1, "PRE_LLAMA3": 2, "PRE_QWEN2": 3, "PRE_SMOLLM": 4, "PRE_DEFAULT": 5,
    "TT_NORMAL": 1, "TT_UNKNOWN": 2, "TT_CONTROL": 3, "TT_USER_DEFINED": 4, "TT_UNUSED": 5,
    "TT_BYTE": 6,
    "GGUF_TYPE_UINT32": 4, "GGUF_TYPE_INT32": 5, "GGUF_TYPE_FLOAT32": 6, "GGUF_TYPE_STRING": 8,
    "VOCAB_ENCODE_BOS": 1,       # vocab_encode flags: BOS first
    "VOCAB_PARSE_SPECIAL": 2,    # control tokens' texts become their ids
    "VOCAB_ENCODE_PROTECT": 4,          # ... except inside the PROTECT ranges (text a person typed)
    "FRAG_PROTECTED": 0xFFFFFFFE,  # a fragment's ID: raw text no special may be cut out of
    "VOCAB_MAX_TOKENS": 1 << 20,
    "VOCAB_MAX_MERGES": 1 << 22,
    "VOCAB_MAX_TEXT": 65536,     # vocab_encode's text limit (bytes)
    "VOCAB_SLOTS": 65536 + 16,   # scratch entries per array
    "VOCAB_MAX_PIECE": 65535,    # BPE token text limit (SPM: tokenizer.inc's TOK_MAX_TOKEN_LEN)
}

# tokenizer.ggml.pre values and the pre-tokenizer each selects (llama.cpp's names)
PRE_NAMES = {
    "default": "PRE_DEFAULT",
    "gpt2": "PRE_GPT2", "gpt-2": "PRE_GPT2", "phi-2": "PRE_GPT2",
    "llama3": "PRE_LLAMA3", "llama-v3": "PRE_LLAMA3", "llama-bpe": "PRE_LLAMA3",
    "qwen2": "PRE_QWEN2",
    "smollm": "PRE_SMOLLM", "starcoder": "PRE_SMOLLM",
}

# status codes (vocab_build returns them; vocab_encode returns them negated) and messages
ERRORS = [
    ("VOCAB_OK", "tokenizer: ok"),
    ("VOCAB_E_MODEL", "tokenizer: unknown tokenizer.ggml.model"),
    ("VOCAB_E_PRE", "tokenizer: unknown tokenizer.ggml.pre"),
    ("VOCAB_E_TOKENS", "tokenizer: tokenizer.ggml.tokens missing, empty, too long or not strings"),
    ("VOCAB_E_SCORES", "tokenizer: tokenizer.ggml.scores missing, not float32 or its length differs from the tokens'"),
    ("VOCAB_E_TYPES", "tokenizer: tokenizer.ggml.token_type not int32 or its length differs from the tokens'"),
    ("VOCAB_E_MERGES", "tokenizer: tokenizer.ggml.merges missing, not strings or too many"),
    ("VOCAB_E_MERGE_SPACE", "tokenizer: a merge in tokenizer.ggml.merges has no space"),
    ("VOCAB_E_EMPTY_TOKEN", "tokenizer: an empty token in tokenizer.ggml.tokens"),
    ("VOCAB_E_DUP_TOKEN", "tokenizer: a token appears twice in tokenizer.ggml.tokens"),
    ("VOCAB_E_LONG_TOKEN", "tokenizer: a token is too long"),
    ("VOCAB_E_SPECIAL_ID", "tokenizer: a BOS, EOS or unknown token id is out of range"),
    ("VOCAB_E_BYTE_TOKENS", "tokenizer: the byte tokens <0x00>..<0xFF> are not consecutive ids"),
    ("VOCAB_E_WORKSPACE", "tokenizer: workspace too small"),
    ("VOCAB_E_CAPACITY", "tokenizer: too many tokens for the output buffer"),
    ("VOCAB_E_TEXT_TOO_LONG", "tokenizer: text too long (over 65536 bytes)"),
    ("VOCAB_E_NOT_LOADED", "tokenizer: not loaded"),
    ("VOCAB_E_SPM", "tokenizer: the SentencePiece encoder failed"),
]
ERROR_CODES = {name: i for i, (name, _) in enumerate(ERRORS)}


def render_include() -> str:
    names = [f"{s.name}_{n}" for s in STRUCTS.values() for n in s.layout()[0]]
    names += list(CONSTANTS) + list(unicode_table.FLAGS) + list(ERROR_CODES)
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"tokenizer_layouts: names declared twice: {sorted(dup)}"
    lines = ["# Generated by peasm.tokenizer_layouts from its declarations; do not edit.", ""]
    for s in STRUCTS.values():
        lines += s.equ_lines()
    for k, v in {**CONSTANTS, **unicode_table.FLAGS}.items():
        lines.append(f".equ {k}, {v}")
    for name, code in ERROR_CODES.items():
        lines.append(f".equ {name}, {code}")
        if code:
            lines.append(f".equ VNEG_{name[8:]}, {-code}")
    lines.append(f".equ VOCAB_E_LAST, {len(ERRORS) - 1}")
    lines.append(f".equ VOCAB_FRAME, {(VOCAB.size + 15) // 16 * 16 + 16}   # a VOCAB on the stack, 16-aligned")
    return "\n".join(lines) + "\n"


def render_tables() -> str:
    """vocab_messages (NUL-terminated, in code order) and vocab_pre_names
    ({u8 length, bytes, u8 PRE_*} ..., u8 0): .rdata for app_asm/vocab.s."""
    lines = ["# Generated by peasm.tokenizer_layouts; do not edit.", ".section .rdata",
             "vocab_messages:"]
    for _, msg in ERRORS:
        lines.append(f'    .asciz "{msg}"')
    lines.append("vocab_pre_names:")
    for name, kind in PRE_NAMES.items():
        lines.append(f'    .byte {len(name)}')
        lines.append(f'    .ascii "{name}"')
        lines.append(f'    .byte {kind}')
    lines.append("    .byte 0")
    return "\n".join(lines) + "\n"
