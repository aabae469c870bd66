# The GGUF tokenizer's source, from a loaded GGUF file: fills a VOCAB_SOURCE
# (peasm/tokenizer_layouts.py) from the `tokenizer.ggml.*` metadata for vocab_build
# (vocab.s). Pure core: no UEFI, no printing.
#
#   vocab_source_from_gguf(rcx = VOCAB_SOURCE*, rdx = GGUF* (opened)) -> eax = 1 when the
#       file carries a vocabulary (tokenizer.ggml.model and tokenizer.ggml.tokens present),
#       0 when it carries none (the caller then looks for a tokenizer file). Arrays are
#       handed over as the reader found them (pointer, count, element type: vocab_build
#       checks the types and lengths); an absent array is pointer 0; an absent or unusable
#       scalar is NO_ID. Key names are the GGUF specification's (llama.cpp's tokenizer keys).
.include "layouts.inc"
.include "tokenizer_layouts.inc"

.section .rdata
k_model:        .ascii "tokenizer.ggml.model"
.equ K_MODEL_LEN, 20
k_pre:          .ascii "tokenizer.ggml.pre"
.equ K_PRE_LEN, 18
k_tokens:       .ascii "tokenizer.ggml.tokens"
.equ K_TOKENS_LEN, 21
k_scores:       .ascii "tokenizer.ggml.scores"
.equ K_SCORES_LEN, 21
k_token_type:   .ascii "tokenizer.ggml.token_type"
.equ K_TOKEN_TYPE_LEN, 25
k_merges:       .ascii "tokenizer.ggml.merges"
.equ K_MERGES_LEN, 21
k_bos:          .ascii "tokenizer.ggml.bos_token_id"
.equ K_BOS_LEN, 27
k_eos:          .ascii "tokenizer.ggml.eos_token_id"
.equ K_EOS_LEN, 27
k_unk:          .ascii "tokenizer.ggml.unknown_token_id"
.equ K_UNK_LEN, 31
k_add_bos:      .ascii "tokenizer.ggml.add_bos_token"
.equ K_ADD_BOS_LEN, 28
k_add_space:    .ascii "tokenizer.ggml.add_space_prefix"
.equ K_ADD_SPACE_LEN, 31

.section .text
.global vocab_source_from_gguf
.extern gguf_get_str, gguf_get_array, gguf_get_u64, gguf_get_bool

# The getters below: (rdx = key, r8d = its length, r9 = where to put the value; rdi =
# GGUF*) -> nothing (the destination is left alone when the key is absent or of another
# type). Private; clobber the volatile registers.
.equ VS_VALUE, 40                     # a GGUF_VALUE in the frame (after a stack argument slot)
.equ VS_FRAME, 64                     # 32 shadow + 8 argument + 24 value; rsp 16-aligned after one push

# vs_str: r9 -> {qword bytes, qword length}
vs_str:
    push rbx
    sub rsp, VS_FRAME
    mov rbx, r9
    mov rcx, rdi
    lea r9, [rsp + VS_VALUE]
    call gguf_get_str
    test eax, eax
    jnz .Lout
    mov rax, [rsp + VS_VALUE + GGUF_VALUE_DATA]
    mov [rbx], rax
    mov rax, [rsp + VS_VALUE + GGUF_VALUE_COUNT]
    mov [rbx + 8], rax
.Lout:
    add rsp, VS_FRAME
    pop rbx
    ret

# vs_array: r9 -> {qword first element, qword count}, [rsp+40] = dword* element type
vs_array:
    push rbx
    push rsi
    sub rsp, VS_FRAME + 8
    mov rbx, r9
    mov rsi, [rsp + VS_FRAME + 8 + 16 + 40]
    mov rcx, rdi
    lea r9, [rsp + VS_VALUE]
    mov dword ptr [rsp + 32], GGUF_TYPE_ANY
    call gguf_get_array
    test eax, eax
    jnz .Lout
    mov rax, [rsp + VS_VALUE + GGUF_VALUE_DATA]
    mov [rbx], rax
    mov rax, [rsp + VS_VALUE + GGUF_VALUE_COUNT]
    mov [rbx + 8], rax
    mov eax, [rsp + VS_VALUE + GGUF_VALUE_TYPE]
    mov [rsi], eax
.Lout:
    add rsp, VS_FRAME + 8
    pop rsi
    pop rbx
    ret

