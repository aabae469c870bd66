# Attention for one query position, every head (the ATT_* block in kernels.inc):
#   att[h][t] = dot(q_h, k[t][kvh]) / sqrt(hs), t = 0..pos;  softmax(att[h][0..pos]);
#   out_h = sum_t att[h][t] * v[t][kvh],   kvh = h / (n_heads / n_kv_heads)
# as llama2.c does it. One body for both paths: attention_sse2/_avx2 hand it the dot,
# softmax and axpy of their path, which it calls through its frame (so the stack
# discipline checked under unicorn for the SSE2 path is the same code the AVX2 path runs).
.include "kernels.inc"

.section .text
.global attention_sse2, attention_avx2, attention_heads_sse2, attention_heads_avx2
.extern dot_sse2, softmax_sse2, axpy_sse2, dot_avx2, softmax_avx2, axpy_avx2

# attention_sse2(rcx = params): every head
attention_sse2:
    xor edx, edx
    mov r8d, dword ptr [rcx + ATT_N_HEADS]
# attention_heads_sse2(rcx = params, edx = first head, r8d = heads): heads first .. first+heads-1
# only (their out, att rows); how kernels_asm/parallel.s shares the heads across cores
attention_heads_sse2:
    lea rax, [rip + dot_sse2]
    lea r10, [rip + softmax_sse2]
    lea r11, [rip + axpy_sse2]
    jmp attention_common

# attention_avx2(rcx = params): every head
attention_avx2:
    xor edx, edx
    mov r8d, dword ptr [rcx + ATT_N_HEADS]
# attention_heads_avx2(rcx = params, edx = first head, r8d = heads)
attention_heads_avx2:
    lea rax, [rip + dot_avx2]
    lea r10, [rip + softmax_avx2]
    lea r11, [rip + axpy_avx2]
    jmp attention_common

# frame: [rsp+0..31] shadow space for our calls, then
.equ AT_DOT, 32                       # qword: dot(a, b, n) -> xmm0
.equ AT_SOFTMAX, 40                   # qword: softmax(x, n)
.equ AT_AXPY, 48                      # qword: axpy(y, x, n, a = xmm3)
.equ AT_SQRT_HS, 56                   # float: sqrt(head_size)
.equ AT_KV_MUL, 60                    # dword: n_heads / n_kv_heads
.equ AT_HEAD0, 64                     # dword: the first head
.equ AT_HEAD_END, 68                  # dword: one past the last head
.equ AT_FRAME, 72                     # 8 pushes + 72: rsp 16-aligned at our calls

# attention_common(rcx = params, edx = first head, r8d = heads, rax = dot, r10 = softmax,
#                  r11 = axpy)
attention_common:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, AT_FRAME
    mov [rsp + AT_DOT], rax
    mov [rsp + AT_SOFTMAX], r10
    mov [rsp + AT_AXPY], r11
    mov [rsp + AT_HEAD0], edx
    add r8d, edx
    mov [rsp + AT_HEAD_END], r8d
    mov rbx, rcx                      # params
    mov r14d, dword ptr [rbx + ATT_HEAD_SIZE]
    cvtsi2ss xmm0, r14
    sqrtss xmm0, xmm0
    movss dword ptr [rsp + AT_SQRT_HS], xmm0
    mov eax, dword ptr [rbx + ATT_N_HEADS]
    xor edx, edx
    div dword ptr [rbx + ATT_N_KV_HEADS]
    mov dword ptr [rsp + AT_KV_MUL], eax
    mov r15d, dword ptr [rbx + ATT_N_KV_HEADS]
    imul r15, r14
    shl r15, 2                        # bytes per cache row (kv_dim floats)
    mov r12d, [rsp + AT_HEAD0]        # h
.Lhead:
    cmp r12d, dword ptr [rsp + AT_HEAD_END]
    jae .Ldone
    mov eax, r12d
    xor edx, edx
    div dword ptr [rsp + AT_KV_MUL]
    imul rax, r14
    lea rbp, [rax * 4]                # byte offset of KV head h / kv_mul in a cache row
    mov rsi, r12
    imul rsi, r14
    shl rsi, 2
    add rsi, [rbx + ATT_Q]            # q_h
    mov edi, dword ptr [rbx + ATT_SEQ_LEN]
    imul rdi, r12
    shl rdi, 2
    add rdi, [rbx + ATT_SCRATCH]      # att_h
    xor r13d, r13d                    # t
.Lscore:
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_KCACHE]
    mov rcx, rsi
    mov r8, r14
    call qword ptr [rsp + AT_DOT]
    divss xmm0, dword ptr [rsp + AT_SQRT_HS]
    movss dword ptr [rdi + r13 * 4], xmm0
    inc r13
    cmp r13d, dword ptr [rbx + ATT_POS]
    jbe .Lscore
    mov rcx, rdi
    mov edx, dword ptr [rbx + ATT_POS]
    inc edx
    call qword ptr [rsp + AT_SOFTMAX]
    mov rsi, r12
    imul rsi, r14
    shl rsi, 2
    add rsi, [rbx + ATT_OUT]          # out_h
    xor eax, eax
.Lzero:
    cmp rax, r14
    jae .Lweigh
    mov dword ptr [rsi + rax * 4], 0
    inc rax
    jmp .Lzero
.Lweigh:
    xor r13d, r13d
.Lsum:
    mov rdx, r13
    imul rdx, r15
    add rdx, rbp
    add rdx, [rbx + ATT_VCACHE]
    mov rcx, rsi
    mov r8, r14
    movss xmm3, dword ptr [rdi + r13 * 4]
    call qword ptr [rsp + AT_AXPY]
    inc r13
    cmp r13d, dword ptr [rbx + ATT_POS]
    jbe .Lsum
    inc r12
    jmp .Lhead
.Ldone:
    add rsp, AT_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret
