# The transformer's forward pass for one token, in llama2.c's (and llama.cpp's) order of
# operations, for any model the loaders fill (llama2.c .bin, GGUF llama / qwen2): weights
# are TENSOR descriptors in their file form (a ggml type each), every bit of arithmetic is
# done by the math kernels through their dispatch tables (kernels_asm/kernels.inc for the
# f32 kernels, ggml_type_body for each type's bodies, peasm/ggml.py): this file only
# sequences them and computes where each layer's cache rows are. Contract: model.inc.
#
#   x = dequantize(tok_embd[token])
#   per layer l:  xb = rmsnorm(x, attn_norm[l])
#                 q = wq[l] @ xb (+ bq);  k = wk[l] @ xb (+ bk);  v = wv[l] @ xb (+ bv)
#                 RoPE(q), RoPE(k) with the table of `pos` (computed once per token)
#                 key_cache[l][pos] = k, value_cache[l][pos] = v   (fw_kv_store: f32 kept,
#                                      or rounded to f16 when the caches are f16, as ggml)
#                 xb = attention(q, key_cache[l][0..pos], value_cache[l][0..pos])
#                 x += wo[l] @ xb
#                 xb = rmsnorm(x, ffn_norm[l]);  hb = silu(w_gate[l] @ xb) * (w_up[l] @ xb)
#                 x += w_down[l] @ hb
#   logits = output @ rmsnorm(x, output_norm)
#
# Each matrix-vector product with a quantized weight first converts its f32 input to the
# weight type's vec_dot_type (Q8_0, Q8_1, F16, ...) as llama.cpp does; the converted input
# is kept in S_XQ and reused while the input is unchanged (wq/wk/wv share one, w_gate/w_up
# another), so it is converted once per input, not once per matrix.
#
# Several cores: each product's rows are queued on the job board (k_par_rows_queue,
# kernels_asm/parallel_queue.s) and the products that share an input are posted as one job
# (k_par_rows_flush after wv; k_par_rows_flush_glu after w_up, whose chunks also do the
# SwiGLU of their rows; wo, w_down and the classifier alone), so a layer posts 4 jobs and
# attention, not 7 and attention; a queued product's output is read only after the flush.
# With no workers each product runs at once on this core.
.include "model.inc"

.section .text
.global model_forward, fw_kv_store, model_embed_row
.extern k_rmsnorm, k_rope_table, k_rope_table_ggml, k_rope_apply, k_rope_apply_neox
.extern k_rope_apply_ggml, k_rmsnorm_ggml
.extern k_attention, k_add, k_swiglu, ggml_type_body, ggml_type_table
.extern k_par_rows_queue, k_par_rows_flush, k_par_rows_flush_glu

# Frame below the 8 pushes: shadow space, stack arguments 5..7.
.equ FW_ARG5, 32
.equ FW_ARG6, 40
.equ FW_ARG7, 48
.equ FW_FRAME, 56                     # 8 pushes + 56 + return address: 16-byte aligned

# Registers through the layer loop (callee-saved, so they survive the kernel calls):
#   rbx Model*, r12 pos, r13 layer l, rdi l's LAYER row, rsi l's offset in the caches.

# out = rmsnorm(in, weight tensor's data) over dim, eps from the config (5th slot)
.macro FW_RMSNORM out, in, tensor
    mov rcx, [rbx + \out]
    mov rdx, [rbx + \in]
    mov r8, [\tensor + TENSOR_DATA]
    mov r9d, [rbx + MODEL_DIM]
    mov eax, [rbx + MODEL_RMS_EPS]
    mov [rsp + FW_ARG5], rax
    lea rax, [rip + k_rmsnorm]        # GGUF models: llama.cpp's arithmetic (rmsnorm_ggml.s)
    lea r10, [rip + k_rmsnorm_ggml]
    cmp dword ptr [rbx + MODEL_FORMAT], MODEL_FORMAT_GGUF
    cmove rax, r10
    call qword ptr [rax]
    mov dword ptr [rbx + MODEL_XQ_FMT], GGML_TYPE_COUNT   # the input changed
.endm

# out (a pointer in rcx-able form) = tensor @ in (a struct field holding an f32 vector)
.macro FW_MATMUL out, tensor, in
    mov rcx, \out
    lea rdx, \tensor
    mov r8, [rbx + \in]
    call fw_matmul
.endm

# vector += bias when the layer has one (qwen2), n floats
.macro FW_BIAS vec, tensor, n
    mov rcx, \vec
    mov rdx, [rdi + \tensor + TENSOR_DATA]
    mov r8d, [rbx + \n]
    call fw_bias
.endm

