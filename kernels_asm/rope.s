# RoPE as llama2.c applies it, split in two: rope_table_x87 computes the (cos, sin) of one
# position once (head_size/2 angles, x87: f2xm1/fscale for 10000^e, fsincos), and
# rope_apply rotates q and k with it. For pair p (elements 2p, 2p+1 of a head):
#   e = f32(2p / hs);  freq = f32(1 / f32(10000^e));  v = f32(pos * freq)
# with each f32() a rounding to float, as llama2.c's float code does, then cos v and sin v
# rounded once. The table is C[hs] (cos v twice per pair) then S[hs] (-sin v, +sin v), so
# rotating is v*C + swap_pairs(v)*S:  (a, b) -> (a cos - b sin, a sin + b cos), computed
# as two products and a sum exactly like llama2.c (no FMA: bit-identical to its f32 math).
.include "kernels.inc"

.section .text
.global rope_table_x87, rope_apply_sse2, rope_apply_avx2

# rope_table_x87(rcx = table (2*hs floats), edx = pos, r8d = hs, even). Uses its shadow
# space as scratch; leaves the x87 stack empty.
rope_table_x87:
    mov r8d, r8d
    mov dword ptr [rsp + 8], edx      # pos (int32)
    mov dword ptr [rsp + 16], r8d     # hs (int32)
    lea r9, [rcx + r8 * 4]            # S
    xor eax, eax                      # element index j = 2p
.Lpair:
    lea r10, [rax + 1]
    cmp r10, r8
    jae .Ldone
    mov dword ptr [rsp + 24], eax
    fild dword ptr [rsp + 24]
    fidiv dword ptr [rsp + 16]        # j / hs
    fstp dword ptr [rsp + 24]
    fld dword ptr [rsp + 24]          # e = f32(j / hs)
    fldl2t
    fadd st(0), st(0)
    fadd st(0), st(0)                 # log2(10000) = 4 log2(10), e
    fmulp st(1), st(0)                # y = e log2(10000)
    fld st(0)                         # 2^y = 2^(y - round(y)) * 2^round(y)
    frndint                           # n, y
    fxch st(1)                        # y, n
    fsub st(0), st(1)                 # f = y - n in [-1/2, 1/2], n
    f2xm1
    fld1
    faddp st(1), st(0)                # 2^f, n
    fscale                            # 2^y, n
    fstp st(1)
    fstp dword ptr [rsp + 24]         # f32(10000^e)
    fld1
    fdiv dword ptr [rsp + 24]         # 1 / that
    fstp dword ptr [rsp + 24]         # freq = f32(...)
    fild dword ptr [rsp + 8]
    fmul dword ptr [rsp + 24]
    fstp dword ptr [rsp + 24]
    fld dword ptr [rsp + 24]          # v = f32(pos * freq)
    fsincos                           # cos v, sin v
    fst dword ptr [rcx + rax * 4]
    fstp dword ptr [rcx + rax * 4 + 4]
    fst dword ptr [r9 + rax * 4 + 4]  # +sin
    fchs
    fstp dword ptr [r9 + rax * 4]     # -sin
    add rax, 2
    jmp .Lpair
.Ldone:
    ret

# rope_apply_sse2(rcx = v, rdx = table, r8d = n, r9d = hs): n a multiple of hs, hs even
rope_apply_sse2:
    mov r8d, r8d
    mov r9d, r9d
    test r9, r9
    jz .Ldone
    shl r8, 2                         # bytes left
    lea r10, [r9 * 4]                 # head bytes
    lea r9, [rdx + r10]               # S
    mov r11, r10
    and r11, -16
.Lhead:
    cmp r8, r10
    jb .Ldone
    xor eax, eax
.Lvec:
    cmp rax, r11
    jae .Lpair
    movups xmm0, [rcx + rax]
    movaps xmm1, xmm0
    shufps xmm1, xmm1, 0xB1           # b0 a0 b1 a1
    movups xmm2, [rdx + rax]
    movups xmm3, [r9 + rax]
    mulps xmm0, xmm2
    mulps xmm1, xmm3
    addps xmm0, xmm1
    movups [rcx + rax], xmm0
    add rax, 16
    jmp .Lvec
.Lpair:
    cmp rax, r10
    jae .Lnext
    movsd xmm0, qword ptr [rcx + rax]
    movaps xmm1, xmm0
    shufps xmm1, xmm1, 0xB1
    movsd xmm2, qword ptr [rdx + rax]
    movsd xmm3, qword ptr [r9 + rax]
    mulps xmm0, xmm2
    mulps xmm1, xmm3
    addps xmm0, xmm1
    movsd qword ptr [rcx + rax], xmm0
    add rax, 8
    jmp .Lpair
.Lnext:
    add rcx, r10
    sub r8, r10
    jmp .Lhead
.Ldone:
    ret

# rope_apply_avx2(rcx = v, rdx = table, r8d = n, r9d = hs): n a multiple of hs, hs even
rope_apply_avx2:
    mov r8d, r8d
    mov r9d, r9d
    test r9, r9
    jz .Ldone
    shl r8, 2
    lea r10, [r9 * 4]
    lea r9, [rdx + r10]
    mov r11, r10
    and r11, -32
.Lhead:
    cmp r8, r10
    jb .Ldone
    xor eax, eax
.Lvec:
    cmp rax, r11
    jae .Lpair
    vmovups ymm0, [rcx + rax]
    vpermilps ymm1, ymm0, 0xB1
    vmulps ymm0, ymm0, [rdx + rax]
    vmulps ymm1, ymm1, [r9 + rax]
    vaddps ymm0, ymm0, ymm1
    vmovups [rcx + rax], ymm0
    add rax, 32
    jmp .Lvec
.Lpair:
    cmp rax, r10
    jae .Lnext
    vmovsd xmm0, qword ptr [rcx + rax]
    vpermilps xmm1, xmm0, 0xB1
    vmovsd xmm2, qword ptr [rdx + rax]
    vmovsd xmm3, qword ptr [r9 + rax]
    vmulps xmm0, xmm0, xmm2
    vmulps xmm1, xmm1, xmm3
    vaddps xmm0, xmm0, xmm1
    vmovsd qword ptr [rcx + rax], xmm0
    add rax, 8
    jmp .Lpair
.Lnext:
    add rcx, r10
    sub r8, r10
    jmp .Lhead
.Ldone:
    vzeroupper
    ret
