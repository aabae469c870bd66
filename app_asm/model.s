# The llama2.c .bin loader: header validation, weight binding, run-state layout, messages.
# The contracts and the Model struct are in model.inc; the forward pass is in forward.s.
# The file is used in place: after model_check_header has proved that the file holds
# exactly the tensors the header describes, weights are pointers into the caller's image.
.include "model.inc"

.section .rdata
.balign 4
# upper bound of each header field, in header order (see model.inc for why these values)
model_limits:
    .long MODEL_MAX_DIM, MODEL_MAX_HIDDEN_DIM, MODEL_MAX_LAYERS, MODEL_MAX_HEADS
    .long MODEL_MAX_HEADS, MODEL_MAX_VOCAB, MODEL_MAX_SEQ_LEN
# header field names, in header order, for model_format_error
field_names:
    .asciz "dim"
    .asciz "hidden_dim"
    .asciz "n_layers"
    .asciz "n_heads"
    .asciz "n_kv_heads"
    .asciz "vocab_size"
    .asciz "seq_len"
# one line per MODEL_E_* code, in code order (model_error_text skips `code` NULs)
model_messages:
    .asciz "ok"
    .asciz "model file is shorter than its 28-byte header"
    .asciz "model header: a dimension is zero or negative"
    .asciz "model header: a dimension is above this loader's limits"
    .asciz "model header: dim is not a multiple of n_heads"
    .asciz "model header: n_kv_heads does not divide n_heads"
    .asciz "model header: head size (dim / n_heads) is odd, RoPE needs pairs"
    .asciz "model file size mismatch: the header implies another size"
    .asciz "model: context length is 0 or above the model's seq_len"
    .asciz "model: run-state memory is smaller than model_state_bytes"
    .asciz "model: token id out of range"
    .asciz "model: position out of the context"
    .asciz "model: not ready (header, weights or run state not set up)"
    .asciz "gguf: architecture not supported (supported: llama qwen2)"
    .asciz "gguf: a metadata key is missing or wrong"
    .asciz "gguf: a tensor the architecture needs is missing"
    .asciz "gguf: a tensor's shape does not match the model's dimensions"
    .asciz "gguf: a tensor's type cannot be run by this program"
    .asciz "gguf: this GGUF version is not supported (supported: 2, 3)"
msg_unknown:    .asciz "model: unknown error code"
s_header:       .asciz "model header: "
s_is:           .asciz " is "
s_positive:     .asciz ", must be > 0"
s_limit:        .asciz ", above this loader's limit of "
s_mismatch:     .asciz "model file size mismatch: header implies "
s_file_has:     .asciz " bytes, file has "
s_short1:       .asciz "model file is "
s_short2:       .asciz " bytes, shorter than the 28-byte header"
s_dim:          .asciz " (dim "
s_n_heads:      .asciz ", n_heads "
s_n_heads0:     .asciz " (n_heads "
s_n_kv_heads:   .asciz ", n_kv_heads "
s_close:        .asciz ")"
s_ctx1:         .asciz "model: context length "
s_ctx2:         .asciz " is 0 or above seq_len "

.section .text
.global model_check_header, model_bind_weights, model_layers_bytes, model_state_bytes, model_init_state
.global model_error_text, model_format_error, model_put_str, model_put_i64
.extern model_gguf_format_error

# model_check_header(rcx = Model*, rdx = header bytes, r8 = file size) -> eax = MODEL_E_*
model_check_header:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    mov r9, rcx                       # Model*
    mov r10, rdx                      # header
    mov rdi, rcx                      # a clean struct: flags 0, every pointer 0
    xor eax, eax
    mov ecx, MODEL_SIZE / 8
    rep stosq
    mov [r9 + MODEL_FILE_SIZE], r8
    cmp r8, MODEL_HEADER_BYTES
    jb .Lshort                        # not even a header: do not read rdx
    lea r11, [rip + model_limits]
    xor ecx, ecx
.Lfield:                              # each field: store as read, then 0 < |value| <= limit
    mov eax, [r10 + rcx * 4]
    mov [r9 + rcx * 4], eax
    mov edx, eax
    cmp ecx, 5
    jne .Lsigned
    test edx, edx
    jns .Lsigned
    neg edx                           # vocab < 0: unshared classifier; INT_MIN stays < 0
.Lsigned:
    test edx, edx
    jle .Lnonpositive
    cmp edx, [r11 + rcx * 4]
    ja .Ltoo_big
    inc ecx
    cmp ecx, 7
    jb .Lfield

    mov eax, [r9 + MODEL_VOCAB_SIZE]  # the sign says where the classifier lives
    xor edx, edx
    test eax, eax
    setg dl
    mov [r9 + MODEL_SHARED_CLASSIFIER], edx
    mov edx, eax
    neg edx
    cmovs edx, eax                    # edx = |vocab| (INT_MIN was refused above)
    mov [r9 + MODEL_VOCAB_SIZE], edx

    mov eax, [r9 + MODEL_DIM]         # head_size = dim / n_heads, exactly
    xor edx, edx
    div dword ptr [r9 + MODEL_N_HEADS]
    test edx, edx
    jnz .Lheads
    mov [r9 + MODEL_HEAD_SIZE], eax
    test eax, 1
    mov r12d, MODEL_E_HEAD_SIZE
    jnz .Lfail
    mov eax, [r9 + MODEL_N_HEADS]     # kv_mul = n_heads / n_kv_heads, exactly
    xor edx, edx
    div dword ptr [r9 + MODEL_N_KV_HEADS]
    test edx, edx
    mov r12d, MODEL_E_KV_HEADS
    jnz .Lfail
    mov [r9 + MODEL_KV_MUL], eax
    mov eax, [r9 + MODEL_N_KV_HEADS]
    imul eax, [r9 + MODEL_HEAD_SIZE]  # <= dim: no overflow
    mov [r9 + MODEL_KV_DIM], eax

    # Tensor offsets in file order. All products are 64-bit and bounded by the limits
    # (largest: layers * hidden * dim * 4 < 2^50).
    mov r11d, [r9 + MODEL_DIM]        # D
    mov r12d, [r9 + MODEL_N_LAYERS]   # L
    mov r13d, [r9 + MODEL_HIDDEN_DIM] # H
    mov r14d, [r9 + MODEL_KV_DIM]     # K
    mov esi, [r9 + MODEL_VOCAB_SIZE]  # V
    mov rbx, r12
    imul rbx, r11                     # L*D
    mov eax, MODEL_HEADER_BYTES       # rax: the running offset
    mov [r9 + MODEL_OFF_TOKEN_EMBEDDING], rax
    mov rdx, rsi
    imul rdx, r11
    lea rax, [rax + rdx * 4]          # + V*D floats
    mov [r9 + MODEL_OFF_RMS_ATT], rax
    lea rax, [rax + rbx * 4]          # + L*D
    mov [r9 + MODEL_OFF_WQ], rax
    mov rdx, rbx
    imul rdx, r11
    lea rax, [rax + rdx * 4]          # + L*D*D
    mov [r9 + MODEL_OFF_WK], rax
    mov rdx, rbx
    imul rdx, r14
    lea rax, [rax + rdx * 4]          # + L*K*D
    mov [r9 + MODEL_OFF_WV], rax
    lea rax, [rax + rdx * 4]          # + L*K*D
    mov [r9 + MODEL_OFF_WO], rax
    mov rdx, rbx
    imul rdx, r11
    lea rax, [rax + rdx * 4]          # + L*D*D
    mov [r9 + MODEL_OFF_RMS_FFN], rax
    lea rax, [rax + rbx * 4]          # + L*D
    mov [r9 + MODEL_OFF_W1], rax
    mov rdx, rbx
    imul rdx, r13
    lea rax, [rax + rdx * 4]          # + L*H*D
    mov [r9 + MODEL_OFF_W2], rax
    lea rax, [rax + rdx * 4]          # + L*D*H
    mov [r9 + MODEL_OFF_W3], rax
    lea rax, [rax + rdx * 4]          # + L*H*D
    mov [r9 + MODEL_OFF_RMS_FINAL], rax
    lea rax, [rax + r11 * 4]          # + D
    mov ecx, [r9 + MODEL_SEQ_LEN]     # the legacy RoPE tables, skipped:
    mov edx, [r9 + MODEL_HEAD_SIZE]   # 2 * seq_len * head_size/2 floats
    imul rcx, rdx
    lea rax, [rax + rcx * 4]
    mov rdx, [r9 + MODEL_OFF_TOKEN_EMBEDDING]
    cmp dword ptr [r9 + MODEL_SHARED_CLASSIFIER], 0
    jne .Lwcls
    mov rdx, rax                      # unshared: wcls (V, D) ends the file
    mov r10, rsi
    imul r10, r11
    lea rax, [rax + r10 * 4]
.Lwcls:
    mov [r9 + MODEL_OFF_WCLS], rdx
    mov [r9 + MODEL_EXPECTED_SIZE], rax
    mov rdx, rax                      # (not lea [rax - EQU]: keystone flips that sign)
    sub rdx, MODEL_HEADER_BYTES
    shr rdx, 2
    sub rdx, rcx                      # parameters: every float but the RoPE tables
    mov [r9 + MODEL_N_PARAMS], rdx
    cmp rax, r8
    mov r12d, MODEL_E_SIZE
    jne .Lfail                        # truncated, or trailing bytes: either way not this model
    mov dword ptr [r9 + MODEL_FORMAT], MODEL_FORMAT_LLAMA2C   # what llama2.c's run.c fixes
    mov dword ptr [r9 + MODEL_ARCH], MODEL_ARCH_LLAMA
    mov eax, [r9 + MODEL_HEAD_SIZE]
    mov [r9 + MODEL_ROPE_DIMS], eax
    mov dword ptr [r9 + MODEL_ROPE_STYLE], MODEL_ROPE_PAIRS
    mov dword ptr [r9 + MODEL_ROPE_FORMULA], MODEL_ROPE_LLAMA2C
    mov dword ptr [r9 + MODEL_ROPE_THETA], MODEL_ROPE_THETA_LLAMA2C
    mov dword ptr [r9 + MODEL_RMS_EPS], MODEL_RMS_EPS_BITS
    mov dword ptr [r9 + MODEL_BOS_ID], 1
    mov dword ptr [r9 + MODEL_EOS_ID], 2
    mov dword ptr [r9 + MODEL_FLAGS], MODEL_F_CHECKED
    xor r12d, r12d
    jmp .Lfail
.Lshort:
    mov r12d, MODEL_E_SHORT
    jmp .Lfail
.Lheads:
    mov r12d, MODEL_E_HEADS
    jmp .Lfail
.Lnonpositive:
    mov r12d, MODEL_E_NONPOSITIVE
    jmp .Lfield_error
.Ltoo_big:
    mov r12d, MODEL_E_TOO_BIG
.Lfield_error:
    mov [r9 + MODEL_ERR_FIELD], ecx
    mov [r9 + MODEL_ERR_VALUE], eax
.Lfail:                               # also the success exit, with r12d = 0
    mov [r9 + MODEL_ERROR], r12d
    mov eax, r12d
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# tensor_set_f32(rcx = TENSOR*, rdx = data, r8d = n (row length), r9d = rows): an F32
# descriptor (1-D when rows = 1). Clobbers rax. Private.
tensor_set_f32:
    mov [rcx + TENSOR_DATA], rdx
    mov dword ptr [rcx + TENSOR_TYPE], GGML_TYPE_F32
    mov [rcx + TENSOR_N], r8d
    mov [rcx + TENSOR_ROWS], r9d
    mov eax, r8d
    shl rax, 2
    mov [rcx + TENSOR_ROW_BYTES], rax
    imul rax, r9
    mov [rcx + TENSOR_BYTES], rax
    mov eax, 1
    cmp r9d, 1
    je .L1d
    mov eax, 2
.L1d:
    mov [rcx + TENSOR_N_DIMS], eax
    mov eax, r8d
    mov [rcx + TENSOR_NE], rax
    mov eax, r9d
    mov [rcx + TENSOR_NE + 8], rax
    mov qword ptr [rcx + TENSOR_NE + 16], 1
    mov qword ptr [rcx + TENSOR_NE + 24], 1
    ret

