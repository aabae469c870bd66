"""llama2.c tokenizer: ``tokenizer.bin`` reader/writer, ``encode`` and ``decode`` as run.c does them.

File format (little-endian)
---------------------------
``int32 max_token_length``, then for each token id 0, 1, 2, ...: ``float32 score``,
``int32 length``, ``length`` bytes of the piece (no terminator). The file has no count: the
model header's vocab_size says how many entries to read (:func:`read_tokenizer` reads
``n`` entries, or up to end of file when ``n`` is None).
Ids 0, 1, 2 are ``<unk>``, BOS (piece ``"\\n<s>\\n"``), EOS (``"\\n</s>\\n"``); ids 3..258 are
the byte-fallback pieces ``<0x00>``..``<0xFF>`` (id = byte + 3).

Encoding (llama2.c run.c ``encode``), on the UTF-8 bytes of the text
--------------------------------------------------------------------
1. The text is a C string: it ends at its first NUL byte.
2. If ``bos``: emit BOS (1).
3. If the text is non-empty: emit the id of the piece ``" "`` (the dummy prefix; llama2.c
   adds it unconditionally, even when the text already starts with a space).
4. Split the bytes into groups: a group starts at every byte that is not a UTF-8
   continuation byte (``b & 0xC0 != 0x80``) and takes following continuation bytes while the
   group has fewer than 4 bytes (so a run of stray continuation bytes is cut every 4 bytes,
   and a stray continuation byte at the start forms its own group). For each group: if the
   group's bytes are a piece in the vocab, emit its id; otherwise emit ``b + 3`` for each byte
   (byte fallback).
5. Merge: repeat { over all adjacent pairs (i, i+1) (the BOS token included), look up the
   concatenation of their pieces; among those found, take the one with the highest score,
   the leftmost on ties (strict ``>``, starting from best = -1e10 in float32, so a pair whose
   score is <= -1e10 never merges); replace the pair by that id } until no pair is found.
6. If ``eos``: emit EOS (2).

Decoding (run.c ``decode(prev_token, token)``)
------------------------------------------------
The piece of ``token``; if ``prev_token`` is BOS (1) and the piece starts with a space, drop
that one space; if the piece is ``<0xXX>`` (two hex digits) the result is that single raw
byte. (llama2.c tests this with ``sscanf(piece, "<0x%02hhX>")``, which would also accept a
piece that merely *starts* with ``<0x`` and a hex digit; in both real vocabularies only ids
3..258 start with ``<0x``, so the strict test here is equivalent on real data.)

Printing (run.c ``safe_printf``), see :func:`printable_piece`: an empty piece prints
nothing; a one-byte piece prints only if that byte ``isprint`` or ``isspace`` in the C locale
(0x20..0x7E, or 0x09..0x0D); so raw byte-fallback pieces >= 0x80 (parts of UTF-8 characters)
and control bytes are *not printed* by run.c. Longer pieces print as they are.
"""
from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

UNK, BOS, EOS = 0, 1, 2
BYTE_OFFSET = 3  # id of <0x00>
MERGE_FLOOR = np.float32(-1e10)
_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")


class TokenizerFormatError(ValueError):
    """The bytes are not a valid llama2.c tokenizer file."""


