# Attention for one query position, every head (the ATT_* block in kernels.inc; this file is
# ATT_STYLE_LLAMA2C, the entries hand ATT_STYLE_GGML blocks to attention_ggml.s):
#   att[h][t] = dot(q_h, k[t][kvh]) / sqrt(hs), t = 0..pos;  softmax(att[h][0..pos]);
#   out_h = sum_t att[h][t] * v[t][kvh],   kvh = h / (n_heads / n_kv_heads)
# as llama2.c does it. One body for both paths: attention_sse2/_avx2 hand it the dot,
# softmax and axpy of their path, which it calls through its frame (so the stack
# discipline checked under unicorn for the SSE2 path is the same code the AVX2 path runs).
# The caches' element type (ATT_KV_TYPE) picks the dot and axpy: f32 caches use vecops.s's
# dot_/axpy_ bodies (the results of a cache without the field, bit for bit); f16 caches the
# dot_f16_/axpy_f16_ bodies below, which widen each f16 exactly to f32 (F16C's vcvtph2ps on
# the AVX2 path, integer SSE2 on the other: ggml_cvt.inc) and do the arithmetic as the f32
# bodies do (the same partial sums, FMA on AVX2), as ggml's f16 KV cache is read: each
# element's f32 value, products and sums in f32.
.include "kernels.inc"
.include "ggml.inc"
.include "kmacros.inc"
.include "ggml_cvt.inc"

.section .text
.global attention_sse2, attention_avx2, attention_heads_sse2, attention_heads_avx2
.global dot_f16_sse2, dot_f16_avx2, axpy_f16_sse2, axpy_f16_avx2
.extern dot_sse2, softmax_sse2, axpy_sse2, dot_avx2, softmax_avx2, axpy_avx2
.extern attention_ggml_heads_sse2, attention_ggml_heads_avx2

# attention_sse2(rcx = params): every head
attention_sse2:
    xor edx, edx
    mov r8d, dword ptr [rcx + ATT_N_HEADS]
# attention_heads_sse2(rcx = params, edx = first head, r8d = heads): heads first .. first+heads-1
# only (their out, att rows); how kernels_asm/parallel.s shares the heads across cores
attention_heads_sse2:
    cmp dword ptr [rcx + ATT_STYLE], ATT_STYLE_GGML
    je attention_ggml_heads_sse2
    lea rax, [rip + dot_sse2]
    lea r10, [rip + softmax_sse2]
    lea r11, [rip + axpy_sse2]
    cmp dword ptr [rcx + ATT_KV_TYPE], GGML_TYPE_F16
    jne attention_common
    lea rax, [rip + dot_f16_sse2]
    lea r11, [rip + axpy_f16_sse2]
    jmp attention_common

# attention_avx2(rcx = params): every head
attention_avx2:
    xor edx, edx
    mov r8d, dword ptr [rcx + ATT_N_HEADS]
# attention_heads_avx2(rcx = params, edx = first head, r8d = heads)
attention_heads_avx2:
    cmp dword ptr [rcx + ATT_STYLE], ATT_STYLE_GGML
    je attention_ggml_heads_avx2
    lea rax, [rip + dot_avx2]
    lea r10, [rip + softmax_avx2]
    lea r11, [rip + axpy_avx2]
    cmp dword ptr [rcx + ATT_KV_TYPE], GGML_TYPE_F16
    jne attention_common
    lea rax, [rip + dot_f16_avx2]
    lea r11, [rip + axpy_f16_avx2]
    jmp attention_common

# frame: [rsp+0..31] shadow space for our calls, then
.equ AT_DOT, 32                       # qword: dot(a, b, n) -> xmm0
.equ AT_SOFTMAX, 40                   # qword: softmax(x, n)
.equ AT_AXPY, 48                      # qword: axpy(y, x, n, a = xmm3)
.equ AT_SQRT_HS, 56                   # float: sqrt(head_size)
.equ AT_KV_MUL, 60                    # dword: n_heads / n_kv_heads
.equ AT_HEAD0, 64                     # dword: the first head
.equ AT_HEAD_END, 68                  # dword: one past the last head
.equ AT_SHIFT, 72                     # dword: log2 of a cache element's bytes (2 f32, 1 f16)
.equ AT_FRAME, 88                     # 8 pushes + 88: rsp 16-aligned at our calls

