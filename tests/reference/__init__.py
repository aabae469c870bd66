"""Independent Python reference ("oracle") for the chat program: llama2.c formats and maths.

Written from the descriptions of llama2.c's file formats and algorithms (run.c behaviour),
not from its code. Everything is numpy float32 unless stated.

Usage::

    from tests.reference import llama2 as ref

    model = ref.read_model(path)                      # .bin -> ref.Model (config + arrays)
    tok = ref.read_tokenizer(tok_path, model.config.vocab_size)
    ids = tok.encode("Once upon a time", bos=True, eos=False)
    piece = tok.decode(prev_token, token)             # bytes
    tf = ref.Transformer(model); logits = tf.forward(token, pos)
    gen = ref.generate(model, tok, prompt="", steps=200, temperature=0.0, topp=0.9, seed=1)
    gen.tokens, gen.pieces, gen.stdout (run.c's exact stdout bytes), gen.text
    s = ref.Sampler(vocab_size, temperature=1.0, topp=0.9, seed=42); s.sample(logits)
    ref.Rng(seed).u32() / .f32()                      # xorshift64*

    m = ref.random_model("stories15M" | "stories110M" | "tiny_gqa" | "micro" | Config, seed)
    ref.write_model(m, path); ref.write_random_model(path, "stories110M", seed)  # streamed
    ref.corrupt_model_bytes(m, kind)  for kind in ref.CORRUPTIONS
    ref.make_tokenizer(vocab_size); ref.write_tokenizer(tok, path)
    ref.corrupt_tokenizer_bytes(tok, kind)  for kind in ref.TOKENIZER_CORRUPTIONS
    model_path, tok_path = ref.write_test_pair(tmp_path, "tiny_gqa", seed)   # app test inputs
    ref.read_gguf(path)                               # minimal GGUF reader (metadata, F32/F16)

Modules: :mod:`.modelfile` (.bin format), :mod:`.tokenizer`, :mod:`.sampler`,
:mod:`.forward` (kernels, Transformer, generate), :mod:`.gguf`; :mod:`.llama2` re-exports
the main names.
"""
