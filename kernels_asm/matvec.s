# matvec: out(d) = W(d, n) @ x(n), f32, W row-major. The hot spot of a forward pass: every
# weight is read once per token, so the goal is to stream W at memory bandwidth. Both bodies
# take 4 rows per pass (4 streams, x loaded once for the 4), several accumulators per row,
# and prefetch each row MV_PREFETCH bytes ahead; leftover rows go one at a time, leftover
# columns 4 (sse2) or 8 (avx2) and then 1 at a time, so nothing past W or x is touched.
.include "kernels.inc"
.include "kmacros.inc"

.equ MV_PREFETCH, 512             # bytes ahead of the current column, per row

.section .text
.global matvec_sse2, matvec_avx2

# 16 columns of one row: \va += W[0:4]*x[0:4] + W[8:12]*x[8:12], \vb the odd quarters
# (x in xmm8..xmm11, temporaries xmm12..xmm15, column byte offset rax)
.macro MV_ROW16_SSE2 p, va, vb
    movups xmm12, [\p + rax]
    movups xmm13, [\p + rax + 16]
    movups xmm14, [\p + rax + 32]
    movups xmm15, [\p + rax + 48]
    mulps xmm12, xmm8
    mulps xmm13, xmm9
    mulps xmm14, xmm10
    mulps xmm15, xmm11
    addps \va, xmm12
    addps \vb, xmm13
    addps \va, xmm14
    addps \vb, xmm15
.endm

# matvec_sse2(rcx = out, rdx = W, r8 = x, r9d = n, dword [rsp+40] = d)
matvec_sse2:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 160
    KSAVE_XMM6_15 0
    mov r12d, dword ptr [rsp + 240]   # d: 5 pushes + 160 above the entry rsp's +40
    mov r9d, r9d                      # n (a dword)
    lea r10, [r9 * 4]                 # row stride in bytes
    mov r11, r10
    and r11, -64                      # bytes done 16 columns at a time
    mov r13, r10
    and r13, -16                      # ... then 4 at a time, then 1 at a time up to r10
.Lrows4:
    cmp r12, 4
    jb .Lrows1
    lea rsi, [rdx + r10]              # rows: rdx, rsi, rdi, rbx
    lea rdi, [rsi + r10]
    lea rbx, [rdi + r10]
    xorps xmm0, xmm0
    xorps xmm1, xmm1
    xorps xmm2, xmm2
    xorps xmm3, xmm3
    xorps xmm4, xmm4
    xorps xmm5, xmm5
    xorps xmm6, xmm6
    xorps xmm7, xmm7
    xor eax, eax
    cmp rax, r11
    jae .Lcols4_4
.Lcols4_16:
    movups xmm8, [r8 + rax]
    movups xmm9, [r8 + rax + 16]
    movups xmm10, [r8 + rax + 32]
    movups xmm11, [r8 + rax + 48]
    prefetcht0 [rdx + rax + MV_PREFETCH]
    prefetcht0 [rsi + rax + MV_PREFETCH]
    prefetcht0 [rdi + rax + MV_PREFETCH]
    prefetcht0 [rbx + rax + MV_PREFETCH]
    MV_ROW16_SSE2 rdx, xmm0, xmm1
    MV_ROW16_SSE2 rsi, xmm2, xmm3
    MV_ROW16_SSE2 rdi, xmm4, xmm5
    MV_ROW16_SSE2 rbx, xmm6, xmm7
    add rax, 64
    cmp rax, r11
    jb .Lcols4_16
.Lcols4_4:
    cmp rax, r13
    jae .Lcols4_1
    movups xmm8, [r8 + rax]
    movups xmm12, [rdx + rax]
    movups xmm13, [rsi + rax]
    movups xmm14, [rdi + rax]
    movups xmm15, [rbx + rax]
    mulps xmm12, xmm8
    mulps xmm13, xmm8
    mulps xmm14, xmm8
    mulps xmm15, xmm8
    addps xmm0, xmm12
    addps xmm2, xmm13
    addps xmm4, xmm14
    addps xmm6, xmm15
    add rax, 16
    jmp .Lcols4_4
.Lcols4_1:
    cmp rax, r10
    jae .Lsum4
    movss xmm8, dword ptr [r8 + rax]
    movss xmm12, dword ptr [rdx + rax]
    movss xmm13, dword ptr [rsi + rax]
    movss xmm14, dword ptr [rdi + rax]
    movss xmm15, dword ptr [rbx + rax]
    mulss xmm12, xmm8
    mulss xmm13, xmm8
    mulss xmm14, xmm8
    mulss xmm15, xmm8
    addss xmm0, xmm12
    addss xmm2, xmm13
    addss xmm4, xmm14
    addss xmm6, xmm15
    add rax, 4
    jmp .Lcols4_1
