# GGUF models: fills the format-agnostic Model (model.inc) from a GGUF file opened by the
# reader (gguf.s), for the architectures `llama` and `qwen2`. Pure core: no UEFI, no
# printing. Key and tensor names are GGUF's (the GGUF format document and llama.cpp's
# tensor naming: token_embd, output_norm, output, rope_freqs, blk.N.attn_norm/attn_q/
# attn_k/attn_v/attn_output/ffn_norm/ffn_gate/ffn_up/ffn_down, qwen2's attn_{q,k,v}.bias).
#
#   model_gguf_config(rcx = Model*, rdx = GgufFile* (gguf_open succeeded)) -> eax = MODEL_E_*
#       Clears the Model, then reads general.architecture and the hyper-parameters
#       {arch}.block_count, .embedding_length, .feed_forward_length, .attention.head_count,
#       .attention.head_count_kv (default head_count), .attention.layer_norm_rms_epsilon
#       (default 1e-5), .rope.freq_base (default 10000), .rope.dimension_count (default
#       head size), .context_length; tokenizer.ggml.bos_token_id / eos_token_id (optional).
#       The same limits and relations as a llama2.c header (model.inc); vocab = rows of
#       token_embd.weight. Finds token_embd, output_norm, output (absent: tied to token_embd,
#       SHARED_CLASSIFIER = 1) and rope_freqs (optional), checks their shapes and types, sums
#       the parameters of every tensor in the file (N_PARAMS) and sets MODEL_F_CHECKED.
#   model_gguf_bind(rcx = Model*, rdx = GgufFile*, r8 = layer table (model_layers_bytes))
#       -> eax = MODEL_E_*. Finds every layer's tensors, checks each one's shape against the
#       config and its type (weights: a type the program runs, GGML_TT_F_RUNNABLE; norms and
#       biases: F32), fills the LAYER rows, sets MODEL_F_BOUND.
#   model_gguf_probe: model.inc. The error lines: model_gguf_msg.s.
#
# Errors leave the key or tensor name in MODEL_ERR_NAME and the numbers in ERR_GOT/ERR_WANT
# (and ERR_GOT2/ERR_WANT2 for shapes), so the message says exactly what is wrong.
.include "model.inc"
.include "model_gguf.inc"

.section .rdata
s_general_arch:   .asciz "general.architecture"
s_llama:          .asciz "llama"
s_qwen2:          .asciz "qwen2"
k_block_count:    .asciz ".block_count"
k_embedding:      .asciz ".embedding_length"
k_ffn:            .asciz ".feed_forward_length"
k_heads:          .asciz ".attention.head_count"
k_heads_kv:       .asciz ".attention.head_count_kv"
k_eps:            .asciz ".attention.layer_norm_rms_epsilon"
k_freq_base:      .asciz ".rope.freq_base"
k_rope_dims:      .asciz ".rope.dimension_count"
k_context:        .asciz ".context_length"
k_bos:            .asciz "tokenizer.ggml.bos_token_id"
k_eos:            .asciz "tokenizer.ggml.eos_token_id"
t_token_embd:     .asciz "token_embd.weight"
t_output_norm:    .asciz "output_norm.weight"
t_output:         .asciz "output.weight"
t_rope_freqs:     .asciz "rope_freqs.weight"
# per-layer tensors: LAYER field offset (dword), kind (0 weight, 1 F32 vector), rows from
# (0 dim, 1 kv_dim, 2 hidden), columns from (same), qwen2 only (1), then the name suffix
.balign 4
layer_tensors:
    .long LAYER_ATTN_NORM, 1, 0, 0, 0
    .asciz ".attn_norm.weight"
    .balign 4
    .long LAYER_ATTN_Q, 0, 0, 0, 0
    .asciz ".attn_q.weight"
    .balign 4
    .long LAYER_ATTN_K, 0, 1, 0, 0
    .asciz ".attn_k.weight"
    .balign 4
    .long LAYER_ATTN_V, 0, 1, 0, 0
    .asciz ".attn_v.weight"
    .balign 4
    .long LAYER_ATTN_OUTPUT, 0, 0, 0, 0
    .asciz ".attn_output.weight"
    .balign 4
    .long LAYER_FFN_NORM, 1, 0, 0, 0
    .asciz ".ffn_norm.weight"
    .balign 4
    .long LAYER_FFN_GATE, 0, 2, 0, 0
    .asciz ".ffn_gate.weight"
    .balign 4
    .long LAYER_FFN_UP, 0, 2, 0, 0
    .asciz ".ffn_up.weight"
    .balign 4
    .long LAYER_FFN_DOWN, 0, 0, 2, 0
    .asciz ".ffn_down.weight"
    .balign 4
    .long LAYER_ATTN_Q_BIAS, 1, 0, 0, 1
    .asciz ".attn_q.bias"
    .balign 4
    .long LAYER_ATTN_K_BIAS, 1, 1, 0, 1
    .asciz ".attn_k.bias"
    .balign 4
    .long LAYER_ATTN_V_BIAS, 1, 1, 0, 1
    .asciz ".attn_v.bias"
    .balign 4
    .long 0xFFFFFFFF

