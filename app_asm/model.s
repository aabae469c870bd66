# The llama2.c .bin loader: header validation and weight binding. The contracts are in
# model.inc; the run state is model_state.s, the messages model_msg.s, the forward pass
# forward.s, GGUF files model_gguf.s.
# The file is used in place: after model_check_header has proved that the file holds
# exactly the tensors the header describes, weights are pointers into the caller's image.
.include "model.inc"

.section .rdata
.balign 4
# upper bound of each header field, in header order (see model.inc for why these values)
.global model_limits
model_limits:
    .long MODEL_MAX_DIM, MODEL_MAX_HIDDEN_DIM, MODEL_MAX_LAYERS, MODEL_MAX_HEADS
    .long MODEL_MAX_HEADS, MODEL_MAX_VOCAB, MODEL_MAX_SEQ_LEN

.section .text
.global model_check_header, model_bind_weights, model_layers_bytes

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
