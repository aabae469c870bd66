"""One import for the whole reference: ``from tests.reference import llama2 as ref``."""
from .forward import (Generation, Transformer, attention_head, forward_all, generate, matmul,  # noqa: F401
                      rmsnorm, rope, rope_cos_sin, silu, softmax)
from .gguf import GGUFFile, read_gguf  # noqa: F401
from .modelfile import (CORRUPTIONS, HEADER_SIZE, SHAPES, TENSOR_ORDER, Config, Model,  # noqa: F401
                        ModelFormatError, corrupt_model_bytes, model_bytes, random_model,
                        read_header, read_model, rope_tables, write_corrupt_model, write_model,
                        write_random_model, write_test_pair)
from .sampler import (Rng, Sampler, apply_repeat_penalty, argmax_first, banned_ngram_tokens,  # noqa: F401
                      min_p_filter, sample_mult, sample_topp, softmax_f32, top_k_filter,
                      xorshift_step)
from .tokenizer import (BOS, EOS, UNK, Tokenizer, TokenizerFormatError, make_tokenizer,  # noqa: F401
                        printable_piece, read_tokenizer, utf8_groups, write_tokenizer,
                        TOKENIZER_CORRUPTIONS, corrupt_tokenizer_bytes)