# One descriptor of layer r13 (row at rdi): data = file + OFF_x + r13 * stride (bytes)
.macro BIND_LAYER field, off, stride, n, rows
    lea rcx, [rdi + \field]
    mov rdx, r13
    imul rdx, \stride
    add rdx, [rbx + \off]
    add rdx, rsi
    mov r8d, \n
    mov r9d, \rows
    call tensor_set_f32
.endm

# model_layers_bytes(rcx = Model*) -> rax = N_LAYERS * LAYER_SIZE, or 0 (not checked)
model_layers_bytes:
    xor eax, eax
    test dword ptr [rcx + MODEL_FLAGS], MODEL_F_CHECKED
    jz .Lret
    mov eax, [rcx + MODEL_N_LAYERS]
    imul rax, rax, LAYER_SIZE
.Lret:
    ret

# model_bind_weights(rcx = Model*, rdx = file bytes, r8 = layer table) -> eax = 0 or
# MODEL_E_NOT_READY. Registers: rbx Model, rsi file, rdi layer row, r13 layer,
# r10d D, r11d K, r12d H (tensor_set_f32 keeps them), r14 D*4, r15 D*D*4, rbp a stride.
model_bind_weights:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8
    mov rbx, rcx
    mov rsi, rdx
    mov eax, MODEL_E_NOT_READY
    test dword ptr [rbx + MODEL_FLAGS], MODEL_F_CHECKED
    jz .Lout
    mov [rbx + MODEL_LAYERS], r8
    mov r10d, [rbx + MODEL_DIM]
    mov r11d, [rbx + MODEL_KV_DIM]
    mov r12d, [rbx + MODEL_HIDDEN_DIM]
    lea rcx, [rbx + MODEL_TOK_EMBD]
    mov rdx, [rbx + MODEL_OFF_TOKEN_EMBEDDING]
    add rdx, rsi
    mov r8d, r10d
    mov r9d, [rbx + MODEL_VOCAB_SIZE]
    call tensor_set_f32
    lea rcx, [rbx + MODEL_OUTPUT]
    mov rdx, [rbx + MODEL_OFF_WCLS]
    add rdx, rsi
    mov r8d, r10d
    mov r9d, [rbx + MODEL_VOCAB_SIZE]
    call tensor_set_f32
    lea rcx, [rbx + MODEL_OUTPUT_NORM]
    mov rdx, [rbx + MODEL_OFF_RMS_FINAL]
    add rdx, rsi
    mov r8d, r10d
    mov r9d, 1
    call tensor_set_f32
    mov r14d, r10d                    # per-layer strides in bytes: D*4, D*D*4, K*D*4, H*D*4
    shl r14, 2                        # r14 = D*4
    mov r15, r14
    imul r15, r10                     # r15 = D*D*4
    mov rdi, [rbx + MODEL_LAYERS]
    xor r13d, r13d
.Llayer:
    cmp r13d, [rbx + MODEL_N_LAYERS]
    jae .Ldone
    mov rcx, rdi                      # an empty row first: biases stay absent
    xor eax, eax
    mov edx, LAYER_SIZE / 8
.Lzero:
    mov [rcx], rax
    add rcx, 8
    dec edx
    jnz .Lzero
    BIND_LAYER LAYER_ATTN_NORM, MODEL_OFF_RMS_ATT, r14, r10d, 1
    BIND_LAYER LAYER_ATTN_Q, MODEL_OFF_WQ, r15, r10d, r10d
    BIND_LAYER LAYER_ATTN_OUTPUT, MODEL_OFF_WO, r15, r10d, r10d
    BIND_LAYER LAYER_FFN_NORM, MODEL_OFF_RMS_FFN, r14, r10d, 1
    mov rbp, r14                      # K*D*4
    imul rbp, r11
    BIND_LAYER LAYER_ATTN_K, MODEL_OFF_WK, rbp, r10d, r11d
    BIND_LAYER LAYER_ATTN_V, MODEL_OFF_WV, rbp, r10d, r11d
    mov rbp, r14                      # H*D*4
    imul rbp, r12
    BIND_LAYER LAYER_FFN_GATE, MODEL_OFF_W1, rbp, r10d, r12d
    BIND_LAYER LAYER_FFN_DOWN, MODEL_OFF_W2, rbp, r12d, r10d
    BIND_LAYER LAYER_FFN_UP, MODEL_OFF_W3, rbp, r10d, r12d
    add rdi, LAYER_SIZE
    inc r13d
    jmp .Llayer
