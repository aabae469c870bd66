# The batched prefill: a prompt's tokens through the model together, MODEL_BATCH rows at a
# time (contract: model_forward_batch in model.inc). The same operations as forward.s's
# model_forward in the same order, per row (so every row's numbers are those token-by-token
# decode computes, bit for bit), except that each weight is applied to all the rows of the
# batch in one product (k_par_matmat, kernels_asm/parallel_matmat.s): its rows split across the
# cores and each weight byte read from memory once per batch, not once per token.
#
#   per batch of m rows at positions p..p+m-1 (row t holds token t of the batch):
#     BX[t] = dequantize(tok_embd[token t]);  BROPE[t] = RoPE table of position p+t
#     per layer l:  BXB[t] = rmsnorm(BX[t], attn_norm[l])       (t < m, each row alone)
#                   BQ = wq @ BXB, BK = wk @ BXB, BV = wv @ BXB  (+ biases), RoPE per row
#                   key/value caches[l][p..p+m-1] = BK, BV        (fw_kv_store, forward.s)
#                   BXB[t] = attention(BQ[t], caches[l][0..p+t])  (causal: row t sees p+t)
#                   BX += wo @ BXB;  BXB[t] = rmsnorm(BX[t], ffn_norm[l])
#                   BHB = silu(w_gate @ BXB) * (w_up @ BXB);  BX += w_down @ BHB
#   logits = output @ rmsnorm(BX[last row], output_norm)        (the last batch's last row)
#
# Each product first converts its input rows, once, to the weight type's vec_dot_type in
# S_BXQ (kept while the rows are unchanged: wq/wk/wv share one conversion, w_gate/w_up
# another), as fw_matmul does for one row. Row strides: round64(4 * floats) bytes, except
# BK/BV (exactly kv_dim floats a row, as fw_kv_store takes them). Buffers: model_state.s.
.include "model.inc"

.section .text
.global model_forward_batch, model_forward_rows
.extern k_rmsnorm, k_rope_table, k_rope_table_ggml, k_rope_apply, k_rope_apply_neox
.extern k_rope_apply_ggml, k_rmsnorm_ggml
.extern k_attention, k_add, k_swiglu, ggml_type_body, ggml_type_table, k_par_matmat
.extern fw_kv_store, model_embed_row

# The frame of model_forward_batch below its 8 pushes; rbp points at it and the private
# helpers below read the batch's fields through rbp (they keep rbx = Model*, rbp).
.equ FB_ATT, 80                       # a copy of MODEL_ATT_BLOCK (ATT_SIZE bytes)
.equ FB_MM, FB_ATT + ATT_SIZE         # the MATMAT block of the current product
.equ FB_XQ_SRC, FB_MM + MATMAT_SIZE   # qword: the f32 rows S_BXQ was converted from
.equ FB_XQ_FMT, FB_XQ_SRC + 8         # dword: their vec_dot_type (GGML_TYPE_COUNT: nothing)
.equ FB_ROWS, FB_XQ_FMT + 4           # dword: rows m in this batch (1..MODEL_BATCH)
.equ FB_POS, FB_ROWS + 4              # dword: position of the batch's first row
.equ FB_LEFT, FB_POS + 4              # dword: tokens left, this batch's included
.equ FB_TOKENS, FB_LEFT + 4           # qword: the batch's first token
.equ FB_RDIM, FB_TOKENS + 8           # qword: bytes between rows of dim floats
.equ FB_RHID, FB_RDIM + 8             # qword: ... of hidden_dim floats
.equ FB_RROPE, FB_RHID + 8            # qword: ... of RoPE tables (2 * head_size floats)
.equ FB_KVROW, FB_RROPE + 8           # qword: kv_dim * 4 (BK, BV rows)
.equ FB_LOGITS, FB_KVROW + 8          # dword: 0 for model_forward_rows (no classifier)
.equ FB_FRAME, ((FB_LOGITS + 4 + 15) >> 4 << 4) + 8  # 8 mod 16: with the 8 pushes and the
                                      #  return address, rsp stays 16-byte aligned

# round64(4 * dword [rbx + field]) -> [rbp + slot]
.macro FB_STRIDE field, slot, scale
    mov eax, [rbx + \field]
    imul rax, rax, \scale
    add rax, 63
    and rax, -64
    mov [rbp + \slot], rax
.endm

# model_forward_batch(rcx = Model*, rdx = tokens u32[n], r8d = n, r9d = pos0) -> rax = logits
#   of the last token (S_LOGITS) or 0 with MODEL_ERROR. Refusals, before anything is written:
#   MODEL_E_NOT_READY, MODEL_E_TOKEN (n = 0, or a token not in 0..vocab-1), MODEL_E_POS
#   (pos0 + n > ctx_len). Clobbers the volatile registers.
# model_forward_rows: the same without the classifier (a prefill's batches before its last:
#   the KV cache rows only); rax = S_LOGITS, not written, or 0 with MODEL_ERROR.
model_forward_rows:
    xor eax, eax
    jmp fb_run
model_forward_batch:
    mov eax, 1
fb_run:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, FB_FRAME
    mov rbp, rsp
    mov [rbp + FB_LOGITS], eax
    mov rbx, rcx
    mov eax, [rbx + MODEL_FLAGS]      # header checked, weights bound, run state laid out
    and eax, MODEL_F_READY
    cmp eax, MODEL_F_READY
    mov eax, MODEL_E_NOT_READY
    jne .Lrefuse
    mov eax, MODEL_E_TOKEN
    test r8d, r8d
    jz .Lrefuse
    xor ecx, ecx
.Lcheck:                              # every token, before any is run
    mov r10d, [rdx + rcx * 4]
    cmp r10d, [rbx + MODEL_VOCAB_SIZE]
    jae .Lrefuse
    inc ecx
    cmp ecx, r8d
    jb .Lcheck
    mov eax, MODEL_E_POS
    mov r10d, r9d
    mov r11d, r8d
    add r10, r11                      # pos0 + n in 64 bits
    mov r11d, [rbx + MODEL_CTX_LEN]
    cmp r10, r11
    ja .Lrefuse
    mov [rbp + FB_TOKENS], rdx
    mov [rbp + FB_LEFT], r8d
    mov [rbp + FB_POS], r9d
    FB_STRIDE MODEL_DIM, FB_RDIM, 4
    FB_STRIDE MODEL_HIDDEN_DIM, FB_RHID, 4
    FB_STRIDE MODEL_HEAD_SIZE, FB_RROPE, 8
    mov eax, [rbx + MODEL_KV_DIM]
    shl rax, 2
    mov [rbp + FB_KVROW], rax
.Lbatch:
    mov eax, [rbp + FB_LEFT]
    mov ecx, MODEL_BATCH
    cmp eax, ecx
    cmova eax, ecx
    mov [rbp + FB_ROWS], eax
    call fb_embed
    mov rdi, [rbx + MODEL_LAYERS]
    xor r13d, r13d
.Llayer:
    call fb_layer
    add rdi, LAYER_SIZE
    inc r13d
    cmp r13d, [rbx + MODEL_N_LAYERS]
    jb .Llayer
    mov eax, [rbp + FB_ROWS]
    sub [rbp + FB_LEFT], eax
    jz .Llast
    add [rbp + FB_POS], eax
    shl rax, 2
    add [rbp + FB_TOKENS], rax
    jmp .Lbatch
.Llast:                               # the last row: final norm (in place), the classifier
    cmp dword ptr [rbp + FB_LOGITS], 0
    je .Ldone
    mov eax, [rbp + FB_ROWS]
    dec eax
    imul rax, [rbp + FB_RDIM]
    mov rsi, [rbx + MODEL_S_BX]
    add rsi, rax
    mov rcx, rsi
    mov rdx, rsi
    mov r8, [rbx + MODEL_OUTPUT_NORM + TENSOR_DATA]
    mov r9d, [rbx + MODEL_DIM]
    mov eax, [rbx + MODEL_RMS_EPS]
    mov [rsp + 32], rax
    lea rax, [rip + k_rmsnorm]        # GGUF models: llama.cpp's arithmetic (rmsnorm_ggml.s)
    lea r10, [rip + k_rmsnorm_ggml]
    cmp dword ptr [rbx + MODEL_FORMAT], MODEL_FORMAT_GGUF
    cmove rax, r10
    call qword ptr [rax]
    mov dword ptr [rbp + FB_XQ_FMT], GGML_TYPE_COUNT
    mov rcx, [rbx + MODEL_S_LOGITS]
    lea rdx, [rbx + MODEL_OUTPUT]
    mov r8, rsi
    mov r9d, 1
    mov qword ptr [rsp + 32], 0       # (one output row: no stride)
    call fb_matmul
.Ldone:
    mov dword ptr [rbx + MODEL_ERROR], MODEL_OK
    mov rax, [rbx + MODEL_S_LOGITS]
    jmp .Lret
.Lrefuse:
    mov [rbx + MODEL_ERROR], eax
    xor eax, eax
.Lret:
    add rsp, FB_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# fb_embed(rbx, rbp): BX[t] = dequantize(tok_embd[token t]) and BROPE[t] = the RoPE table of
# position FB_POS + t, for t < FB_ROWS (the tables as model_forward computes them, once per
# batch for every layer). Clobbers the volatile registers. Private.
fb_embed:
    push r12
    push r14
    sub rsp, 72
    xor r12d, r12d
    mov r14, [rbx + MODEL_S_BX]
.Lrow:
    mov rax, [rbp + FB_TOKENS]
    mov r8d, [rax + r12 * 4]
    mov rcx, r14
    mov rdx, rbx
    call model_embed_row              # (forward.s: the file's layout or F32_R8)
    add r14, [rbp + FB_RDIM]
    inc r12d
    cmp r12d, [rbp + FB_ROWS]
    jb .Lrow
    xor r12d, r12d
    mov r14, [rbx + MODEL_S_BROPE]
.Ltable:
    mov rcx, r14
    mov edx, [rbp + FB_POS]
    add edx, r12d
    mov r8d, [rbx + MODEL_HEAD_SIZE]
    cmp dword ptr [rbx + MODEL_ROPE_FORMULA], MODEL_ROPE_GGML
    je .Lggml
    call qword ptr [rip + k_rope_table]
    jmp .Lnext
.Lggml:
    mov r9d, [rbx + MODEL_ROPE_DIMS]
    mov eax, [rbx + MODEL_ROPE_SCALE]
    mov [rsp + 32], rax
    mov rax, [rbx + MODEL_ROPE_FREQS + TENSOR_DATA]
    mov [rsp + 40], rax
    mov eax, [rbx + MODEL_ROPE_STYLE]
    mov [rsp + 48], rax
    call qword ptr [rip + k_rope_table_ggml]
.Lnext:
    add r14, [rbp + FB_RROPE]
    inc r12d
    cmp r12d, [rbp + FB_ROWS]
    jb .Ltable
    add rsp, 72
    pop r14
    pop r12
    ret

# out rows (a MODEL_S_B* field) = tensor (a LAYER field) @ in rows; out rows `stride` apart
.macro FB_MATMUL out, tensor, in, stride
    mov rcx, [rbx + \out]
    lea rdx, [rdi + \tensor]
    mov r8, [rbx + \in]
    mov r9d, [rbp + FB_ROWS]
    mov rax, \stride
    mov [rsp + 32], rax
    call fb_matmul
.endm

# kernel(dst row t, src row t, n) for every row: k_add (dst += src), the model's SwiGLU (dst =
# silu(dst) * src); a bias is a src of stride 0 (every row gets the same vector)
.macro FB_ROWS_OP kernel, dst, src, n, dstride, sstride
    mov rcx, [\kernel]
    mov rdx, [rbx + \dst]
    mov r8, \src
    mov r9d, [rbx + \n]
    mov rax, \dstride
    mov [rsp + 32], rax
    mov rax, \sstride
    mov [rsp + 40], rax
    call fb_rows_op
.endm

.macro FB_INPUT_CHANGED
    mov dword ptr [rbp + FB_XQ_FMT], GGML_TYPE_COUNT
.endm

# fb_layer(rdi = the layer's LAYER row, r13d = its index; rbx, rbp): one layer for the
# batch's rows (the file's header says what). Clobbers the volatile registers. Private.
fb_layer:
    sub rsp, 56
    mov rcx, [rbx + MODEL_S_BXB]
    mov rdx, [rbx + MODEL_S_BX]
    mov r8, [rdi + LAYER_ATTN_NORM + TENSOR_DATA]
    call fb_rows_rmsnorm
    FB_INPUT_CHANGED
    FB_MATMUL MODEL_S_BQ, LAYER_ATTN_Q, MODEL_S_BXB, [rbp+FB_RDIM]
    FB_MATMUL MODEL_S_BK, LAYER_ATTN_K, MODEL_S_BXB, [rbp+FB_KVROW]
    FB_MATMUL MODEL_S_BV, LAYER_ATTN_V, MODEL_S_BXB, [rbp+FB_KVROW]
    FB_ROWS_OP rip+k_add, MODEL_S_BQ, [rdi+LAYER_ATTN_Q_BIAS+TENSOR_DATA], MODEL_DIM, [rbp+FB_RDIM], 0
    FB_ROWS_OP rip+k_add, MODEL_S_BK, [rdi+LAYER_ATTN_K_BIAS+TENSOR_DATA], MODEL_KV_DIM, [rbp+FB_KVROW], 0
    FB_ROWS_OP rip+k_add, MODEL_S_BV, [rdi+LAYER_ATTN_V_BIAS+TENSOR_DATA], MODEL_KV_DIM, [rbp+FB_KVROW], 0
    call fb_rows_rope

    mov rcx, rbx                      # the caches' rows p..p+m-1 of this layer
    mov edx, r13d
    mov r8d, [rbp + FB_POS]
    mov r9, [rbx + MODEL_S_BK]
    mov rax, [rbx + MODEL_S_BV]
    mov [rsp + 32], rax
    mov eax, [rbp + FB_ROWS]
    mov [rsp + 40], rax
    call fw_kv_store
    call fb_attention
    FB_INPUT_CHANGED

    FB_MATMUL MODEL_S_BXB2, LAYER_ATTN_OUTPUT, MODEL_S_BXB, [rbp+FB_RDIM]
    FB_ROWS_OP rip+k_add, MODEL_S_BX, [rbx+MODEL_S_BXB2], MODEL_DIM, [rbp+FB_RDIM], [rbp+FB_RDIM]
    mov rcx, [rbx + MODEL_S_BXB]
    mov rdx, [rbx + MODEL_S_BX]
    mov r8, [rdi + LAYER_FFN_NORM + TENSOR_DATA]
    call fb_rows_rmsnorm
    FB_INPUT_CHANGED
    FB_MATMUL MODEL_S_BHB, LAYER_FFN_GATE, MODEL_S_BXB, [rbp+FB_RHID]
    FB_MATMUL MODEL_S_BHB2, LAYER_FFN_UP, MODEL_S_BXB, [rbp+FB_RHID]
    FB_ROWS_OP rbx+MODEL_SWIGLU, MODEL_S_BHB, [rbx+MODEL_S_BHB2], MODEL_HIDDEN_DIM, [rbp+FB_RHID], [rbp+FB_RHID]
    FB_INPUT_CHANGED
    FB_MATMUL MODEL_S_BXB, LAYER_FFN_DOWN, MODEL_S_BHB, [rbp+FB_RDIM]
    FB_INPUT_CHANGED
    FB_ROWS_OP rip+k_add, MODEL_S_BX, [rbx+MODEL_S_BXB], MODEL_DIM, [rbp+FB_RDIM], [rbp+FB_RDIM]
    add rsp, 56
    ret

# fb_rows_rmsnorm(rcx = out rows, rdx = in rows, r8 = weight f32[dim]; rbx, rbp): out[t] =
# rmsnorm(in[t], weight) for t < FB_ROWS, rows FB_RDIM apart. Clobbers the volatile
# registers. Private.
fb_rows_rmsnorm:
    push rsi
    push rdi
    push r12
    sub rsp, 48
    mov rsi, rcx
    mov rdi, rdx
    mov r12, r8
    mov eax, [rbp + FB_ROWS]
    mov [rsp + 40], eax               # rows left
.Lrow:
    mov rcx, rsi
    mov rdx, rdi
    mov r8, r12
    mov r9d, [rbx + MODEL_DIM]
    mov eax, [rbx + MODEL_RMS_EPS]
    mov [rsp + 32], rax
    lea rax, [rip + k_rmsnorm]        # GGUF models: llama.cpp's arithmetic (rmsnorm_ggml.s)
    lea r10, [rip + k_rmsnorm_ggml]
    cmp dword ptr [rbx + MODEL_FORMAT], MODEL_FORMAT_GGUF
    cmove rax, r10
    call qword ptr [rax]
    add rsi, [rbp + FB_RDIM]
    add rdi, [rbp + FB_RDIM]
    dec dword ptr [rsp + 40]
    jnz .Lrow
    add rsp, 48
    pop r12
    pop rdi
    pop rsi
    ret

# fb_rows_op(rcx = kernel (k_add / k_swiglu's contract: (dst, src, n)), rdx = dst rows,
#   r8 = src rows or 0 (then nothing is done: a missing bias), r9d = n floats a row,
#   [rsp+40] = dst stride bytes, [rsp+48] = src stride bytes (0: the same src for every row);
#   rbp) : kernel(dst + t * dst_stride, src + t * src_stride, n) for t < FB_ROWS. Clobbers
#   the volatile registers. Private.
fb_rows_op:
    test r8, r8
    jz .Lnone
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov rsi, rcx
    mov rdi, rdx
    mov r12, r8
    mov r13d, r9d
    mov r14, [rsp + 88 + 40]          # (40 + 6 pushes = 88 bytes above the return address)
    mov r15, [rsp + 88 + 48]
    mov eax, [rbp + FB_ROWS]
    mov [rsp + 32], eax               # rows left
.Lrow:
    mov rcx, rdi
    mov rdx, r12
    mov r8d, r13d
    call rsi
    add rdi, r14
    add r12, r15
    dec dword ptr [rsp + 32]
    jnz .Lrow
    add rsp, 40
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
.Lnone:
    ret

# fb_rows_rope(rbx, rbp): rotates BQ[t] (n_heads heads) and BK[t] (n_kv_heads) with the
# table BROPE[t], in the model's style, for t < FB_ROWS (forward.s's fw_rope per row).
# Clobbers the volatile registers. Private.
fb_rows_rope:
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 40
    mov rsi, [rbx + MODEL_S_BQ]
    mov rdi, [rbx + MODEL_S_BK]
    mov r12, [rbx + MODEL_S_BROPE]
    mov r13d, [rbp + FB_ROWS]
    lea rax, [rip + k_rope_apply]     # pairs: llama2.c's rotation, or ggml's arithmetic
    lea rdx, [rip + k_rope_apply_ggml]
    cmp dword ptr [rbx + MODEL_ROPE_FORMULA], MODEL_ROPE_GGML
    cmove rax, rdx
    mov [rsp + 32], rax               # the slot (kept above the callees' shadow space)
