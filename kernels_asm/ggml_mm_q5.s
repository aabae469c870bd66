# ggml's Q5_0 and Q5_1 weights times a batch of inputs (Q8_0 / Q8_1): the matmat body kind
# (contract, loop order and registers in ggml_mm.inc; block layouts in ggml_qmacros.inc:
# q5_0 {d, qh[4], qs[16]}, q5_1 {d, m, qh[4], qs[16]}, ggml-common.h). The math per block is
# ggml's vec_dot_q5_0_q8_0 / vec_dot_q5_1_q8_1, as ggml_q5.s's matvec bodies compute it:
#   Q5_0: f32(d_w) * f32(d_x) * sum_j (q_j - 16) * x_j
#   Q5_1: f32(d_w) * f32(d_x) * sum_j q_j * x_j, plus f32(m_w) * f32(s_x) into a separate sum
# with q_j = nibble | (bit j of qh) << 4. As ggml_mm_q4.s, with each row's 5-bit quants
# unpacked once per block (MM_Q5W) for the group's 4 inputs; every output is the matvec
# body's bit for bit.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_qmacros.inc"
.include "ggml_mm.inc"

.section .text
.global matmat_q5_0_avx2, matmat_q5_1_avx2

# MM_Q5W y, base, qs, qh: y = the block's 32 quants (0..31) in element order: the nibbles at
# [base + qs] or 16 where bit j of the u32 at [base + qh] is set; ymm0 clobbered
.macro MM_Q5W y, base, qs, qh
    MM_NIB \y, \base, \qs
    vpbroadcastd ymm0, dword ptr [\base + \qh]
    vpshufb ymm0, ymm0, [rip + kg_bits_shuf]
    vpand ymm0, ymm0, [rip + kg_bits_mask]
    vpcmpeqb ymm0, ymm0, [rip + kg_bits_mask]
    vpand ymm0, ymm0, [rip + kg_b16]
    vpor \y, \y, ymm0
.endm

.macro MM_Q5_0_PAIR pre
    GPREFETCH rdx
    GPREFETCH rdx+rbx
    MM_SCALES0R \pre, ymm2, ymm3, xmm3
    MM_Q5W ymm6, rdx, 6, 2
    MM_Q5W ymm7, rdx+rbx, 6, 2
    MM_DOTO_PAIR rsi, 0x00, ymm8, ymm12
    MM_DOTO_PAIR rsi+rdi, 0x55, ymm9, ymm13
    MM_DOTO_PAIR rsi+r10, 0xaa, ymm10, ymm14
    MM_DOTO_PAIR rsi+rbp, 0xff, ymm11, ymm15
    add rdx, 22
    add rsi, 34
.if \pre
    add rax, 16
.endif
.endm
.macro MM_Q5_0_ROW a0, a1, a2, a3
    GPREFETCH rdx
    MM_SCALES0 1
    MM_Q5W ymm6, rdx, 6, 2
    MM_DOTO_ROW rsi, 0, \a0
    MM_DOTO_ROW rsi+rdi, 4, \a1
    MM_DOTO_ROW rsi+r10, 8, \a2
    MM_DOTO_ROW rsi+rbp, 12, \a3
    add rdx, 22
    add rsi, 34
.endm

.macro MM_Q5_1_PAIR pre
    GPREFETCH rdx
    GPREFETCH rdx+rbx
    MM_SCALES1R \pre, ymm2, ymm3, xmm3, ymm4, xmm4
    MM_Q5W ymm6, rdx, 8, 4
    MM_Q5W ymm7, rdx+rbx, 8, 4
    MM_DOTU_PAIR rsi, 0x00, ymm8, ymm12
    MM_DOTU_PAIR rsi+rdi, 0x55, ymm9, ymm13
    MM_DOTU_PAIR rsi+r10, 0xaa, ymm10, ymm14
    MM_DOTU_PAIR rsi+rbp, 0xff, ymm11, ymm15
    add rdx, 24
    add rsi, 36
.if \pre
    add rax, 32
.endif
.endm
.macro MM_Q5_1_ROW a0, a1, a2, a3
    GPREFETCH rdx
    MM_SCALES1 1
    MM_Q5W ymm6, rdx, 8, 4
    MM_DOTU_ROW rsi, 0, \a0
    MM_DOTU_ROW rsi+rdi, 4, \a1
    MM_DOTU_ROW rsi+r10, 8, \a2
    MM_DOTU_ROW rsi+rbp, 12, \a3
    add rdx, 24
    add rsi, 36
.endm

# matmat_q5_0_avx2(rcx = out, rdx = W, r8 = xq (Q8_0 inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q5_0_avx2:
    MM_PROLOGUE_SAVE MM_FRAME_Q
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    imul rbx, r9, 22                # bytes per row
    MM_TILE_ROWS
    vmovdqu ymm5, [rip + kg_b16]