.Lsum4:                               # rows a, b, c, d in xmm0, xmm2, xmm4, xmm6
    addps xmm0, xmm1
    addps xmm2, xmm3
    addps xmm4, xmm5
    addps xmm6, xmm7
    movaps xmm8, xmm0
    unpcklps xmm0, xmm2               # a0 b0 a1 b1
    unpckhps xmm8, xmm2               # a2 b2 a3 b3
    addps xmm0, xmm8
    movaps xmm9, xmm4
    unpcklps xmm4, xmm6               # c0 d0 c1 d1
    unpckhps xmm9, xmm6               # c2 d2 c3 d3
    addps xmm4, xmm9
    movaps xmm10, xmm0
    movlhps xmm0, xmm4                # a02 b02 c02 d02
    movhlps xmm4, xmm10               # a13 b13 c13 d13
    addps xmm0, xmm4
    movups [rcx], xmm0
    add rcx, 16
    lea rdx, [rbx + r10]
    sub r12, 4
    jmp .Lrows4

.Lrows1:                              # the last d % 4 rows, one at a time
    test r12, r12
    jz .Ldone
    xorps xmm0, xmm0
    xorps xmm1, xmm1
    xorps xmm2, xmm2
    xorps xmm3, xmm3
    xor eax, eax
.Lcols1_16:
    cmp rax, r11
    jae .Lcols1_4
    prefetcht0 [rdx + rax + MV_PREFETCH]
    movups xmm8, [r8 + rax]
    movups xmm9, [r8 + rax + 16]
    movups xmm10, [r8 + rax + 32]
    movups xmm11, [r8 + rax + 48]
    MV_ROW16_SSE2 rdx, xmm0, xmm1
    add rax, 64
    jmp .Lcols1_16
.Lcols1_4:
    cmp rax, r13
    jae .Lcols1_1
    movups xmm8, [r8 + rax]
    movups xmm12, [rdx + rax]
    mulps xmm12, xmm8
    addps xmm2, xmm12
    add rax, 16
    jmp .Lcols1_4
.Lcols1_1:
    cmp rax, r10
    jae .Lsum1
    movss xmm8, dword ptr [r8 + rax]
    movss xmm12, dword ptr [rdx + rax]
    mulss xmm12, xmm8
    addss xmm3, xmm12
    add rax, 4
    jmp .Lcols1_1
.Lsum1:
    addps xmm0, xmm1
    addps xmm2, xmm3
    addps xmm0, xmm2
    KHSUM_SSE2 xmm0, xmm1
    movss dword ptr [rcx], xmm0
    add rcx, 4
    add rdx, r10
    dec r12
    jmp .Lrows1
.Ldone:
    KLOAD_XMM6_15 0
    add rsp, 160
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# 32 columns of one row: \va += even 8-column groups, \vb odd ones (x in ymm8..ymm11)
.macro MV_ROW32_AVX2 p, va, vb
    vfmadd231ps \va, ymm8, [\p + rax]
    vfmadd231ps \vb, ymm9, [\p + rax + 32]
    vfmadd231ps \va, ymm10, [\p + rax + 64]
    vfmadd231ps \vb, ymm11, [\p + rax + 96]
.endm

# matvec_avx2(rcx = out, rdx = W, r8 = x, r9d = n, dword [rsp+40] = d)
matvec_avx2:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 160
    KSAVE_XMM6_15_VEX 0
    mov r12d, dword ptr [rsp + 240]   # d
    mov r9d, r9d
    lea r10, [r9 * 4]                 # row stride in bytes
    mov r11, r10
    and r11, -128                     # bytes done 32 columns at a time
    mov r13, r10
    and r13, -32                      # ... then 8 at a time, then 1 at a time up to r10
.Lrows4:
    cmp r12, 4
    jb .Lrows1
    lea rsi, [rdx + r10]
    lea rdi, [rsi + r10]
    lea rbx, [rdi + r10]
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    vxorps xmm4, xmm4, xmm4
    vxorps xmm5, xmm5, xmm5
    vxorps xmm6, xmm6, xmm6
    vxorps xmm7, xmm7, xmm7
    xor eax, eax
    cmp rax, r11
    jae .Lcols4_8