# attention_common(rcx = params, edx = first head, r8d = heads, rax = dot, r10 = softmax,
#                  r11 = axpy; dot and axpy read cache rows of ATT_KV_TYPE elements)
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
    mov ecx, 2                        # f32 elements: 4 bytes
    cmp dword ptr [rbx + ATT_KV_TYPE], GGML_TYPE_F16
    jne .Lelement
    mov ecx, 1                        # f16: 2
.Lelement:
    mov [rsp + AT_SHIFT], ecx
    mov r15d, dword ptr [rbx + ATT_N_KV_HEADS]
    imul r15, r14
    shl r15, cl                       # bytes per cache row (kv_dim elements)
    mov r12d, [rsp + AT_HEAD0]        # h
.Lhead:
    cmp r12d, dword ptr [rsp + AT_HEAD_END]
    jae .Ldone
    mov eax, r12d
    xor edx, edx
    div dword ptr [rsp + AT_KV_MUL]
    imul rax, r14
    mov ecx, [rsp + AT_SHIFT]
    mov rbp, rax
    shl rbp, cl                       # byte offset of KV head h / kv_mul in a cache row
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

# dot_f16_sse2(rcx = a f32*, rdx = b f16*, r8d = n) -> xmm0 = sum a[i] * f32(b[i]): 8 at a
# time in two 4-lane partial sums, then 4, then one at a time: dot_sse2's order, so the
# result is dot_sse2's on the widened row, bit for bit. Any n (0: 0.0), any alignment,
# nothing read past the ends. Changes rax, r9-r11, xmm0-xmm5. MXCSR.DAZ clear (the
# default): GH2F_MV_SSE2 makes f16 subnormals f32 subnormals.
dot_f16_sse2:
    mov r8d, r8d
    mov r9, r8
    and r9, -8
    mov r11, r8
    and r11, -4
    xorps xmm0, xmm0
    xorps xmm1, xmm1
    xor eax, eax
.Lvec:
    cmp rax, r9
    jae .Lvec4
    movdqu xmm2, [rdx + rax * 2]
    movdqa xmm3, xmm2
    punpcklwd xmm2, xmm2              # each half twice in its dword: GH2F_MV_SSE2 keeps
    punpckhwd xmm3, xmm3              # only the low copy's magnitude and sign
    GH2F_MV_SSE2 xmm2, xmm4, xmm5
    GH2F_MV_SSE2 xmm3, xmm4, xmm5
    movups xmm4, [rcx + rax * 4]
    movups xmm5, [rcx + rax * 4 + 16]
    mulps xmm2, xmm4
    mulps xmm3, xmm5
    addps xmm0, xmm2
    addps xmm1, xmm3
    add rax, 8
    jmp .Lvec
.Lvec4:
    cmp rax, r11
    jae .Lfold
    movq xmm2, qword ptr [rdx + rax * 2]
    punpcklwd xmm2, xmm2
    GH2F_MV_SSE2 xmm2, xmm4, xmm5
    movups xmm4, [rcx + rax * 4]
    mulps xmm2, xmm4
    addps xmm0, xmm2
    add rax, 4
.Lfold:
    addps xmm0, xmm1
    KHSUM_SSE2 xmm0, xmm1
.Lone:
    cmp rax, r8
    jae .Ldone
    movzx r10d, word ptr [rdx + rax * 2]
    movd xmm2, r10d
    GH2F_MV_SSE2 xmm2, xmm4, xmm5
    mulss xmm2, dword ptr [rcx + rax * 4]
    addss xmm0, xmm2
    inc rax
    jmp .Lone
.Ldone:
    ret

# axpy_f16_sse2(rcx = y f32*, rdx = x f16*, r8d = n, xmm3 = a): y[i] += a * f32(x[i]) (a
# product, then a sum: axpy_sse2's roundings). 8 at a time, then one. Changes rax, r9, r10,
# xmm0, xmm1, xmm3 (a in every lane), xmm4, xmm5.
axpy_f16_sse2:
    mov r8d, r8d
    mov r9, r8
    and r9, -8
    shufps xmm3, xmm3, 0
    xor eax, eax