@dataclass
class Tokenizer:
    """Pieces (bytes) and float32 scores, indexed by token id."""

    pieces: list[bytes]
    scores: np.ndarray  # float32, same length as pieces
    max_token_length: int = 0
    _lookup: dict[bytes, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float32)
        if len(self.scores) != len(self.pieces):
            raise ValueError("pieces and scores differ in length")
        if not self.max_token_length:
            self.max_token_length = max((len(p) for p in self.pieces), default=0)
        # llama2.c sorts (piece, id) and bsearches; with unique pieces that is a plain map.
        # With duplicate pieces its answer is unspecified; we keep the lowest id.
        lookup: dict[bytes, int] = {}
        for i, p in enumerate(self.pieces):
            # pieces are C strings in llama2.c: compare up to the first NUL
            lookup.setdefault(p.split(b"\0", 1)[0], i)
        self._lookup = lookup
        self.duplicates = len(lookup) != len(self.pieces)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def lookup(self, piece: bytes) -> int:
        """Id of ``piece`` or -1 (llama2.c ``str_lookup``)."""
        return self._lookup.get(piece, -1)

    # ------------------------------------------------------------------ encode

    def encode(self, text: str | bytes, bos: bool = True, eos: bool = False) -> list[int]:
        """Token ids for ``text`` exactly as llama2.c run.c's ``encode`` (see module doc)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        data = data.split(b"\0", 1)[0]
        tokens: list[int] = []
        if bos:
            tokens.append(BOS)
        if data:
            space = self.lookup(b" ")
            if space < 0:
                raise ValueError("vocab has no ' ' piece for the dummy prefix (llama2.c would emit -1)")
            tokens.append(space)
        for group in utf8_groups(data):
            tid = self.lookup(group)
            if tid >= 0:
                tokens.append(tid)
            else:
                tokens.extend(b + BYTE_OFFSET for b in group)
        self._merge(tokens)
        if eos:
            tokens.append(EOS)
        return tokens

    def _merge(self, tokens: list[int]) -> None:
        pieces, scores, lookup = self.pieces, self.scores, self._lookup
        while True:
            best_score = MERGE_FLOOR
            best_id = best_idx = -1
            for i in range(len(tokens) - 1):
                tid = lookup.get(_cstr(pieces[tokens[i]]) + _cstr(pieces[tokens[i + 1]]), -1)
                if tid != -1 and scores[tid] > best_score:
                    best_score, best_id, best_idx = scores[tid], tid, i
            if best_idx == -1:
                return
            tokens[best_idx: best_idx + 2] = [best_id]

    # ------------------------------------------------------------------ decode

    def decode(self, prev_token: int, token: int) -> bytes:
        """Bytes run.c's ``decode(prev_token, token)`` returns (before safe_printf)."""
        piece = _cstr(self.pieces[token])
        if prev_token == BOS and piece[:1] == b" ":
            piece = piece[1:]
        m = _BYTE_PIECE.fullmatch(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece

    def decode_ids(self, tokens: Sequence[int], prev: int = BOS) -> bytes:
        """Concatenated ``decode`` of a token sequence, each piece after its predecessor
        (the first after ``prev``). Nothing is filtered (compare :func:`printable_piece`)."""
        out = bytearray()
        for t in tokens:
            out += self.decode(prev, t)
            prev = t
        return bytes(out)

    # ------------------------------------------------------------------ io

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        write_tokenizer(self, buf)
        return buf.getvalue()


def _cstr(b: bytes) -> bytes:
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def utf8_groups(data: bytes) -> list[bytes]:
    """Split bytes the way llama2.c's encode loop does (step 4 of the module doc)."""
    groups: list[bytes] = []
    cur = bytearray()
    n = len(data)
    for i, b in enumerate(data):
        if (b & 0xC0) != 0x80:
            cur = bytearray()
        cur.append(b)
        nxt = data[i + 1] if i + 1 < n else 0  # the C string's NUL terminator
        if (nxt & 0xC0) == 0x80 and len(cur) < 4:
            continue
        groups.append(bytes(cur))
        cur = bytearray()
    return groups


def printable_piece(piece: bytes) -> bytes:
    """What run.c's ``safe_printf`` writes for a decoded piece (module doc, "Printing")."""
    if not piece:
        return b""
    if len(piece) == 1:
        b = piece[0]
        if not (0x20 <= b <= 0x7E or 0x09 <= b <= 0x0D):
            return b""
    return piece


# ----------------------------------------------------------------------------- file io

def read_tokenizer(src: str | Path | bytes, n: int | None = None) -> Tokenizer:
    """Read ``n`` entries (all until EOF if None). Raises TokenizerFormatError if truncated,
    a length is negative, or ``n`` entries are not present."""
    data = Path(src).read_bytes() if isinstance(src, (str, Path)) else bytes(src)
    if len(data) < 4:
        raise TokenizerFormatError("shorter than the max_token_length field")
    (mtl,) = struct.unpack_from("<i", data, 0)
    off = 4
    pieces: list[bytes] = []
    scores: list[float] = []
    while (n is None and off < len(data)) or (n is not None and len(pieces) < n):
        if off + 8 > len(data):
            raise TokenizerFormatError(f"truncated at entry {len(pieces)} (offset {off})")
        score, length = struct.unpack_from("<fi", data, off)
        off += 8
        if length < 0 or off + length > len(data):
            raise TokenizerFormatError(f"entry {len(pieces)}: bad length {length} at offset {off - 4}")
        pieces.append(data[off: off + length])
        scores.append(score)
        off += length
    return Tokenizer(pieces, np.array(scores, dtype=np.float32), max_token_length=mtl)


def write_tokenizer(tok: Tokenizer, dst: str | Path | BinaryIO) -> None:
    if isinstance(dst, (str, Path)):
        with open(dst, "wb") as f:
            write_tokenizer(tok, f)
        return
    dst.write(struct.pack("<i", tok.max_token_length))
    for piece, score in zip(tok.pieces, tok.scores):
        dst.write(struct.pack("<fi", float(score), len(piece)))
        dst.write(piece)


#: Kinds understood by :func:`corrupt_tokenizer_bytes`.
TOKENIZER_CORRUPTIONS = ("empty", "short", "truncated_piece", "negative_length", "huge_length",
                         "missing_entries")


def corrupt_tokenizer_bytes(good: bytes | Tokenizer, kind: str) -> bytes:
    """A broken tokenizer file derived from a good one. :func:`read_tokenizer` raises
    TokenizerFormatError on each when asked for the good file's entry count.

    ``short``: 2 bytes; ``truncated_piece``: cut inside the last piece; ``negative_length``
    / ``huge_length``: the first entry's length field is -1 / 2**31-1; ``missing_entries``:
    the last entry removed (fewer entries than the model's vocab_size).
    """
    data = good.to_bytes() if isinstance(good, Tokenizer) else bytes(good)
    if kind == "empty":
        return b""
    if kind == "short":
        return data[:2]
    if kind == "truncated_piece":
        return data[:-1]
    if kind in ("negative_length", "huge_length"):
        v = -1 if kind == "negative_length" else 2**31 - 1
        return data[:8] + struct.pack("<i", v) + data[12:]
    if kind == "missing_entries":
        tok = read_tokenizer(data)
        return Tokenizer(tok.pieces[:-1], tok.scores[:-1], tok.max_token_length).to_bytes()
    raise ValueError(f"unknown corruption {kind!r}; choose from {TOKENIZER_CORRUPTIONS}")


# ----------------------------------------------------------------------------- synthetic vocab

_COMMON = [
    b" t", b"he", b" a", b" s", b" w", b"nd", b" the", b"ed", b" to", b" b", b" and", b" h",
    b"in", b" f", b" wa", b" T", b"re", b"it", b" c", b"ou", b" l", b" d", b" p", b" m",
    b"er", b" was", b" The", b"ing", b"an", b" o", b" n", b"on", b"ll", b"ay", b" he", b" g",
    b"is", b" i", b"ar", b"om", b"en",
]


def make_tokenizer(vocab_size: int = 300) -> Tokenizer:
    """A deterministic llama2.c-style vocab of any size >= 259, for random models and tests.

    Layout: 0 ``<unk>``, 1 ``\\n<s>\\n``, 2 ``\\n</s>\\n``, 3..258 ``<0xXX>`` (score 0), then
    candidates in this order, each added only if new and either a single byte or the
    concatenation of two pieces already present (so every multi-byte piece is reachable by
    merges, as in BPE): ``" "``, ``a``..``z``, ``"."``, ``"\\n"``, common English pieces
    (``" t"``, ``"he"``, ``" the"``...), the rest of printable ASCII, the common pieces again,
    then ``" w0"``, ``" w1"``, ... (``" w12"`` = ``" w1"`` + ``"2"``) until the size is reached.
    Added piece number i (0-based after the byte pieces) gets score ``-i``. With
    vocab_size 300 the vocab has the 29 single characters and 12 merges.
    """
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    n_fixed = len(pieces)
    if vocab_size < n_fixed:
        raise ValueError(f"vocab_size must be >= {n_fixed}")
    have = set(pieces)
    extra: list[bytes] = []

    def offer(p: bytes) -> None:
        if len(extra) + n_fixed >= vocab_size or p in have:
            return
        if len(p) > 1 and not any(p[:c] in have and p[c:] in have for c in range(1, len(p))):
            return
        extra.append(p)
        have.add(p)

    for p in [b" "] + [bytes([c]) for c in range(ord("a"), ord("z") + 1)] + [b".", b"\n"]:
        offer(p)
    for p in _COMMON:
        offer(p)
    for c in list(range(0x21, 0x7F)) + [0x09]:
        offer(bytes([c]))
    for p in _COMMON:
        offer(p)
    k = 0
    while len(extra) + n_fixed < vocab_size:
        offer(b" w" + str(k).encode())
        k += 1
    scores = [0.0] * n_fixed + [-float(i) for i in range(len(extra))]
    return Tokenizer(pieces + extra, np.array(scores, dtype=np.float32))