.section .text
.global model_gguf_config, model_gguf_bind
.extern mg_cat, mg_err_name, mg_uint, mg_f32, mg_tensor, mg_id, mg_layer_name, mg_dim
.extern gguf_get_u64, gguf_get_f32, gguf_get_str, gguf_find_tensor
.extern ggml_type_table


# The prologue and epilogue of config and bind
.macro MG_ENTER
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, MG_FRAME
    mov rbx, rcx
    mov r12, rdx
    lea r15, [rsp + MG_LOCALS_AT]
.endm
.macro MG_LEAVE
    add rsp, MG_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret
.endm

# an integer key into a dword config field; jumps to `fail` on error (local labels cannot
# be written inside a macro: peasm scopes them where the macro is defined)
.macro MG_UINT suffix, default, limit, field, fail
    lea rcx, [rip + \suffix]
    mov edx, \default
    mov r8d, \limit
    call mg_uint
    jc \fail
    mov [rbx + \field], eax
.endm

# model_gguf_config(rcx = Model*, rdx = GGUF*) -> eax = MODEL_E_*
model_gguf_config:
    MG_ENTER
    mov rdi, rbx                      # a clean struct
    xor eax, eax
    mov ecx, MODEL_SIZE / 8
    rep stosq
    mov dword ptr [rbx + MODEL_FORMAT], MODEL_FORMAT_GGUF
    mov dword ptr [rbx + MODEL_ROPE_FORMULA], MODEL_ROPE_GGML
    mov dword ptr [rbx + MODEL_BOS_ID], MODEL_NO_ID
    mov dword ptr [rbx + MODEL_EOS_ID], MODEL_NO_ID
    mov rax, [r12 + GGUF_FILE_SIZE]
    mov [rbx + MODEL_FILE_SIZE], rax
    mov [rbx + MODEL_EXPECTED_SIZE], rax
    mov rax, [r12 + GGUF_N_ELEMENTS]
    mov [rbx + MODEL_N_PARAMS], rax

    mov rcx, r12                      # general.architecture: llama or qwen2
    lea rdx, [rip + s_general_arch]
    mov r8d, 20
    lea r9, [r15 + MG_TENSOR]         # (a GGUF_VALUE fits there)
    call gguf_get_str
    test eax, eax
    jnz .Lno_arch
    mov rsi, [r15 + MG_TENSOR + GGUF_VALUE_DATA]
    mov rcx, [r15 + MG_TENSOR + GGUF_VALUE_COUNT]
    cmp rcx, 5
    jne .Lbad_arch
    mov eax, [rsi]
    mov dl, [rsi + 4]
    cmp eax, 0x6D616C6C               # "llam"
    jne .Lnot_llama
    cmp dl, 'a'
    jne .Lbad_arch
    mov dword ptr [rbx + MODEL_ARCH], MODEL_ARCH_LLAMA
    mov dword ptr [rbx + MODEL_ROPE_STYLE], MODEL_ROPE_PAIRS
    jmp .Larch_ok
.Lnot_llama:
    cmp eax, 0x6E657771               # "qwen"
    jne .Lbad_arch
    cmp dl, '2'
    jne .Lbad_arch
    mov dword ptr [rbx + MODEL_ARCH], MODEL_ARCH_QWEN2
    mov dword ptr [rbx + MODEL_ROPE_STYLE], MODEL_ROPE_NEOX
.Larch_ok:
    mov eax, [rsi]                    # MG_KEY = the architecture name: the keys' prefix
    mov [r15 + MG_KEY], eax
    mov al, [rsi + 4]
    mov [r15 + MG_KEY + 4], al
    mov byte ptr [r15 + MG_KEY + 5], 0
    mov qword ptr [r15 + MG_PREFIX_LEN], 5

    MG_UINT k_block_count, 0, MODEL_MAX_LAYERS, MODEL_N_LAYERS, .Lfail
    MG_UINT k_embedding, 0, MODEL_MAX_DIM, MODEL_DIM, .Lfail
    MG_UINT k_ffn, 0, MODEL_MAX_HIDDEN_DIM, MODEL_HIDDEN_DIM, .Lfail
    MG_UINT k_heads, 0, MODEL_MAX_HEADS, MODEL_N_HEADS, .Lfail
    MG_UINT k_heads_kv, [rbx+MODEL_N_HEADS], MODEL_MAX_HEADS, MODEL_N_KV_HEADS, .Lfail
    MG_UINT k_context, 0, MODEL_MAX_SEQ_LEN, MODEL_SEQ_LEN, .Lfail
    lea rcx, [rip + k_eps]
    mov edx, MODEL_RMS_EPS_BITS
    call mg_f32
    jc .Lfail
    mov [rbx + MODEL_RMS_EPS], eax
    lea rcx, [rip + k_freq_base]
    mov edx, MODEL_ROPE_THETA_LLAMA2C
    call mg_f32
    jc .Lfail
    mov [rbx + MODEL_ROPE_THETA], eax

    mov eax, [rbx + MODEL_DIM]        # the llama2.c header's relations
    xor edx, edx
    div dword ptr [rbx + MODEL_N_HEADS]
    test edx, edx
    mov ecx, MODEL_E_HEADS
    jnz .Lfail_code
    mov [rbx + MODEL_HEAD_SIZE], eax
    test eax, 1
    mov ecx, MODEL_E_HEAD_SIZE
    jnz .Lfail_code
    mov eax, [rbx + MODEL_N_HEADS]
    xor edx, edx
    div dword ptr [rbx + MODEL_N_KV_HEADS]
    test edx, edx
    mov ecx, MODEL_E_KV_HEADS
    jnz .Lfail_code
    mov [rbx + MODEL_KV_MUL], eax
    mov eax, [rbx + MODEL_N_KV_HEADS]
    imul eax, [rbx + MODEL_HEAD_SIZE]
    mov [rbx + MODEL_KV_DIM], eax
    mov ecx, [rbx + MODEL_HEAD_SIZE]  # RoPE dimensions: even, at most the head size
    lea rax, [rip + k_rope_dims]
    mov rcx, rax
    mov edx, [rbx + MODEL_HEAD_SIZE]
    mov r8d, [rbx + MODEL_HEAD_SIZE]
    call mg_uint
    jc .Lfail
    test eax, 1
    jnz .Lrope_odd
    mov [rbx + MODEL_ROPE_DIMS], eax
    mov [rsp + 16], eax               # theta_scale = f32(theta^f32(-2/rope_dims)) (x87)
    fild dword ptr [rsp + 16]
    fld1
    fadd st(0), st(0)
    fchs                              # -2, rope_dims
    fdivrp st(1), st(0)               # -2 / rope_dims
    fstp dword ptr [rsp + 16]
    fld dword ptr [rsp + 16]          # e (as the f32 ggml computes)
    fld dword ptr [rbx + MODEL_ROPE_THETA]
    fyl2x                             # e * log2(theta)
    fld st(0)
    frndint
    fxch st(1)
    fsub st(0), st(1)
    f2xm1
    fld1
    faddp st(1), st(0)
    fscale
    fstp st(1)
    fstp dword ptr [rbx + MODEL_ROPE_SCALE]

    lea rcx, [rip + k_bos]            # special ids (optional; checked against the vocab below)
    call mg_id
    mov [rbx + MODEL_BOS_ID], eax
    lea rcx, [rip + k_eos]
    call mg_id
    mov [rbx + MODEL_EOS_ID], eax

    mov rcx, r12                      # token_embd: dim x vocab, the vocab from its rows
    lea rdx, [rip + t_token_embd]
    mov r8d, 17
    lea r9, [rbx + MODEL_TOK_EMBD]
    call gguf_find_tensor
    test eax, eax
    jnz .Lno_embd
    mov eax, [rbx + MODEL_TOK_EMBD + TENSOR_ROWS]
    cmp eax, MODEL_MAX_VOCAB
    ja .Lvocab_big
    mov [rbx + MODEL_VOCAB_SIZE], eax
    lea rcx, [rip + t_token_embd]     # ...and its type and width
    lea rdx, [rbx + MODEL_TOK_EMBD]
    xor r8d, r8d
    mov r9d, [rbx + MODEL_DIM]
    mov [rsp + 32], rax
    call mg_tensor
    jc .Lfail
    mov eax, [rbx + MODEL_BOS_ID]     # ids beyond the vocab are no ids
    cmp eax, [rbx + MODEL_VOCAB_SIZE]
    jb .Lbos_ok
    mov dword ptr [rbx + MODEL_BOS_ID], MODEL_NO_ID