.Lvec:
    cmp rax, r9
    jae .Lone
    movdqu xmm0, [rdx + rax * 2]
    movdqa xmm1, xmm0
    punpcklwd xmm0, xmm0
    punpckhwd xmm1, xmm1
    GH2F_MV_SSE2 xmm0, xmm4, xmm5
    GH2F_MV_SSE2 xmm1, xmm4, xmm5
    mulps xmm0, xmm3
    mulps xmm1, xmm3
    movups xmm4, [rcx + rax * 4]
    movups xmm5, [rcx + rax * 4 + 16]
    addps xmm0, xmm4
    addps xmm1, xmm5
    movups [rcx + rax * 4], xmm0
    movups [rcx + rax * 4 + 16], xmm1
    add rax, 8
    jmp .Lvec
.Lone:
    cmp rax, r8
    jae .Ldone
    movzx r10d, word ptr [rdx + rax * 2]
    movd xmm0, r10d
    GH2F_MV_SSE2 xmm0, xmm4, xmm5
    mulss xmm0, xmm3
    addss xmm0, dword ptr [rcx + rax * 4]
    movss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .Lone
.Ldone:
    ret

# dot_f16_avx2(rcx = a f32*, rdx = b f16*, r8d = n) -> xmm0 = sum a[i] * f32(b[i]): 16 at a
# time in two 8-lane FMA sums (dot_avx2's), F16C widening, then one at a time. Changes rax,
# r9-r11, ymm0-ymm3 (upper halves zeroed on return).
dot_f16_avx2:
    mov r8d, r8d
    mov r9, r8
    and r9, -16
    mov r10, r8
    and r10, -8
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    xor eax, eax
.Lvec16:
    cmp rax, r9
    jae .Lvec8
    vcvtph2ps ymm2, xmmword ptr [rdx + rax * 2]
    vcvtph2ps ymm3, xmmword ptr [rdx + rax * 2 + 16]
    vfmadd231ps ymm0, ymm2, [rcx + rax * 4]
    vfmadd231ps ymm1, ymm3, [rcx + rax * 4 + 32]
    add rax, 16
    jmp .Lvec16
.Lvec8:
    cmp rax, r10
    jae .Lfold
    vcvtph2ps ymm2, xmmword ptr [rdx + rax * 2]
    vfmadd231ps ymm0, ymm2, [rcx + rax * 4]
    add rax, 8
.Lfold:
    vaddps ymm0, ymm0, ymm1
    KHSUM_AVX ymm0, xmm0, xmm1
.Lone:
    cmp rax, r8
    jae .Ldone
    movzx r11d, word ptr [rdx + rax * 2]
    vmovd xmm2, r11d
    vcvtph2ps xmm2, xmm2
    vfmadd231ss xmm0, xmm2, dword ptr [rcx + rax * 4]
    inc rax
    jmp .Lone
.Ldone:
    vzeroupper
    ret

# axpy_f16_avx2(rcx = y f32*, rdx = x f16*, r8d = n, xmm3 = a): y[i] += a * f32(x[i]), one
# rounding (FMA, as axpy_avx2), 8 at a time with F16C, then one. Changes rax, r9, r11,
# ymm0, ymm1, ymm3 (upper halves zeroed on return).
axpy_f16_avx2:
    mov r8d, r8d
    mov r9, r8
    and r9, -8
    vbroadcastss ymm3, xmm3
    xor eax, eax
.Lvec:
    cmp rax, r9
    jae .Lone
    vcvtph2ps ymm1, xmmword ptr [rdx + rax * 2]
    vmovups ymm0, [rcx + rax * 4]
    vfmadd231ps ymm0, ymm3, ymm1
    vmovups [rcx + rax * 4], ymm0
    add rax, 8
    jmp .Lvec
.Lone:
    cmp rax, r8
    jae .Ldone
    movzx r11d, word ptr [rdx + rax * 2]
    vmovd xmm1, r11d
    vcvtph2ps xmm1, xmm1
    vmovss xmm0, dword ptr [rcx + rax * 4]
    vfmadd231ss xmm0, xmm3, xmm1
    vmovss dword ptr [rcx + rax * 4], xmm0
    inc rax
    jmp .Lone
.Ldone:
    vzeroupper
    ret
