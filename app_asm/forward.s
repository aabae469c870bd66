# The transformer's forward pass for one token, llama2.c's order of operations, every bit of
# arithmetic done by the math kernels through their dispatch table (kernels_asm/kernels.inc):
# this file only sequences them and computes where each layer's weights and cache rows are.
# Contract and the Model struct: model.inc.
#
#   x = token_embedding[token]
#   per layer l:  xb = rmsnorm(x, rms_att[l])
#                 q = wq[l] @ xb;  key_cache[l][pos] = wk[l] @ xb;  value_cache[l][pos] = wv[l] @ xb
#                 RoPE(q), RoPE(key row) with the table of `pos` (computed once per token)
#                 xb = attention(q, key_cache[l][0..pos], value_cache[l][0..pos])
#                 x += wo[l] @ xb
#                 xb = rmsnorm(x, rms_ffn[l]);  hb = silu(w1[l] @ xb) * (w3[l] @ xb)
#                 x += w2[l] @ hb
#   logits = wcls @ rmsnorm(x, rms_final)
.include "model.inc"

.section .text
.global model_forward
.extern k_matvec, k_rmsnorm, k_rope_table, k_rope_apply, k_attention, k_add, k_swiglu

# Frame below the 8 pushes: shadow space, the 5th argument, this layer's cache rows.
.equ FW_ARG5, 32
.equ FW_KROW, 40                      # &key_cache[l][pos]
.equ FW_VROW, 48                      # &value_cache[l][pos]
.equ FW_FRAME, 56                     # 8 pushes + 56 + return address: 16-byte aligned

# Registers through the layer loop (callee-saved, so they survive the kernel calls):
#   rbx Model*, r12 pos, r13 layer l, rsi dim*4 (rms_* row), r14 dim*dim*4 (wq, wo),
#   r15 kv_dim*dim*4 (wk, wv), rbp hidden*dim*4 (w1, w2, w3), rdi l's offset in the caches.

# out = W[l] @ in (d x n): out, W, in are struct fields; n and d are dword struct fields
.macro FW_MATVEC out, w, stride, in, n, d
    mov rcx, [rbx + \out]
    mov rdx, r13
    imul rdx, \stride
    add rdx, [rbx + \w]
    mov r8, [rbx + \in]
    mov r9d, [rbx + \n]
    mov eax, [rbx + \d]
    mov [rsp + FW_ARG5], rax
    call qword ptr [rip + k_matvec]
.endm

# out = rmsnorm(in, W[l]) over dim, eps 1e-5 (a float in the 5th slot)
.macro FW_RMSNORM out, in, w
    mov rcx, [rbx + \out]
    mov rdx, [rbx + \in]
    mov r8, r13
    imul r8, rsi
    add r8, [rbx + \w]
    mov r9d, [rbx + MODEL_DIM]
    mov qword ptr [rsp + FW_ARG5], MODEL_RMS_EPS_BITS
    call qword ptr [rip + k_rmsnorm]
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

    mov eax, edx                      # x = token_embedding[token]
    mov ecx, [rbx + MODEL_DIM]
    imul rax, rcx
    mov rsi, [rbx + MODEL_W_TOKEN_EMBEDDING]
    lea rsi, [rsi + rax * 4]
    mov rdi, [rbx + MODEL_S_X]
    shl rcx, 2
    rep movsb

    mov rcx, [rbx + MODEL_S_ROPE]     # cos/sin for this position, shared by every layer
    mov edx, r12d
    mov r8d, [rbx + MODEL_HEAD_SIZE]
    call qword ptr [rip + k_rope_table]
    lea rax, [rbx + MODEL_ATT_BLOCK]  # (one symbol per operand: keystone drops one of
    mov [rax + ATT_POS], r12d         #  [reg + EQU1 + EQU2], binutils does not)

    mov eax, [rbx + MODEL_DIM]        # per-layer strides in bytes
    lea rsi, [rax * 4]
    mov r14, rax
    imul r14, rsi
    mov r15d, [rbx + MODEL_KV_DIM]
    imul r15, rsi
    mov ebp, [rbx + MODEL_HIDDEN_DIM]
    imul rbp, rsi
    xor r13d, r13d
.Llayer:
    FW_RMSNORM MODEL_S_XB, MODEL_S_X, MODEL_W_RMS_ATT
    FW_MATVEC MODEL_S_Q, MODEL_W_WQ, r14, MODEL_S_XB, MODEL_DIM, MODEL_DIM

    mov rdi, r13                      # this layer's caches, and their row `pos`
    imul rdi, [rbx + MODEL_KV_LAYER_BYTES]
    mov eax, [rbx + MODEL_KV_DIM]
    imul rax, r12
    lea rax, [rdi + rax * 4]
    mov rcx, [rbx + MODEL_S_KEY_CACHE]
    add rcx, rax
    mov [rsp + FW_KROW], rcx
    mov rcx, [rbx + MODEL_S_VALUE_CACHE]
    add rcx, rax
    mov [rsp + FW_VROW], rcx

    mov rcx, [rsp + FW_KROW]          # k straight into the key cache
    mov rdx, r13
    imul rdx, r15
    add rdx, [rbx + MODEL_W_WK]
    mov r8, [rbx + MODEL_S_XB]
    mov r9d, [rbx + MODEL_DIM]
    mov eax, [rbx + MODEL_KV_DIM]
    mov [rsp + FW_ARG5], rax
    call qword ptr [rip + k_matvec]
    mov rcx, [rsp + FW_VROW]          # v straight into the value cache
    mov rdx, r13
    imul rdx, r15
    add rdx, [rbx + MODEL_W_WV]
    mov r8, [rbx + MODEL_S_XB]
    mov r9d, [rbx + MODEL_DIM]
    mov eax, [rbx + MODEL_KV_DIM]
    mov [rsp + FW_ARG5], rax
    call qword ptr [rip + k_matvec]

    mov rcx, [rbx + MODEL_S_Q]        # RoPE: q over dim, k over kv_dim, same table
    mov rdx, [rbx + MODEL_S_ROPE]
    mov r8d, [rbx + MODEL_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    call qword ptr [rip + k_rope_apply]
    mov rcx, [rsp + FW_KROW]
    mov rdx, [rbx + MODEL_S_ROPE]
    mov r8d, [rbx + MODEL_KV_DIM]
    mov r9d, [rbx + MODEL_HEAD_SIZE]
    call qword ptr [rip + k_rope_apply]

    lea rcx, [rbx + MODEL_ATT_BLOCK]  # xb = attention over rows 0..pos of this layer
    mov rax, [rbx + MODEL_S_KEY_CACHE]
    add rax, rdi
    mov [rcx + ATT_KCACHE], rax
    mov rax, [rbx + MODEL_S_VALUE_CACHE]
    add rax, rdi
    mov [rcx + ATT_VCACHE], rax
    call qword ptr [rip + k_attention]

    FW_MATVEC MODEL_S_XB2, MODEL_W_WO, r14, MODEL_S_XB, MODEL_DIM, MODEL_DIM
    mov rcx, [rbx + MODEL_S_X]        # x += wo @ att_out
    mov rdx, [rbx + MODEL_S_XB2]
    mov r8d, [rbx + MODEL_DIM]
    call qword ptr [rip + k_add]

    FW_RMSNORM MODEL_S_XB, MODEL_S_X, MODEL_W_RMS_FFN
    FW_MATVEC MODEL_S_HB, MODEL_W_W1, rbp, MODEL_S_XB, MODEL_DIM, MODEL_HIDDEN_DIM
    FW_MATVEC MODEL_S_HB2, MODEL_W_W3, rbp, MODEL_S_XB, MODEL_DIM, MODEL_HIDDEN_DIM
    mov rcx, [rbx + MODEL_S_HB]       # hb = silu(hb) * hb2
    mov rdx, [rbx + MODEL_S_HB2]
    mov r8d, [rbx + MODEL_HIDDEN_DIM]
    call qword ptr [rip + k_swiglu]
    FW_MATVEC MODEL_S_XB, MODEL_W_W2, rbp, MODEL_S_HB, MODEL_HIDDEN_DIM, MODEL_DIM
    mov rcx, [rbx + MODEL_S_X]        # x += w2 @ hb
    mov rdx, [rbx + MODEL_S_XB]
    mov r8d, [rbx + MODEL_DIM]
    call qword ptr [rip + k_add]

    inc r13d
    cmp r13d, [rbx + MODEL_N_LAYERS]
    jb .Llayer

    xor r13d, r13d                    # final norm (in place) and the classifier
    FW_RMSNORM MODEL_S_X, MODEL_S_X, MODEL_W_RMS_FINAL
    FW_MATVEC MODEL_S_LOGITS, MODEL_W_WCLS, r13, MODEL_S_X, MODEL_DIM, MODEL_VOCAB_SIZE
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