# model_forward(rcx = Model*, edx = token, r8d = pos) -> rax = logits, or 0 (MODEL_ERROR)
model_forward:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, FW_FRAME
    mov rbx, rcx
    mov eax, [rbx + MODEL_FLAGS]      # header checked, weights bound, run state laid out
    and eax, MODEL_F_READY
    cmp eax, MODEL_F_READY
    mov eax, MODEL_E_NOT_READY
    jne .Lrefuse
    mov eax, MODEL_E_TOKEN
    cmp edx, [rbx + MODEL_VOCAB_SIZE] # unsigned: a negative id is out of range too
    jae .Lrefuse
    mov eax, MODEL_E_POS
    cmp r8d, [rbx + MODEL_CTX_LEN]
    jae .Lrefuse
    mov r12d, r8d
    mov r13d, edx

    mov rcx, [rbx + MODEL_S_X]        # x = dequantize(tok_embd[token])
    mov rdx, rbx
    mov r8d, r13d
    call model_embed_row

    mov rcx, [rbx + MODEL_S_ROPE]     # cos/sin for this position, shared by every layer
    mov edx, r12d
    mov r8d, [rbx + MODEL_HEAD_SIZE]
    cmp dword ptr [rbx + MODEL_ROPE_FORMULA], MODEL_ROPE_GGML
    je .Lrope_ggml
    call qword ptr [rip + k_rope_table]
    jmp .Lrope_done
.Lrope_ggml:
    mov r9d, [rbx + MODEL_ROPE_DIMS]
    mov eax, [rbx + MODEL_ROPE_SCALE]
    mov [rsp + FW_ARG5], rax
    mov rax, [rbx + MODEL_ROPE_FREQS + TENSOR_DATA]
    mov [rsp + FW_ARG6], rax
    mov eax, [rbx + MODEL_ROPE_STYLE]
    mov [rsp + FW_ARG7], rax
    call qword ptr [rip + k_rope_table_ggml]
.Lrope_done:
    lea rax, [rbx + MODEL_ATT_BLOCK]
    mov [rax + ATT_POS], r12d
    mov dword ptr [rbx + MODEL_XQ_FMT], GGML_TYPE_COUNT

    mov rdi, [rbx + MODEL_LAYERS]
    xor r13d, r13d
.Llayer:
    FW_RMSNORM MODEL_S_XB, MODEL_S_X, rdi+LAYER_ATTN_NORM
    FW_MATMUL [rbx+MODEL_S_Q], [rdi+LAYER_ATTN_Q], MODEL_S_XB

    FW_MATMUL [rbx+MODEL_S_K], [rdi+LAYER_ATTN_K], MODEL_S_XB
    FW_MATMUL [rbx+MODEL_S_V], [rdi+LAYER_ATTN_V], MODEL_S_XB
    call k_par_rows_flush             # q, k, v: one job
    FW_BIAS [rbx+MODEL_S_Q], LAYER_ATTN_Q_BIAS, MODEL_DIM
    FW_BIAS [rbx+MODEL_S_K], LAYER_ATTN_K_BIAS, MODEL_KV_DIM
    FW_BIAS [rbx+MODEL_S_V], LAYER_ATTN_V_BIAS, MODEL_KV_DIM

    mov rcx, [rbx + MODEL_S_Q]        # RoPE: q over dim, k over kv_dim, same table
    mov rdx, [rbx + MODEL_S_K]
    call fw_rope

    mov rcx, rbx                      # the caches' row `pos` of this layer = k, v
    mov edx, r13d
    mov r8d, r12d
    mov r9, [rbx + MODEL_S_K]
    mov rax, [rbx + MODEL_S_V]
    mov [rsp + FW_ARG5], rax
    mov dword ptr [rsp + FW_ARG6], 1
    call fw_kv_store

    mov rsi, r13                      # this layer's caches
    imul rsi, [rbx + MODEL_KV_LAYER_BYTES]
    lea rcx, [rbx + MODEL_ATT_BLOCK]  # xb = attention over rows 0..pos of this layer
    mov rax, [rbx + MODEL_S_KEY_CACHE]
    add rax, rsi
    mov [rcx + ATT_KCACHE], rax
    mov rax, [rbx + MODEL_S_VALUE_CACHE]
    add rax, rsi
    mov [rcx + ATT_VCACHE], rax
    call qword ptr [rip + k_attention]
    mov dword ptr [rbx + MODEL_XQ_FMT], GGML_TYPE_COUNT   # xb changed

    FW_MATMUL [rbx+MODEL_S_XB2], [rdi+LAYER_ATTN_OUTPUT], MODEL_S_XB
    call k_par_rows_flush
    mov rcx, [rbx + MODEL_S_X]        # x += wo @ att_out
    mov rdx, [rbx + MODEL_S_XB2]
    mov r8d, [rbx + MODEL_DIM]
    call qword ptr [rip + k_add]

    FW_RMSNORM MODEL_S_XB, MODEL_S_X, rdi+LAYER_FFN_NORM
    FW_MATMUL [rbx+MODEL_S_HB], [rdi+LAYER_FFN_GATE], MODEL_S_XB
    FW_MATMUL [rbx+MODEL_S_HB2], [rdi+LAYER_FFN_UP], MODEL_S_XB
    mov rcx, [rbx + MODEL_SWIGLU]     # gate, up: one job, each chunk's rows then
    mov rdx, [rbx + MODEL_S_HB]       #  hb = silu(hb) * hb2 on them
    mov r8, [rbx + MODEL_S_HB2]
    mov r9d, [rbx + MODEL_HIDDEN_DIM]
    call k_par_rows_flush_glu
    mov dword ptr [rbx + MODEL_XQ_FMT], GGML_TYPE_COUNT   # hb changed
    FW_MATMUL [rbx+MODEL_S_XB], [rdi+LAYER_FFN_DOWN], MODEL_S_HB
    call k_par_rows_flush
    mov dword ptr [rbx + MODEL_XQ_FMT], GGML_TYPE_COUNT   # xb changed
    mov rcx, [rbx + MODEL_S_X]        # x += w_down @ hb
    mov rdx, [rbx + MODEL_S_XB]
    mov r8d, [rbx + MODEL_DIM]
    call qword ptr [rip + k_add]

    add rdi, LAYER_SIZE
    inc r13d
    cmp r13d, [rbx + MODEL_N_LAYERS]
    jb .Llayer

    lea rdi, [rbx + MODEL_OUTPUT_NORM]   # final norm (in place) and the classifier
    FW_RMSNORM MODEL_S_X, MODEL_S_X, rdi
    FW_MATMUL [rbx+MODEL_S_LOGITS], [rbx+MODEL_OUTPUT], MODEL_S_X
    call k_par_rows_flush
    mov dword ptr [rbx + MODEL_ERROR], MODEL_OK
    mov rax, [rbx + MODEL_S_LOGITS]
    jmp .Lret
.Lrefuse:
    mov [rbx + MODEL_ERROR], eax
    xor eax, eax
.Lret:
    add rsp, FW_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# fw_bias(rcx = vector, rdx = bias f32[n] or 0, r8d = n): vector += bias unless rdx is 0.
# Clobbers the volatile registers. Private.
fw_bias:
    test rdx, rdx
    jz .Lnone
    jmp qword ptr [rip + k_add]       # a tail call: k_add returns to our caller
.Lnone:
    ret

# fw_rope(rcx = q, rdx = k row; rbx = Model*): rotates q (n_heads heads) and k (n_kv_heads)
# with the table in S_ROPE, in the model's style. Clobbers the volatile registers. Private.
fw_rope:
    push r14
    push r15
    sub rsp, 40
    mov r14, rcx
    mov r15, rdx
    cmp dword ptr [rbx + MODEL_ROPE_STYLE], MODEL_ROPE_NEOX
    je .Lneox
    lea rax, [rip + k_rope_apply]     # pairs: llama2.c's rotation, or ggml's arithmetic
    lea rdx, [rip + k_rope_apply_ggml]
    cmp dword ptr [rbx + MODEL_ROPE_FORMULA], MODEL_ROPE_GGML
    cmove rax, rdx
    mov [rsp + 32], rax               # the slot (the callee's shadow space ends below)
    mov rdx, [rbx + MODEL_S_ROPE]
    mov r8d, [rbx + MODEL_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    mov rax, [rsp + 32]
    call qword ptr [rax]
    mov rcx, r15
    mov rdx, [rbx + MODEL_S_ROPE]
    mov r8d, [rbx + MODEL_KV_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    mov rax, [rsp + 32]
    call qword ptr [rax]
    jmp .Lout
.Lneox:
    mov rdx, [rbx + MODEL_S_ROPE]
    mov r8d, [rbx + MODEL_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    mov eax, [rbx + MODEL_ROPE_DIMS]
    mov [rsp + 32], rax
    call qword ptr [rip + k_rope_apply_neox]
    mov rcx, r15
    mov rdx, [rbx + MODEL_S_ROPE]
    mov r8d, [rbx + MODEL_KV_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    mov eax, [rbx + MODEL_ROPE_DIMS]
    mov [rsp + 32], rax
    call qword ptr [rip + k_rope_apply_neox]
.Lout:
    add rsp, 40
    pop r15
    pop r14
    ret

# fw_matmul(rcx = out f32*, rdx = TENSOR* (ROWS x N, a runnable type: the binders checked),
#   r8 = x f32[N]; rbx = Model*) : out[i] = row i . x for i < ROWS, with x first converted
#   to the type's vec_dot_type in S_XQ unless S_XQ already holds x in that format (XQ_SRC,
#   XQ_FMT). The product is queued (k_par_rows_queue): out is written by the next
#   k_par_rows_flush (at once with no workers). A conversion first flushes what is queued
#   (a queued product may still read S_XQ). Clobbers the volatile registers. Private.
fw_matmul:
    push rsi
    push rdi
    push r12
    push r13
    push r14
    sub rsp, 64
    mov r12, rcx
    mov r13, rdx
    mov rsi, r8
    mov eax, [r13 + TENSOR_TYPE]      # vec_dot_type from the type table
    imul eax, eax, GGML_TT_SIZE
    lea rcx, [rip + ggml_type_table]
    mov r14d, [rcx + rax + GGML_TT_VEC_DOT_TYPE]
    cmp r14d, GGML_TYPE_F32
    je .Lmatvec                       # f32 weights take x as it is
    cmp r14d, [rbx + MODEL_XQ_FMT]
    jne .Lconvert
    cmp rsi, [rbx + MODEL_XQ_SRC]
    je .Lconverted
.Lconvert:
    call k_par_rows_flush             # queued products may read S_XQ: done before it changes
    mov ecx, r14d
    mov edx, GGML_TT_FROM_FLOAT
    call ggml_type_body
    mov rcx, [rbx + MODEL_S_XQ]
    mov rdx, rsi
    mov r8d, [r13 + TENSOR_N]
    call rax
    mov [rbx + MODEL_XQ_FMT], r14d
    mov [rbx + MODEL_XQ_SRC], rsi
.Lconverted:
    mov rsi, [rbx + MODEL_S_XQ]
.Lmatvec:
    mov ecx, [r13 + TENSOR_TYPE]
    mov edx, GGML_TT_MATVEC
    call ggml_type_body
    mov rcx, rax                      # k_par_rows_queue(body, out, W, x, n, rows, row bytes,
    mov rdx, r12                      #   group rows): the rows shared by the cores
    mov r8, [r13 + TENSOR_DATA]       #   (kernels_asm/parallel_queue.s), cut at whole groups
    mov r9, rsi                       #   of a rows-interleaved type (GROUP_ROWS)
    mov eax, [r13 + TENSOR_N]
    mov [rsp + 32], rax
    mov eax, [r13 + TENSOR_ROWS]
    mov [rsp + 40], rax
    mov rax, [r13 + TENSOR_ROW_BYTES]
    mov [rsp + 48], rax
    mov eax, [r13 + TENSOR_TYPE]
    imul eax, eax, GGML_TT_SIZE
    lea r10, [rip + ggml_type_table]
    mov eax, [r10 + rax + GGML_TT_GROUP_ROWS]
    mov [rsp + 56], rax
    call k_par_rows_queue
    add rsp, 64
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    ret

# ----------------------------------------------------------------------------------------
# The KV cache's writer (one block: the batched prefill, forward_batch.s, calls it too).
#
# fw_kv_store(rcx = Model*, edx = layer, r8d = pos, r9 = K f32 rows, [rsp+40] = V f32 rows,
#             dword [rsp+48] = n) -> eax = MODEL_OK, or MODEL_E_POS when layer >= n_layers or
#             pos + n > ctx_len (nothing stored)
#   Stores the n consecutive kv_dim-float rows of K and of V (row-major, kv_dim floats
#   apart) at positions pos .. pos+n-1 of layer `layer`'s key and value caches, in the
#   caches' element type (MODEL_KV_TYPE): f32 copied; f16 rounded to nearest even, as ggml's
#   fp32 -> fp16 (ggml_type_body(GGML_TYPE_F16, GGML_TT_FROM_FLOAT): quantize_row_f16, F16C's
#   vcvtps2ph with rounding 0 on the AVX2 path, the exact integer rounding of ggml_cvt.inc's
#   GF2H_SSE2 on the SSE2 path; both the same bits for every f32, subnormal results, inf and
#   NaN included). n = 0 stores nothing. Needs the run state (MODEL_F_STATE) and
#   kernels_init. The f32 inputs are only read. Clobbers the volatile registers.
.equ KV_ARG_V, 40 + 8 * 8 + 40       # [rsp+40] at entry, past the 8 pushes and our frame
.equ KV_ARG_N, 48 + 8 * 8 + 40
fw_kv_store:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov rbx, rcx
    mov eax, MODEL_E_POS
    cmp edx, [rbx + MODEL_N_LAYERS]
    jae .Lret
    mov r14d, [rsp + KV_ARG_N]        # rows
    mov r10d, r8d
    add r10, r14
    mov ecx, [rbx + MODEL_CTX_LEN]
    cmp r10, rcx
    ja .Lret
    mov rsi, r9                       # K rows
    mov rdi, [rsp + KV_ARG_V]         # V rows
    mov r12d, edx
    imul r12, [rbx + MODEL_KV_LAYER_BYTES]
    mov ebp, [rbx + MODEL_KV_DIM]     # rbp = bytes of one cache row
    mov eax, r8d
    imul rax, rbp                     # elements before row pos
    add rbp, rbp
    add rax, rax
    cmp dword ptr [rbx + MODEL_KV_TYPE], GGML_TYPE_F16
    je .Lf16
    add rbp, rbp
    add rax, rax
    add r12, rax                      # this layer's row pos, in bytes from a cache's start
    mov ecx, GGML_TYPE_F32            # f32: its to_float body is a copy
    mov edx, GGML_TT_TO_FLOAT
    jmp .Lbody
.Lf16:
    add r12, rax
    mov ecx, GGML_TYPE_F16            # f16: quantize_row_f16
    mov edx, GGML_TT_FROM_FLOAT
.Lbody:
    call ggml_type_body
    mov r15, rax
    mov r13, [rbx + MODEL_S_VALUE_CACHE]
    add r13, r12
    add r12, [rbx + MODEL_S_KEY_CACHE]
.Lrow:
    test r14d, r14d
    jz .Lstored
    mov rcx, r12
    mov rdx, rsi
    mov r8d, [rbx + MODEL_KV_DIM]
    call r15
    mov rcx, r13
    mov rdx, rdi
    mov r8d, [rbx + MODEL_KV_DIM]
    call r15
    add r12, rbp
    add r13, rbp
    mov eax, [rbx + MODEL_KV_DIM]
    lea rsi, [rsi + rax * 4]
    lea rdi, [rdi + rax * 4]
    dec r14d
    jmp .Lrow
.Lstored:
    xor eax, eax                      # MODEL_OK
.Lret:
    add rsp, 40
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# model_embed_row(rcx = out f32[dim], rdx = Model*, r8d = token < vocab) : out = row `token`
#   of the token embedding as floats, in whichever layout the weights are now: the file's
#   (the type's to_float body on row_bytes * token), or F32_R8 (a classifier tied to the
#   embedding and repacked by model_repack.s: the only R8 form an embedding takes; layout
#   in peasm/ggml.py), whose row is gathered from its group, token & ~7: its 32-byte chunk
#   c at c * 256 + (token & 7) * 32, exact copies. Used by model_forward and the batched
#   pass (forward_batch.s) alike. Clobbers the volatile registers.
model_embed_row:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rdx
    mov rsi, rcx
    mov edi, r8d
    mov ecx, [rbx + MODEL_TOK_EMBD + TENSOR_TYPE]
    imul eax, ecx, GGML_TT_SIZE
    lea rdx, [rip + ggml_type_table]
    cmp dword ptr [rdx + rax + GGML_TT_GROUP_ROWS], 1
    ja .Lgather
    mov edx, GGML_TT_TO_FLOAT
    call ggml_type_body
    mov rdx, [rbx + MODEL_TOK_EMBD + TENSOR_ROW_BYTES]
    imul rdx, rdi
    add rdx, [rbx + MODEL_TOK_EMBD + TENSOR_DATA]
    mov rcx, rsi
    mov r8d, [rbx + MODEL_DIM]
    call rax
    jmp .Lembed_out
.Lgather:
    mov r9, [rbx + MODEL_TOK_EMBD + TENSOR_ROW_BYTES]
    mov rax, rdi
    and rax, -8
    imul rax, r9
    add rax, [rbx + MODEL_TOK_EMBD + TENSOR_DATA]   # the group
    mov ecx, edi
    and ecx, 7
    shl ecx, 5
    add rax, rcx                      # the row's first chunk
    xor edx, edx
.Lchunk:
    cmp rdx, r9
    jae .Lembed_out
    movups xmm0, [rax]
    movups xmm1, [rax + 16]
    movups [rsi + rdx], xmm0
    movups [rsi + rdx + 16], xmm1
    add rax, 256
    add rdx, 32
    jmp .Lchunk
.Lembed_out:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret
