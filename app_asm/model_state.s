# The model's run state (model.inc): its layout in one caller-provided block, the context
# check, model_state_bytes and model_init_state. Pure core: no UEFI, no printing.
.include "model.inc"

.section .text
.global model_state_bytes, model_init_state

# state_layout(rcx = Model* (checked, KV_TYPE normalized), edx = ctx_len (valid),
#   r8 = qword[MODEL_N_STATE]) -> rax = bytes of the laid-out state (no slack). out[i] = byte
#   offset of buffer i (the MODEL_S_* order), each rounded up to 64 bytes. The caches take
#   2 (f16) or 4 (f32) bytes an element. Clobbers rdx, r10, r11. Private.
.macro MDL_LAYOUT_NEXT idx
    mov [r8 + \idx * 8], r10
    add rax, 63
    and rax, -64
    add r10, rax
.endm
# MDL_ROWS idx: rax = floats of one row -> buffer idx holds MODEL_BATCH rows of
# round64(4 * floats) bytes.
.macro MDL_ROWS idx
    shl rax, 2
    add rax, 63
    and rax, -64
    imul rax, rax, MODEL_BATCH
    MDL_LAYOUT_NEXT \idx
.endm
state_layout:
    mov r11d, edx                     # ctx
    xor r10d, r10d                    # running offset
    mov eax, [rcx + MODEL_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 0                 # x
    mov eax, [rcx + MODEL_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 1                 # xb
    mov eax, [rcx + MODEL_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 2                 # xb2
    mov eax, [rcx + MODEL_HIDDEN_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 3                 # hb
    mov eax, [rcx + MODEL_HIDDEN_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 4                 # hb2
    mov eax, [rcx + MODEL_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 5                 # q
    mov eax, [rcx + MODEL_N_HEADS]
    imul rax, r11
    shl rax, 2
    MDL_LAYOUT_NEXT 6                 # att: n_heads * ctx
    mov eax, [rcx + MODEL_VOCAB_SIZE]
    shl rax, 2
    MDL_LAYOUT_NEXT 7                 # logits
    mov eax, [rcx + MODEL_N_LAYERS]
    mov edx, [rcx + MODEL_KV_DIM]
    imul rax, rdx
    imul rax, r11
    add rax, rax                      # f16: 2 bytes an element
    cmp dword ptr [rcx + MODEL_KV_TYPE], GGML_TYPE_F16
    je .Lkv_bytes
    add rax, rax                      # f32: 4
.Lkv_bytes:
    mov rdx, rax
    MDL_LAYOUT_NEXT 8                 # key cache: layers * ctx * kv_dim
    mov rax, rdx
    MDL_LAYOUT_NEXT 9                 # value cache
    mov eax, [rcx + MODEL_HEAD_SIZE]
    shl rax, 3
    MDL_LAYOUT_NEXT 10                # RoPE table: 2 * head_size
    mov eax, [rcx + MODEL_DIM]
    mov edx, [rcx + MODEL_HIDDEN_DIM]
    cmp eax, edx
    cmovb eax, edx
    shl rax, 2
    MDL_LAYOUT_NEXT 11                # XQ: max(dim, hidden) elements in any vec_dot_type
    # the batched prefill's rows (forward_batch.s): MODEL_BATCH rows of round64 bytes each
    mov eax, [rcx + MODEL_DIM]
    MDL_ROWS 12                       # BX
    mov eax, [rcx + MODEL_DIM]
    MDL_ROWS 13                       # BXB
    mov eax, [rcx + MODEL_DIM]
    MDL_ROWS 14                       # BXB2
    mov eax, [rcx + MODEL_DIM]
    MDL_ROWS 15                       # BQ
    mov eax, [rcx + MODEL_KV_DIM]
    imul rax, rax, 4 * MODEL_BATCH
    MDL_LAYOUT_NEXT 16                # BK: contiguous rows of kv_dim floats
    mov eax, [rcx + MODEL_KV_DIM]
    imul rax, rax, 4 * MODEL_BATCH
    MDL_LAYOUT_NEXT 17                # BV
    mov eax, [rcx + MODEL_HIDDEN_DIM]
    MDL_ROWS 18                       # BHB
    mov eax, [rcx + MODEL_HIDDEN_DIM]
    MDL_ROWS 19                       # BHB2
    mov eax, [rcx + MODEL_HEAD_SIZE]
    add rax, rax
    MDL_ROWS 20                       # BROPE: 2 * head_size floats a row
    mov eax, [rcx + MODEL_DIM]
    mov edx, [rcx + MODEL_HIDDEN_DIM]
    cmp eax, edx
    cmovb eax, edx
    MDL_ROWS 21                       # BXQ: a row holds max(dim, hidden) in any vec_dot_type
    mov eax, [rcx + MODEL_KV_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 22                # k: kv_dim f32
    mov eax, [rcx + MODEL_KV_DIM]
    shl rax, 2
    MDL_LAYOUT_NEXT 23                # v: kv_dim f32
    mov rax, r10
    ret

# check_ctx(rcx = Model*, edx = ctx_len) -> eax = 0, MODEL_E_NOT_READY or MODEL_E_CTX
# (also stored in MODEL_ERROR; the ctx in MODEL_ERR_VALUE). A KV_TYPE other than
# GGML_TYPE_F16 is made GGML_TYPE_F32. Private; clobbers nothing else.
check_ctx:
    cmp dword ptr [rcx + MODEL_KV_TYPE], GGML_TYPE_F16
    je .Lkv_known
    mov dword ptr [rcx + MODEL_KV_TYPE], GGML_TYPE_F32
.Lkv_known:
    mov eax, MODEL_E_NOT_READY
    test dword ptr [rcx + MODEL_FLAGS], MODEL_F_CHECKED
    jz .Lout
    mov [rcx + MODEL_ERR_VALUE], edx
    mov eax, MODEL_E_CTX
    test edx, edx
    jz .Lout
    cmp edx, [rcx + MODEL_SEQ_LEN]
    ja .Lout
    xor eax, eax
.Lout:
    mov [rcx + MODEL_ERROR], eax
    ret

# model_state_bytes(rcx = Model*, edx = ctx_len) -> rax = bytes (0: see MODEL_ERROR)
.equ STATE_SCRATCH, MODEL_N_STATE * 8 + 8   # the offsets (an even count), so rsp stays 0 mod 16
model_state_bytes:
    sub rsp, STATE_SCRATCH             # a scratch offset table
    call check_ctx
    test eax, eax
    jnz .Lnone
    mov r8, rsp
    call state_layout
    add rax, 64                       # slack to align the base up to 64
    jmp .Ldone
.Lnone:
    xor eax, eax
.Ldone:
    add rsp, STATE_SCRATCH
    ret

# model_init_state(rcx = Model*, rdx = memory, r8d = ctx_len, r9 = bytes) -> eax = MODEL_E_*
model_init_state:
    push rdi
    push rsi
    push rbx
    mov rbx, rcx
    mov rsi, rdx                      # memory
    and dword ptr [rbx + MODEL_FLAGS], MODEL_F_CHECKED | MODEL_F_BOUND  # no state until it succeeds
    mov edx, r8d
    call check_ctx
    test eax, eax
    jnz .Lret
    mov rdi, r9                       # bytes given
    mov r9d, edx                      # ctx (state_layout leaves r9 alone)
    lea r8, [rbx + MODEL_S_X]         # offsets straight into the struct, made pointers below
    call state_layout
    lea rcx, [rax + 64]
    cmp rdi, rcx
    jb .Lsmall
    mov [rbx + MODEL_STATE_TOTAL], rcx
    mov rcx, rax                      # zero the laid-out bytes from the aligned base
    add rsi, 63
    and rsi, -64
    mov rdi, rsi
    xor eax, eax
    rep stosb
    xor eax, eax
.Lrebase:
    add [rbx + MODEL_S_X + rax * 8], rsi
    inc eax
    cmp eax, MODEL_N_STATE
    jb .Lrebase
    mov dword ptr [rbx + MODEL_XQ_FMT], GGML_TYPE_COUNT   # XQ holds nothing yet
    mov eax, r9d                      # ctx
    mov [rbx + MODEL_CTX_LEN], eax
    mov ecx, [rbx + MODEL_KV_DIM]
    imul rcx, rax
    add rcx, rcx                      # f16: 2 bytes an element
    cmp dword ptr [rbx + MODEL_KV_TYPE], GGML_TYPE_F16
    je .Lkv_layer
    add rcx, rcx                      # f32: 4
.Lkv_layer:
    mov [rbx + MODEL_KV_LAYER_BYTES], rcx
    # k_attention's block: everything but the per-layer caches and the position
    lea rdi, [rbx + MODEL_ATT_BLOCK]
    mov rcx, [rbx + MODEL_S_XB]
    mov [rdi + ATT_OUT], rcx
    mov rcx, [rbx + MODEL_S_Q]
    mov [rdi + ATT_Q], rcx
    mov rcx, [rbx + MODEL_S_ATT]
    mov [rdi + ATT_SCRATCH], rcx
    mov [rdi + ATT_SEQ_LEN], eax
    mov eax, [rbx + MODEL_N_HEADS]
    mov [rdi + ATT_N_HEADS], eax
    mov eax, [rbx + MODEL_N_KV_HEADS]
    mov [rdi + ATT_N_KV_HEADS], eax
    mov eax, [rbx + MODEL_HEAD_SIZE]
    mov [rdi + ATT_HEAD_SIZE], eax
    mov eax, [rbx + MODEL_KV_TYPE]
    mov [rdi + ATT_KV_TYPE], eax
    xor eax, eax                      # GGUF models: llama.cpp's attention arithmetic
    cmp dword ptr [rbx + MODEL_FORMAT], MODEL_FORMAT_GGUF
    sete al
    mov [rdi + ATT_STYLE], eax        # (ATT_STYLE_GGML = 1, ATT_STYLE_LLAMA2C = 0)
    mov rcx, [rip + k_swiglu]         # and its SwiGLU (run.c's for .bin models)
    test eax, eax
    cmovnz rcx, [rip + k_swiglu_ggml]
    mov [rbx + MODEL_SWIGLU], rcx
    or dword ptr [rbx + MODEL_FLAGS], MODEL_F_STATE
    xor eax, eax
    jmp .Lret
.Lsmall:
    mov eax, MODEL_E_MEMORY
.Lret:
    mov [rbx + MODEL_ERROR], eax
    pop rbx
    pop rsi
    pop rdi
    ret