.Ltile:
    test r15, r15
    jz .Ldone
    test r14, r14
    jz .Ldone
    MM_TILE_BEGIN
.Lgroup:
    mov rax, qword ptr [rsp + MM_BL]
    test rax, rax
    jz .Ltile_done
    MM_GROUP_BEGIN
    cmp r9, MM_XS_CAP0
    ja .Lpair
    mov rsi, qword ptr [rsp + MM_XG]
    lea rax, [rsp + MM_XS]
    mov r11, r9
.Lfill:                               # the group's activation scales, once
    test r11, r11
    jz .Lpair
    MM_XSCALE0
    add rsi, 34
    add rax, 16
    dec r11
    jmp .Lfill
.Lpair:
    cmp r8, 2
    jb .Lrow
    MM_ZERO_ACC
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
    test r11, r11
    jz .Lpair_done
    cmp r9, MM_XS_CAP0
    ja .Lqblock
    lea rax, [rsp + MM_XS]
.Lpblock:                             # activation scales from the group's table
    MM_Q5_0_PAIR 1
    dec r11
    jnz .Lpblock
    jmp .Lpair_done
.Lqblock:                             # rows too long for the table: converted here
    MM_Q5_0_PAIR 0
    dec r11
    jnz .Lqblock
.Lpair_done:
    MM_PAIR_STORE
    add rcx, 8
    add rdx, rbx                      # past the pair's second row
    sub r8, 2
    jmp .Lpair
.Lrow:                                # an odd last row: every block into ymm8-11 in order
    test r8, r8
    jz .Lgroup_done
    MM_ZERO_ACC
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
.Lrblock:
    test r11, r11
    jz .Lrow_done
    MM_Q5_0_ROW ymm8, ymm9, ymm10, ymm11
    dec r11
    jmp .Lrblock
.Lrow_done:
    MM_ROW_STORE
.Lgroup_done:
    MM_GROUP_END 4
    jmp .Lgroup
.Ltile_done:
    MM_TILE_END rbx
    jmp .Ltile
.Ldone:
    MM_EPILOGUE MM_FRAME_Q


# matmat_q5_1_avx2(rcx = out, rdx = W, r8 = xq (Q8_1 inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q5_1_avx2:
    MM_PROLOGUE_SAVE MM_FRAME_Q
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    imul rbx, r9, 24                # bytes per row
    MM_TILE_ROWS
.Ltile:
    test r15, r15
    jz .Ldone
    test r14, r14
    jz .Ldone
    MM_TILE_BEGIN
.Lgroup:
    mov rax, qword ptr [rsp + MM_BL]
    test rax, rax
    jz .Ltile_done
    MM_GROUP_BEGIN
    cmp r9, MM_XS_CAP1
    ja .Lpair
    mov rsi, qword ptr [rsp + MM_XG]
    lea rax, [rsp + MM_XS]
    mov r11, r9
.Lfill:                               # the group's activation scales, once
    test r11, r11
    jz .Lpair
    MM_XSCALE1
    add rsi, 36
    add rax, 32
    dec r11
    jmp .Lfill
.Lpair:
    cmp r8, 2
    jb .Lrow
    MM_ZERO_ACC
    vxorps xmm5, xmm5, xmm5          # the pair's m*s sums
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
    test r11, r11
    jz .Lpair_done
    cmp r9, MM_XS_CAP1
    ja .Lqblock
    lea rax, [rsp + MM_XS]
.Lpblock:                             # activation scales from the group's table
    MM_Q5_1_PAIR 1
    dec r11
    jnz .Lpblock
    jmp .Lpair_done
.Lqblock:                             # rows too long for the table: converted here
    MM_Q5_1_PAIR 0
    dec r11
    jnz .Lqblock
.Lpair_done:
    vmovups [rsp + MM_M], ymm5
    MM_PAIR_STORE
    add rcx, 8
    add rdx, rbx                      # past the pair's second row
    sub r8, 2
    jmp .Lpair
.Lrow:                                # an odd last row: every block into ymm8-11 in order
    test r8, r8
    jz .Lgroup_done
    MM_ZERO_ACC
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
.Lrblock:
    test r11, r11
    jz .Lrow_done
    MM_Q5_1_ROW ymm8, ymm9, ymm10, ymm11
    dec r11
    jmp .Lrblock
.Lrow_done:
    MM_ROW_STORE
.Lgroup_done:
    MM_GROUP_END 4
    jmp .Lgroup
.Ltile_done:
    MM_TILE_END rbx
    jmp .Ltile
.Ldone:
    MM_EPILOGUE MM_FRAME_Q

