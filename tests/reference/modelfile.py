"""llama2.c ``.bin`` model files: reader, writer, random-weight generator, corrupt variants.

File format (all little-endian)
-------------------------------
Header: seven int32 ``dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len``.
A *negative* ``vocab_size`` means the classifier is *unshared*: the real vocabulary size is
``abs(vocab_size)`` and a separate ``wcls`` tensor follows at the end of the file. A positive
``vocab_size`` means the classifier is the token-embedding table itself.

Derived sizes: ``head_size = dim // n_heads``, ``kv_dim = dim * n_kv_heads // n_heads``
(= ``n_kv_heads * head_size``), ``kv_mul = n_heads // n_kv_heads`` (query heads per KV head).

Body: float32 tensors, row-major, in this order (L = n_layers, V = vocab, D = dim,
H = hidden_dim, K = kv_dim, S = seq_len, hs = head_size)::

    token_embedding (V, D)
    rms_att         (L, D)
    wq              (L, D, D)      q = wq[l] @ x
    wk              (L, K, D)
    wv              (L, K, D)
    wo              (L, D, D)
    rms_ffn         (L, D)
    w1              (L, H, D)      gate
    w2              (L, D, H)      down
    w3              (L, H, D)      up
    rms_final       (D,)
    freq_cis_real   (S, hs/2)      legacy RoPE table, cos(pos * freq_j); readers skip it
    freq_cis_imag   (S, hs/2)      legacy RoPE table, sin(pos * freq_j); readers skip it
    wcls            (V, D)         only when vocab_size < 0 in the header

llama2.c's reader skips the two RoPE tables (it recomputes the rotation) and ignores bytes
after the last tensor. :func:`read_model` does the same but, unlike llama2.c, *validates*
the header and the file size so corrupt files raise :class:`ModelFormatError`.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

HEADER = struct.Struct("<7i")
HEADER_SIZE = HEADER.size  # 28

#: Names of the tensors in file order (freq_cis_* and wcls included; wcls only if unshared).
TENSOR_ORDER = (
    "token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
    "rms_final", "freq_cis_real", "freq_cis_imag", "wcls",
)


class ModelFormatError(ValueError):
    """The bytes are not a valid llama2.c model (bad header or wrong size)."""


@dataclass(frozen=True)
class Config:
    """The header, with ``vocab_size`` always positive and the sign moved to ``shared_classifier``."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool = True

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.dim * self.n_kv_heads // self.n_heads

    @property
    def kv_mul(self) -> int:
        return self.n_heads // self.n_kv_heads

    def header_ints(self) -> tuple[int, ...]:
        v = self.vocab_size if self.shared_classifier else -self.vocab_size
        return (self.dim, self.hidden_dim, self.n_layers, self.n_heads, self.n_kv_heads, v, self.seq_len)

    def header_bytes(self) -> bytes:
        return HEADER.pack(*self.header_ints())

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every tensor in file order (wcls only when unshared)."""
        L, V, D, H, K, S = (self.n_layers, self.vocab_size, self.dim, self.hidden_dim,
                            self.kv_dim, self.seq_len)
        half = self.head_size // 2
        shapes = [
            ("token_embedding", (V, D)), ("rms_att", (L, D)), ("wq", (L, D, D)),
            ("wk", (L, K, D)), ("wv", (L, K, D)), ("wo", (L, D, D)), ("rms_ffn", (L, D)),
            ("w1", (L, H, D)), ("w2", (L, D, H)), ("w3", (L, H, D)), ("rms_final", (D,)),
            ("freq_cis_real", (S, half)), ("freq_cis_imag", (S, half)),
        ]
        if not self.shared_classifier:
            shapes.append(("wcls", (V, D)))
        return shapes

    def n_floats(self) -> int:
        return sum(int(np.prod(s)) for _, s in self.tensor_shapes())

    def file_size(self) -> int:
        """Exact byte size of a file with this header (28 + 4 * floats)."""
        return HEADER_SIZE + 4 * self.n_floats()

    def n_params(self) -> int:
        """Parameters actually used by inference (no RoPE tables; shared wcls counted once)."""
        return sum(int(np.prod(s)) for n, s in self.tensor_shapes() if not n.startswith("freq_cis"))

    def check(self) -> None:
        """Raise ModelFormatError unless the header describes a runnable model.

        Rules: every field > 0; ``dim % n_heads == 0``; ``n_heads % n_kv_heads == 0``
        (so n_kv_heads <= n_heads); ``head_size`` even (RoPE rotates pairs).
        """
        for name in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"):
            if getattr(self, name) <= 0:
                raise ModelFormatError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise ModelFormatError(f"dim {self.dim} not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ModelFormatError(f"n_heads {self.n_heads} not divisible by n_kv_heads {self.n_kv_heads}")
        if self.head_size % 2:
            raise ModelFormatError(f"head_size {self.head_size} is odd")

    @classmethod
    def from_header(cls, ints: tuple[int, ...]) -> "Config":
        dim, hidden, layers, heads, kv_heads, vocab, seq = ints
        return cls(dim, hidden, layers, heads, kv_heads, abs(vocab), seq, shared_classifier=vocab > 0)


#: Real model shapes (from the published files' headers) plus small test shapes.
SHAPES: dict[str, Config] = {
    "stories260K": Config(64, 172, 5, 8, 4, 512, 512, True),
    "stories15M": Config(288, 768, 6, 6, 6, 32000, 256, True),
    "stories42M": Config(512, 1376, 8, 8, 8, 32000, 1024, True),
    "stories110M": Config(768, 2048, 12, 12, 12, 32000, 1024, True),
    # odd sizes, GQA (kv_mul 3), unshared classifier, head_size 8
    "tiny_gqa": Config(48, 100, 3, 6, 2, 300, 64, False),
    "tiny_gqa512": Config(48, 100, 3, 6, 2, 512, 64, False),
    # smallest useful: MHA, shared classifier, head_size 4
    "micro": Config(16, 40, 2, 4, 4, 300, 64, True),
}


@dataclass
class Model:
    """A model in memory: ``config`` plus float32 arrays named as in :data:`TENSOR_ORDER`.

    ``wcls`` is the same array object as ``token_embedding`` when the classifier is shared.
    ``freq_cis_real``/``freq_cis_imag`` hold what the file had (or None); the writer
    recomputes them when None.
    """

    config: Config
    token_embedding: np.ndarray
    rms_att: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    rms_ffn: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray
    rms_final: np.ndarray
    wcls: np.ndarray
    freq_cis_real: np.ndarray | None = field(default=None, repr=False)
    freq_cis_imag: np.ndarray | None = field(default=None, repr=False)

    def tensors(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, float32 array) in file order, RoPE tables recomputed if absent."""
        cos = sin = None
        if self.freq_cis_real is None or self.freq_cis_imag is None:
            cos, sin = rope_tables(self.config)
        for name, shape in self.config.tensor_shapes():
            if name == "freq_cis_real":
                arr = self.freq_cis_real if cos is None else cos
            elif name == "freq_cis_imag":
                arr = self.freq_cis_imag if sin is None else sin
            else:
                arr = getattr(self, name)
            arr = np.asarray(arr, dtype=np.float32)
            if arr.shape != shape:
                raise ValueError(f"{name}: shape {arr.shape}, header says {shape}")
            yield name, arr