.Ldone:
    or dword ptr [rbx + MODEL_FLAGS], MODEL_F_BOUND
    xor eax, eax
.Lout:
    mov [rbx + MODEL_ERROR], eax
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# state_layout(rcx = Model* (checked), edx = ctx_len (valid), r8 = qword[MODEL_N_STATE])
#   -> rax = bytes of the laid-out state (no slack). out[i] = byte offset of buffer i (the
#   MODEL_S_* order), each rounded up to 64 bytes. Clobbers rdx, r10, r11. Private.
.macro MDL_LAYOUT_NEXT idx
    mov [r8 + \idx * 8], r10
    add rax, 63
    and rax, -64
    add r10, rax
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
    shl rax, 2
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
    mov rax, r10
    ret

# check_ctx(rcx = Model*, edx = ctx_len) -> eax = 0, MODEL_E_NOT_READY or MODEL_E_CTX
# (also stored in MODEL_ERROR; the ctx in MODEL_ERR_VALUE). Private; clobbers nothing else.
check_ctx:
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
.equ STATE_SCRATCH, MODEL_N_STATE * 8 + 8   # 11 qwords, rounded so rsp stays 8 mod 16
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
    shl rcx, 2
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

# model_error_text(ecx = code) -> rax = NUL-terminated line
model_error_text:
    lea rax, [rip + msg_unknown]
    cmp ecx, MODEL_E_COUNT
    jae .Ldone
    lea rax, [rip + model_messages]
.Lskip:                               # skip `code` strings
    test ecx, ecx
    jz .Ldone
.Lscan:
    mov dl, [rax]
    inc rax
    test dl, dl
    jnz .Lscan
    dec ecx
    jmp .Lskip
.Ldone:
    ret

# nth_string(rax = first of consecutive NUL-terminated strings, ecx = n) -> rax = n-th.
# Private; clobbers dl.
nth_string:
    test ecx, ecx
    jz .Ldone
.Lscan:
    mov dl, [rax]
    inc rax
    test dl, dl
    jnz .Lscan
    dec ecx
    jmp nth_string
.Ldone:
    ret

# Private text builder used by model_format_error: rdi = next byte, rsi = last usable byte
# (kept for the NUL). Nothing is written at or past rsi.
# put_str(rcx = NUL-terminated string). Clobbers al, rcx.
# (model_put_str / model_put_i64: the same, for model_gguf.s's messages.)
model_put_str:
put_str:
    mov al, [rcx]
    test al, al
    jz .Ldone
    cmp rdi, rsi
    jae .Ldone
    mov [rdi], al
    inc rdi
    inc rcx
    jmp put_str
.Ldone:
    ret

# put_i64(rax = signed value) in decimal. Clobbers rax, rcx, rdx, r10, r11.
model_put_i64:
put_i64:
    sub rsp, 40                       # digits are built backwards in [rsp+8 .. rsp+31]
    lea r10, [rsp + 31]
    mov byte ptr [r10], 0
    mov r11, rax                      # the sign, for later
    test rax, rax
    jns .Ldigit
    neg rax                           # INT64_MIN stays negative; as unsigned it is right
.Ldigit:
    xor edx, edx
    mov ecx, 10
    div rcx
    add dl, '0'
    dec r10
    mov [r10], dl
    test rax, rax
    jnz .Ldigit
    test r11, r11
    jns .Lput
    dec r10
    mov byte ptr [r10], '-'
.Lput:
    mov rcx, r10
    call put_str
    add rsp, 40
    ret

# model_format_error(rcx = Model*, edx = code, r8 = buffer, r9 = capacity) -> rax = length
model_format_error:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 8
    xor eax, eax
    test r9, r9
    jz .Lempty
    mov rbx, rcx
    mov r12d, edx
    mov rdi, r8
    lea rsi, [r8 + r9 - 1]
    cmp r12d, MODEL_E_ARCH
    jb .Lbin
    cmp r12d, MODEL_E_GGUF_VERSION
    ja .Lbin
    push r8                           # (the buffer, for the length at .Lend)
    push r8
    call model_gguf_format_error      # GGUF codes: rbx, r12d, rdi, rsi as here
    pop r8
    pop r8
    jmp .Lend
.Lbin:
    cmp r12d, MODEL_E_NONPOSITIVE
    je .Lfield
    cmp r12d, MODEL_E_TOO_BIG
    je .Lfield
    cmp r12d, MODEL_E_SIZE
    je .Lsize
    cmp r12d, MODEL_E_SHORT
    je .Lshort
    cmp r12d, MODEL_E_CTX
    je .Lctx
    mov ecx, r12d                     # the generic line, then the numbers that explain it
    call model_error_text
    mov rcx, rax
    call put_str
    cmp r12d, MODEL_E_HEADS
    je .Lheads
    cmp r12d, MODEL_E_HEAD_SIZE
    je .Lheads
    cmp r12d, MODEL_E_KV_HEADS
    je .Lkv
    jmp .Lend
.Lheads:                              # " (dim D, n_heads H)"
    lea rcx, [rip + s_dim]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_DIM]
    call put_i64
    lea rcx, [rip + s_n_heads]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_N_HEADS]
    call put_i64
    jmp .Lclose
.Lkv:                                 # " (n_heads H, n_kv_heads K)"
    lea rcx, [rip + s_n_heads0]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_N_HEADS]
    call put_i64
    lea rcx, [rip + s_n_kv_heads]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_N_KV_HEADS]
    call put_i64
.Lclose:
    lea rcx, [rip + s_close]
    call put_str
    jmp .Lend
.Lfield:                              # "model header: NAME is V, must be > 0" / "..., limit L"
    lea rcx, [rip + s_header]
    call put_str
    mov ecx, [rbx + MODEL_ERR_FIELD]
    cmp ecx, 6
    jbe .Lname
    mov ecx, 6                        # (a struct the caller scribbled on: stay in the table)
.Lname:
    mov r9d, r12d                     # the code (capacity is no longer needed)
    mov r12d, ecx                     # the field index
    lea rax, [rip + field_names]
    call nth_string
    mov rcx, rax
    call put_str
    lea rcx, [rip + s_is]
    call put_str
    movsxd rax, dword ptr [rbx + MODEL_ERR_VALUE]
    call put_i64
    lea rcx, [rip + s_positive]
    cmp r9d, MODEL_E_TOO_BIG
    jne .Lfield_tail
    lea rcx, [rip + s_limit]
    call put_str
    lea rax, [rip + model_limits]
    mov eax, [rax + r12 * 4]
    call put_i64
    jmp .Lend
.Lfield_tail:
    call put_str
    jmp .Lend
.Lsize:                               # "...header implies N bytes, file has M"
    lea rcx, [rip + s_mismatch]
    call put_str
    mov rax, [rbx + MODEL_EXPECTED_SIZE]
    call put_i64
    lea rcx, [rip + s_file_has]
    call put_str
    mov rax, [rbx + MODEL_FILE_SIZE]
    call put_i64
    jmp .Lend
.Lshort:
    lea rcx, [rip + s_short1]
    call put_str
    mov rax, [rbx + MODEL_FILE_SIZE]
    call put_i64
    lea rcx, [rip + s_short2]
    call put_str
    jmp .Lend
.Lctx:
    lea rcx, [rip + s_ctx1]
    call put_str
    mov eax, [rbx + MODEL_ERR_VALUE]
    call put_i64
    lea rcx, [rip + s_ctx2]
    call put_str
    mov eax, [rbx + MODEL_SEQ_LEN]
    call put_i64
.Lend:
    mov byte ptr [rdi], 0
    mov rax, rdi
    sub rax, r8
.Lempty:
    add rsp, 8
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