# vs_id: r9 -> dword id (any integer type below NO_ID)
vs_id:
    push rbx
    sub rsp, VS_FRAME
    mov rbx, r9
    mov rcx, rdi
    lea r9, [rsp + VS_VALUE]
    call gguf_get_u64
    test eax, eax
    jnz .Lout
    mov rax, [rsp + VS_VALUE]
    mov ecx, NO_ID
    cmp rax, rcx
    jae .Lout
    mov [rbx], eax
.Lout:
    add rsp, VS_FRAME
    pop rbx
    ret

# vs_bool: r9 -> dword 0 or 1
vs_bool:
    push rbx
    sub rsp, VS_FRAME
    mov rbx, r9
    mov rcx, rdi
    lea r9, [rsp + VS_VALUE]
    call gguf_get_bool
    test eax, eax
    jnz .Lout
    mov eax, [rsp + VS_VALUE]
    mov [rbx], eax
.Lout:
    add rsp, VS_FRAME
    pop rbx
    ret

.macro VS_GET getter, key, len, field
    lea rdx, [rip + \key]
    mov r8d, \len
    lea r9, [rsi + \field]
    call \getter
.endm

# vocab_source_from_gguf(rcx = VOCAB_SOURCE*, rdx = GGUF*) -> eax = 1 or 0
vocab_source_from_gguf:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 56                       # shadow space and a stack argument (aligned)
    mov rsi, rcx
    mov rdi, rdx
    mov rdx, rsi                      # a clean source: every pointer 0, every id absent
    xor eax, eax
    mov ecx, VOCAB_SOURCE_SIZE
.Lzero:
    mov [rdx], al
    inc rdx
    dec ecx
    jnz .Lzero
    mov eax, NO_ID
    mov [rsi + VOCAB_SOURCE_BOS_ID], eax
    mov [rsi + VOCAB_SOURCE_EOS_ID], eax
    mov [rsi + VOCAB_SOURCE_UNK_ID], eax
    mov [rsi + VOCAB_SOURCE_ADD_BOS], eax
    mov [rsi + VOCAB_SOURCE_ADD_SPACE_PREFIX], eax
    VS_GET vs_str, k_model, K_MODEL_LEN, VOCAB_SOURCE_MODEL
    VS_GET vs_str, k_pre, K_PRE_LEN, VOCAB_SOURCE_PRE
    lea rax, [rsi + VOCAB_SOURCE_TOKENS_TYPE]
    mov [rsp + 32], rax
    VS_GET vs_array, k_tokens, K_TOKENS_LEN, VOCAB_SOURCE_TOKENS
    lea rax, [rsi + VOCAB_SOURCE_SCORES_TYPE]
    mov [rsp + 32], rax
    VS_GET vs_array, k_scores, K_SCORES_LEN, VOCAB_SOURCE_SCORES
    lea rax, [rsi + VOCAB_SOURCE_TOKEN_TYPE_TYPE]
    mov [rsp + 32], rax
    VS_GET vs_array, k_token_type, K_TOKEN_TYPE_LEN, VOCAB_SOURCE_TOKEN_TYPE
    lea rax, [rsi + VOCAB_SOURCE_MERGES_TYPE]
    mov [rsp + 32], rax
    VS_GET vs_array, k_merges, K_MERGES_LEN, VOCAB_SOURCE_MERGES
    VS_GET vs_id, k_bos, K_BOS_LEN, VOCAB_SOURCE_BOS_ID
    VS_GET vs_id, k_eos, K_EOS_LEN, VOCAB_SOURCE_EOS_ID
    VS_GET vs_id, k_unk, K_UNK_LEN, VOCAB_SOURCE_UNK_ID
    VS_GET vs_bool, k_add_bos, K_ADD_BOS_LEN, VOCAB_SOURCE_ADD_BOS
    VS_GET vs_bool, k_add_space, K_ADD_SPACE_LEN, VOCAB_SOURCE_ADD_SPACE_PREFIX
    xor eax, eax                      # a vocabulary: its model name and its tokens
    cmp qword ptr [rsi + VOCAB_SOURCE_MODEL], 0
    je .Lout
    cmp qword ptr [rsi + VOCAB_SOURCE_TOKENS], 0
    je .Lout
    mov eax, 1
.Lout:
    add rsp, 56
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