.Lbos_ok:
    mov eax, [rbx + MODEL_EOS_ID]
    cmp eax, [rbx + MODEL_VOCAB_SIZE]
    jb .Leos_ok
    mov dword ptr [rbx + MODEL_EOS_ID], MODEL_NO_ID
.Leos_ok:
    lea rcx, [rip + t_output_norm]
    lea rdx, [rbx + MODEL_OUTPUT_NORM]
    mov r8d, 1
    mov r9d, [rbx + MODEL_DIM]
    mov qword ptr [rsp + 32], 1
    call mg_tensor
    jc .Lfail
    lea rcx, [rip + t_output]         # the classifier, or the embeddings again (tied)
    lea rdx, [rbx + MODEL_OUTPUT]
    mov r8d, 2
    mov r9d, [rbx + MODEL_DIM]
    mov eax, [rbx + MODEL_VOCAB_SIZE]
    mov [rsp + 32], rax
    call mg_tensor
    jc .Lfail
    cmp qword ptr [rbx + MODEL_OUTPUT + TENSOR_DATA], 0
    jne .Loutput_ok
    lea rsi, [rbx + MODEL_TOK_EMBD]
    lea rdi, [rbx + MODEL_OUTPUT]
    mov ecx, TENSOR_SIZE
    rep movsb
    mov dword ptr [rbx + MODEL_SHARED_CLASSIFIER], 1
.Loutput_ok:
    lea rcx, [rip + t_rope_freqs]     # Llama 3.x: frequency factors, one per rotated pair
    lea rdx, [rbx + MODEL_ROPE_FREQS]
    mov r8d, 3
    mov r9d, [rbx + MODEL_ROPE_DIMS]
    shr r9d, 1
    mov qword ptr [rsp + 32], 1
    call mg_tensor
    jc .Lfail
    mov dword ptr [rbx + MODEL_FLAGS], MODEL_F_CHECKED
    xor eax, eax
    jmp .Lout
.Lrope_odd:
    mov [rbx + MODEL_ERR_GOT], rax
    mov eax, [rbx + MODEL_HEAD_SIZE]
    mov [rbx + MODEL_ERR_WANT], rax
    mov dword ptr [rbx + MODEL_ERR_FIELD], 1
    lea rdx, [r15 + MG_KEY]
    call mg_err_name
    mov eax, MODEL_E_KEY
    jmp .Lfail
.Lvocab_big:
    mov [rbx + MODEL_ERR_GOT], rax
    mov qword ptr [rbx + MODEL_ERR_WANT], MODEL_MAX_VOCAB
    mov dword ptr [rbx + MODEL_ERR_FIELD], 1
    lea rdx, [rip + t_token_embd]
    call mg_err_name
    mov eax, MODEL_E_KEY
    jmp .Lfail
.Lno_embd:
    lea rdx, [rip + t_token_embd]
    call mg_err_name
    mov eax, MODEL_E_TENSOR
    jmp .Lfail
.Lno_arch:
    mov byte ptr [rbx + MODEL_ERR_NAME], 0
    mov eax, MODEL_E_ARCH
    jmp .Lfail
.Lbad_arch:                           # the name, cut to fit ERR_NAME
    cmp rcx, 63
    jbe .Lcopy_arch
    mov ecx, 63
.Lcopy_arch:
    lea rdi, [rbx + MODEL_ERR_NAME]
    rep movsb
    mov byte ptr [rdi], 0
    mov eax, MODEL_E_ARCH
    jmp .Lfail
.Lfail_code:
    mov eax, ecx
.Lfail:
    and dword ptr [rbx + MODEL_FLAGS], 0
.Lout:
    mov [rbx + MODEL_ERROR], eax
    MG_LEAVE

# model_gguf_bind(rcx = Model*, rdx = GGUF*, r8 = layer table) -> eax = MODEL_E_*
model_gguf_bind:
    MG_ENTER
    mov eax, MODEL_E_NOT_READY
    test dword ptr [rbx + MODEL_FLAGS], MODEL_F_CHECKED
    jz .Lout
    mov [rbx + MODEL_LAYERS], r8
    mov rbp, r8                       # this layer's row
    xor r13d, r13d
.Llayer:
    cmp r13d, [rbx + MODEL_N_LAYERS]
    jae .Lbound
    mov rdi, rbp                      # an empty row: absent biases stay absent
    xor eax, eax
    mov ecx, LAYER_SIZE / 8
    rep stosq
    lea rsi, [rip + layer_tensors]
.Ltensor:
    mov eax, [rsi]
    cmp eax, 0xFFFFFFFF
    je .Lnext_layer
    cmp dword ptr [rsi + 16], 0       # qwen2-only tensors
    je .Lwanted
    cmp dword ptr [rbx + MODEL_ARCH], MODEL_ARCH_QWEN2
    jne .Lskip
.Lwanted:
    lea rcx, [rsi + 20]
    call mg_layer_name
    mov eax, [rsi]
    lea rdx, [rbp + rax]
    mov r8d, [rsi + 4]                # kind
    mov ecx, [rsi + 8]                # ne0 from (vectors: their length)
    call mg_dim
    mov r9d, eax
    mov eax, 1                        # rows: 1 for vectors, else from the table
    cmp r8d, 1
    je .Lrows
    mov ecx, [rsi + 12]
    call mg_dim
    xchg eax, r9d                     # weights: ne0 = columns, rows = outputs
.Lrows:
    mov [rsp + 32], rax
    lea rcx, [r15 + MG_KEY]
    call mg_tensor
    jc .Lfail
.Lskip:
    add rsi, 20                       # past the row and its name, to the next dword
.Lname:
    cmp byte ptr [rsi], 0
    lea rsi, [rsi + 1]
    jne .Lname
    add rsi, 3
    and rsi, -4
    jmp .Ltensor
.Lnext_layer:
    add rbp, LAYER_SIZE
    inc r13d
    jmp .Llayer
.Lbound:
    or dword ptr [rbx + MODEL_FLAGS], MODEL_F_BOUND
    xor eax, eax
    jmp .Lout
.Lfail:
    and dword ptr [rbx + MODEL_FLAGS], MODEL_F_CHECKED
.Lout:
    mov [rbx + MODEL_ERROR], eax
    MG_LEAVE