.Lrow:
    mov rcx, rsi
    mov rdx, r12
    mov r8d, [rbx + MODEL_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    cmp dword ptr [rbx + MODEL_ROPE_STYLE], MODEL_ROPE_NEOX
    je .Lneox
    mov rax, [rsp + 32]
    call qword ptr [rax]
    mov rcx, rdi
    mov rdx, r12
    mov r8d, [rbx + MODEL_KV_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    mov rax, [rsp + 32]
    call qword ptr [rax]
    jmp .Lnext
.Lneox:
    mov eax, [rbx + MODEL_ROPE_DIMS]
    mov [rsp + 32], rax
    call qword ptr [rip + k_rope_apply_neox]
    mov rcx, rdi
    mov rdx, r12
    mov r8d, [rbx + MODEL_KV_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    mov eax, [rbx + MODEL_ROPE_DIMS]
    mov [rsp + 32], rax
    call qword ptr [rip + k_rope_apply_neox]
.Lnext:
    add rsi, [rbp + FB_RDIM]
    add rdi, [rbp + FB_KVROW]
    add r12, [rbp + FB_RROPE]
    dec r13d
    jnz .Lrow
    add rsp, 40
    pop r13
    pop r12
    pop rdi
    pop rsi
    ret

# fb_attention(r13d = layer; rbx, rbp): BXB[t] = attention of BQ[t] over the layer's cache
# rows 0..FB_POS+t, for t < FB_ROWS, through k_attention (the heads split across the cores).
# The parameter block is a copy of MODEL_ATT_BLOCK (model_init_state's fields kept as they
# are) with OUT, Q, the caches and POS set here. Clobbers the volatile registers. Private.
fb_attention:
    push rsi
    push rdi
    push r12
    sub rsp, 32
    xor eax, eax
.Lcopy:
    mov rcx, [rbx + MODEL_ATT_BLOCK + rax]
    mov [rbp + FB_ATT + rax], rcx
    add eax, 8
    cmp eax, ATT_SIZE
    jb .Lcopy
    mov eax, r13d
    imul rax, [rbx + MODEL_KV_LAYER_BYTES]
    mov rcx, [rbx + MODEL_S_KEY_CACHE]
    add rcx, rax
    mov [rbp + FB_ATT + ATT_KCACHE], rcx
    mov rcx, [rbx + MODEL_S_VALUE_CACHE]
    add rcx, rax
    mov [rbp + FB_ATT + ATT_VCACHE], rcx
    mov rsi, [rbx + MODEL_S_BXB]
    mov rdi, [rbx + MODEL_S_BQ]
    xor r12d, r12d
.Lrow:
    mov [rbp + FB_ATT + ATT_OUT], rsi
    mov [rbp + FB_ATT + ATT_Q], rdi
    mov eax, [rbp + FB_POS]
    add eax, r12d
    mov [rbp + FB_ATT + ATT_POS], eax
    lea rcx, [rbp + FB_ATT]
    call qword ptr [rip + k_attention]
    add rsi, [rbp + FB_RDIM]
    add rdi, [rbp + FB_RDIM]
    inc r12d
    cmp r12d, [rbp + FB_ROWS]
    jb .Lrow
    add rsp, 32
    pop r12
    pop rdi
    pop rsi
    ret

# fb_matmul(rcx = out rows, rdx = TENSOR* (ROWS x N, a runnable type), r8 = in f32 rows
#   (round64(4N) bytes apart), r9d = rows B (1..MODEL_BATCH), [rsp+40] = out stride bytes;
#   rbx, rbp) : out[b][i] = row i of the tensor . in[b] for i < ROWS, b < B, through
#   k_par_matmat. The inputs are first converted to the type's vec_dot_type in S_BXQ (rows
#   round64 of their bytes apart) unless S_BXQ already holds these rows in that format
#   (FB_XQ_SRC, FB_XQ_FMT); f32 weights take the rows as they are. Clobbers the volatile
#   registers. Private.
fb_matmul:
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov r12, rcx
    mov r13, rdx
    mov rsi, r8
    mov r14d, r9d
    mov eax, [r13 + TENSOR_N]         # the input rows' stride
    shl rax, 2
    add rax, 63
    and rax, -64
    mov r15, rax
    lea rdi, [rbp + FB_MM]
    mov [rdi + MATMAT_OUT], r12
    mov rax, [rsp + 88 + 40]
    mov [rdi + MATMAT_OUT_STRIDE], rax
    mov rax, [r13 + TENSOR_DATA]
    mov [rdi + MATMAT_W], rax
    mov rax, [r13 + TENSOR_ROW_BYTES]
    mov [rdi + MATMAT_ROW_BYTES], rax
    mov eax, [r13 + TENSOR_N]
    mov [rdi + MATMAT_N], eax
    mov eax, [r13 + TENSOR_ROWS]
    mov [rdi + MATMAT_D], eax
    mov [rdi + MATMAT_B], r14d
    mov eax, [r13 + TENSOR_TYPE]      # rows cut only at whole groups (rows-interleaved types)
    imul eax, eax, GGML_TT_SIZE
    lea rcx, [rip + ggml_type_table]
    mov eax, [rcx + rax + GGML_TT_GROUP_ROWS]
    mov [rdi + MATMAT_GROUP_ROWS], eax
    mov ecx, [r13 + TENSOR_TYPE]
    mov edx, GGML_TT_MATVEC
    call ggml_type_body
    mov [rdi + MATMAT_MATVEC], rax
    mov ecx, [r13 + TENSOR_TYPE]
    mov edx, GGML_TT_MATMAT
    call ggml_type_body
    mov [rdi + MATMAT_BODY], rax
    mov eax, [r13 + TENSOR_TYPE]      # vec_dot_type from the type table
    imul eax, eax, GGML_TT_SIZE
    lea rcx, [rip + ggml_type_table]
    mov r9d, [rcx + rax + GGML_TT_VEC_DOT_TYPE]
    cmp r9d, GGML_TYPE_F32
    je .Lf32
    mov eax, r9d                      # its rows' bytes: N / block_size * block_bytes, round64
    imul eax, eax, GGML_TT_SIZE
    add rcx, rax
    mov eax, [r13 + TENSOR_N]
    xor edx, edx
    div dword ptr [rcx + GGML_TT_BLOCK_SIZE]
    mov edx, [rcx + GGML_TT_BLOCK_BYTES]
    imul rax, rdx
    add rax, 63
    and rax, -64
    mov [rsp + 32], r15               # (the input stride, for the conversion loop)
    mov r15, rax
    mov rax, [rbx + MODEL_S_BXQ]
    mov [rdi + MATMAT_XQ], rax
    mov [rdi + MATMAT_XQ_STRIDE], r15
    cmp r9d, [rbp + FB_XQ_FMT]
    jne .Lconvert
    cmp rsi, [rbp + FB_XQ_SRC]
    je .Lgo
.Lconvert:
    mov [rbp + FB_XQ_FMT], r9d
    mov [rbp + FB_XQ_SRC], rsi
    mov ecx, r9d
    mov edx, GGML_TT_FROM_FLOAT
    call ggml_type_body
    mov r12, rax
    mov rdi, [rbx + MODEL_S_BXQ]
.Lrow:
    mov rcx, rdi
    mov rdx, rsi
    mov r8d, [r13 + TENSOR_N]
    call r12
    add rdi, r15
    add rsi, [rsp + 32]
    dec r14d
    jnz .Lrow
    jmp .Lgo
.Lf32:
    mov [rdi + MATMAT_XQ], rsi
    mov [rdi + MATMAT_XQ_STRIDE], r15
.Lgo:
    lea rcx, [rbp + FB_MM]
    call k_par_matmat
    add rsp, 40
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    ret