.Lcols4_32:
    vmovups ymm8, [r8 + rax]
    vmovups ymm9, [r8 + rax + 32]
    vmovups ymm10, [r8 + rax + 64]
    vmovups ymm11, [r8 + rax + 96]
    prefetcht0 [rdx + rax + MV_PREFETCH]
    prefetcht0 [rdx + rax + MV_PREFETCH + 64]
    prefetcht0 [rsi + rax + MV_PREFETCH]
    prefetcht0 [rsi + rax + MV_PREFETCH + 64]
    prefetcht0 [rdi + rax + MV_PREFETCH]
    prefetcht0 [rdi + rax + MV_PREFETCH + 64]
    prefetcht0 [rbx + rax + MV_PREFETCH]
    prefetcht0 [rbx + rax + MV_PREFETCH + 64]
    MV_ROW32_AVX2 rdx, ymm0, ymm1
    MV_ROW32_AVX2 rsi, ymm2, ymm3
    MV_ROW32_AVX2 rdi, ymm4, ymm5
    MV_ROW32_AVX2 rbx, ymm6, ymm7
    sub rax, -128
    cmp rax, r11
    jb .Lcols4_32
.Lcols4_8:
    cmp rax, r13
    jae .Lcols4_1
    vmovups ymm8, [r8 + rax]
    vfmadd231ps ymm0, ymm8, [rdx + rax]
    vfmadd231ps ymm2, ymm8, [rsi + rax]
    vfmadd231ps ymm4, ymm8, [rdi + rax]
    vfmadd231ps ymm6, ymm8, [rbx + rax]
    add rax, 32
    jmp .Lcols4_8
.Lcols4_1:                            # vmovss zeroes lanes 1..7, so they add 0
    cmp rax, r10
    jae .Lsum4
    vmovss xmm8, dword ptr [r8 + rax]
    vmovss xmm12, dword ptr [rdx + rax]
    vfmadd231ps ymm0, ymm8, ymm12
    vmovss xmm12, dword ptr [rsi + rax]
    vfmadd231ps ymm2, ymm8, ymm12
    vmovss xmm12, dword ptr [rdi + rax]
    vfmadd231ps ymm4, ymm8, ymm12
    vmovss xmm12, dword ptr [rbx + rax]
    vfmadd231ps ymm6, ymm8, ymm12
    add rax, 4
    jmp .Lcols4_1
.Lsum4:
    vaddps ymm0, ymm0, ymm1
    vaddps ymm2, ymm2, ymm3
    vaddps ymm4, ymm4, ymm5
    vaddps ymm6, ymm6, ymm7
    vhaddps ymm0, ymm0, ymm2          # per 128-bit half: a01 a23 b01 b23
    vhaddps ymm4, ymm4, ymm6
    vhaddps ymm0, ymm0, ymm4          # per half: a b c d
    vextractf128 xmm1, ymm0, 1
    vaddps xmm0, xmm0, xmm1
    vmovups [rcx], xmm0
    add rcx, 16
    lea rdx, [rbx + r10]
    sub r12, 4
    jmp .Lrows4

.Lrows1:
    test r12, r12
    jz .Ldone
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    xor eax, eax
.Lcols1_32:
    cmp rax, r11
    jae .Lcols1_8
    prefetcht0 [rdx + rax + MV_PREFETCH]
    prefetcht0 [rdx + rax + MV_PREFETCH + 64]
    vmovups ymm8, [r8 + rax]
    vmovups ymm9, [r8 + rax + 32]
    vmovups ymm10, [r8 + rax + 64]
    vmovups ymm11, [r8 + rax + 96]
    MV_ROW32_AVX2 rdx, ymm0, ymm1
    sub rax, -128
    jmp .Lcols1_32
.Lcols1_8:
    cmp rax, r13
    jae .Lcols1_1
    vmovups ymm8, [r8 + rax]
    vfmadd231ps ymm2, ymm8, [rdx + rax]
    add rax, 32
    jmp .Lcols1_8
.Lcols1_1:
    cmp rax, r10
    jae .Lsum1
    vmovss xmm8, dword ptr [r8 + rax]
    vmovss xmm12, dword ptr [rdx + rax]
    vfmadd231ps ymm3, ymm8, ymm12
    add rax, 4
    jmp .Lcols1_1
.Lsum1:
    vaddps ymm0, ymm0, ymm1
    vaddps ymm2, ymm2, ymm3
    vaddps ymm0, ymm0, ymm2
    KHSUM_AVX ymm0, xmm0, xmm1
    vmovss dword ptr [rcx], xmm0
    add rcx, 4
    add rdx, r10
    dec r12
    jmp .Lrows1
.Ldone:
    KLOAD_XMM6_15_VEX 0
    add rsp, 160
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    vzeroupper
    ret