def rope_tables(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The legacy freq_cis tables as llama2.c's exporter writes them.

    ``freq_j = 1 / 10000 ** (2j / head_size)`` for j in 0..head_size/2-1;
    ``real[p, j] = cos(p * freq_j)``, ``imag[p, j] = sin(p * freq_j)`` for p in 0..seq_len-1
    (computed in float64, stored as float32).
    """
    hs = config.head_size
    freqs = 1.0 / (10000.0 ** (np.arange(0, hs, 2, dtype=np.float64) / hs))
    angles = np.outer(np.arange(config.seq_len, dtype=np.float64), freqs)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


# ----------------------------------------------------------------------------- reading

def read_header(data: bytes) -> Config:
    if len(data) < HEADER_SIZE:
        raise ModelFormatError(f"file is {len(data)} bytes, shorter than the 28-byte header")
    return Config.from_header(HEADER.unpack_from(data, 0))


def read_model(src: str | Path | bytes, *, allow_trailing: bool = True) -> Model:
    """Read a llama2.c model from a path or bytes (arrays are read-only views when from bytes).

    Raises ModelFormatError on a bad header (see :meth:`Config.check`), a file shorter than
    :meth:`Config.file_size`, or (``allow_trailing=False``) a longer one. llama2.c itself
    ignores trailing bytes, hence the default.
    """
    data = Path(src).read_bytes() if isinstance(src, (str, Path)) else bytes(src)
    cfg = read_header(data)
    cfg.check()
    need = cfg.file_size()
    if len(data) < need:
        raise ModelFormatError(f"file is {len(data)} bytes, header needs {need}")
    if len(data) > need and not allow_trailing:
        raise ModelFormatError(f"file is {len(data)} bytes, header needs exactly {need}")
    arrays: dict[str, np.ndarray] = {}
    off = HEADER_SIZE
    for name, shape in cfg.tensor_shapes():
        n = int(np.prod(shape))
        arrays[name] = np.frombuffer(data, dtype="<f4", count=n, offset=off).reshape(shape)
        off += 4 * n
    if cfg.shared_classifier:
        arrays["wcls"] = arrays["token_embedding"]
    return Model(config=cfg, **arrays)


# ----------------------------------------------------------------------------- writing

def write_model(model: Model, dst: str | Path | BinaryIO) -> None:
    """Write ``model`` in llama2.c format (header sign from ``shared_classifier``)."""
    if isinstance(dst, (str, Path)):
        with open(dst, "wb") as f:
            write_model(model, f)
        return
    dst.write(model.config.header_bytes())
    for _name, arr in model.tensors():
        dst.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())


def model_bytes(model: Model) -> bytes:
    buf = io.BytesIO()
    write_model(model, buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- random models

def _random_tensors(cfg: Config, seed: int, std: float) -> Iterator[tuple[str, np.ndarray]]:
    """Deterministic random tensors in file order; each tensor has its own RNG stream.

    Scheme (chosen so activations stay O(1) and greedy output is not degenerate):

    * token_embedding, wcls: N(0, (2/sqrt(dim))^2) -- the logits (classifier row . a
      unit-RMS vector) then have a standard deviation of about 2, so softmax at temperature
      1 is neither flat nor one-hot; and with a shared classifier the current token's own
      embedding (small next to the layers' O(1) updates) does not win every argmax, which
      would repeat one token forever. The rows of ids 0, 1, 2 (<unk>, BOS, EOS) are then
      scaled by 1/8, so a random model rarely emits BOS (which ends run.c's generation).
    * wq, wk, wv, w1, w3: N(0, 1/sqrt(dim)); wo: N(0, 1/sqrt(dim)); w2: N(0, 1/sqrt(hidden))
      -- unit-gain projections, so every layer moves the residual stream by O(1) and the
      next token depends on context, not only on the current token.
    * rms_att, rms_ffn, rms_final: 1 + N(0, 0.1).

    ``std`` multiplies the projection scales (1.0 = the scheme above; e.g. 0.02*sqrt(dim)
    gives the classic N(0, 0.02) init).
    """
    ss = np.random.SeedSequence(seed)
    children = ss.spawn(len(TENSOR_ORDER))
    cos, sin = rope_tables(cfg)
    for (name, shape), child in zip(cfg.tensor_shapes(), children):
        rng = np.random.default_rng(child)
        if name in ("token_embedding", "wcls"):
            arr = rng.standard_normal(shape, dtype=np.float32)
            arr *= np.float32(2.0 / np.sqrt(cfg.dim))
            arr[:3] *= np.float32(0.125)
        elif name.startswith("rms"):
            arr = (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        elif name == "freq_cis_real":
            arr = cos
        elif name == "freq_cis_imag":
            arr = sin
        else:
            fan_in = shape[-1]
            arr = rng.standard_normal(shape, dtype=np.float32)
            arr *= np.float32(std / np.sqrt(fan_in))
        yield name, arr


def random_model(shape: str | Config = "tiny_gqa", seed: int = 0, *, std: float = 1.0) -> Model:
    """A random-weight model of a named shape (see :data:`SHAPES`) or an explicit Config."""
    cfg = SHAPES[shape] if isinstance(shape, str) else shape
    cfg.check()
    arrays = dict(_random_tensors(cfg, seed, std))
    if cfg.shared_classifier:
        arrays["wcls"] = arrays["token_embedding"]
    return Model(config=cfg, **arrays)


def write_random_model(dst: str | Path, shape: str | Config = "tiny_gqa", seed: int = 0, *,
                       std: float = 1.0) -> Config:
    """Stream a random model to ``dst`` tensor by tensor (same bytes as ``random_model``)."""
    cfg = SHAPES[shape] if isinstance(shape, str) else shape
    cfg.check()
    with open(dst, "wb") as f:
        f.write(cfg.header_bytes())
        for _name, arr in _random_tensors(cfg, seed, std):
            f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    return cfg


# ----------------------------------------------------------------------------- corrupt files

#: Kinds understood by :func:`corrupt_model_bytes`.
CORRUPTIONS = (
    "empty", "short_header", "truncated", "truncated_one_byte", "trailing_bytes",
    "zero_dim", "zero_layers", "zero_heads", "zero_kv_heads", "zero_vocab", "zero_seq_len",
    "negative_dim", "negative_hidden", "negative_layers", "negative_seq_len",
    "huge_dim", "huge_vocab", "huge_seq_len", "int_max_all",
    "heads_not_dividing_dim", "kv_heads_gt_heads", "kv_heads_not_dividing", "odd_head_size",
    "sign_flipped_vocab",
)


def corrupt_model_bytes(good: bytes | Model, kind: str) -> bytes:
    """Bytes of a deliberately broken model derived from a good one.

    Every kind makes :func:`read_model` raise ModelFormatError (``trailing_bytes`` only with
    ``allow_trailing=False``; ``sign_flipped_vocab`` flips shared<->unshared so the size no
    longer matches: shared->unshared needs V*D more floats (too short), unshared->shared
    leaves V*D trailing floats). A loader must refuse (or, for trailing bytes, may accept)
    each without crashing.
    """
    data = model_bytes(good) if isinstance(good, Model) else bytes(good)
    hdr = list(HEADER.unpack_from(data, 0))
    body = data[HEADER_SIZE:]
    IMAX = 2**31 - 1

    def with_header(**changes: int) -> bytes:
        h = hdr[:]
        idx = {"dim": 0, "hidden": 1, "layers": 2, "heads": 3, "kv_heads": 4, "vocab": 5, "seq": 6}
        for k, v in changes.items():
            h[idx[k]] = v
        return HEADER.pack(*h) + body

    if kind == "empty":
        return b""
    if kind == "short_header":
        return data[:HEADER_SIZE - 5]
    if kind == "truncated":
        return data[: HEADER_SIZE + len(body) // 2]
    if kind == "truncated_one_byte":
        return data[:-1]
    if kind == "trailing_bytes":
        return data + b"\0" * 12
    simple = {
        "zero_dim": dict(dim=0), "zero_layers": dict(layers=0), "zero_heads": dict(heads=0),
        "zero_kv_heads": dict(kv_heads=0), "zero_vocab": dict(vocab=0), "zero_seq_len": dict(seq=0),
        "negative_dim": dict(dim=-hdr[0]), "negative_hidden": dict(hidden=-hdr[1]),
        "negative_layers": dict(layers=-1), "negative_seq_len": dict(seq=-hdr[6]),
        "huge_dim": dict(dim=1 << 30), "huge_vocab": dict(vocab=(1 << 30) * (1 if hdr[5] > 0 else -1)),
        "huge_seq_len": dict(seq=1 << 30),
        "int_max_all": dict(dim=IMAX, hidden=IMAX, layers=IMAX, heads=1, kv_heads=1, vocab=IMAX, seq=IMAX),
        "heads_not_dividing_dim": dict(heads=hdr[0] + 1, kv_heads=1),
        "kv_heads_gt_heads": dict(kv_heads=hdr[3] * 2),
        "kv_heads_not_dividing": dict(kv_heads=_non_divisor(hdr[3])),
        "odd_head_size": dict(dim=hdr[3] * 3, heads=hdr[3]),
        "sign_flipped_vocab": dict(vocab=-hdr[5]),
    }
    if kind not in simple:
        raise ValueError(f"unknown corruption {kind!r}; choose from {CORRUPTIONS}")
    return with_header(**simple[kind])


def _non_divisor(n: int) -> int:
    for k in range(2, n + 1):
        if n % k:
            return k
    return n + 1  # n in (1, 2): n+1 > n_heads is invalid too


def write_corrupt_model(dst: str | Path, good: bytes | Model, kind: str) -> Path:
    Path(dst).write_bytes(corrupt_model_bytes(good, kind))
    return Path(dst)




def write_test_pair(directory: str | Path, shape: str | Config = "tiny_gqa", seed: int = 0,
                    tokenizer_src: str | Path | None = None,
                    names: tuple[str, str] = ("model.bin", "tokenizer.bin")) -> tuple[Path, Path]:
    """Write a random model and a matching tokenizer into ``directory``; return both paths.

    The tokenizer is copied from ``tokenizer_src`` when given (e.g. the real 32000-piece
    tokenizer.bin for stories15M/110M shapes), else ``make_tokenizer(vocab_size)``.
    """
    from .tokenizer import make_tokenizer, read_tokenizer, write_tokenizer

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = write_random_model(d / names[0], shape, seed)
    tok_path = d / names[1]
    if tokenizer_src is not None:
        tok = read_tokenizer(tokenizer_src, cfg.vocab_size)
        if tok.vocab_size != cfg.vocab_size:
            raise ValueError("tokenizer and model vocab sizes differ")
        tok_path.write_bytes(Path(tokenizer_src).read_bytes())
    else:
        write_tokenizer(make_tokenizer(cfg.vocab_size), tok_path)
    return d / names[0], tok_path
