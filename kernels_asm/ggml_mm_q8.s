# ggml's Q8_0 weights times a batch of Q8_0 inputs: the matmat body kind (contract, loop
# order and registers in ggml_mm.inc; block layout {f16 d, int8 qs[32]}, ggml-common.h).
# Per block: f32(d_w) * f32(d_x) * sum_j w_j * x_j (ggml's vec_dot_q8_0_q8_0), as
# matvec_q8_0_avx2 (ggml_q8.s) computes it. The two rows' magnitudes |w| are made once per
# block (ymm6, ymm7); per input (in ymm4) the weights' signs, read again from the block (in
# L1), move onto the activation (vpsignb) and vpmaddubsw multiplies |w| by it (as
# GDOTS_AVX2: exact for any weight quant, -128 included, while no activation quant is
# -128, which quantize_row_q8_0 never writes), vpmaddwd by 1, convert, one FMA by the
# scale. Integer sums exact: every output equals the matvec body's bit for bit (ggml's
# rounding: per row and input one accumulator, the blocks in order, hsum_float_8's fold).
# The last row alone: the same, one accumulator per input.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_qmacros.inc"
.include "ggml_mm.inc"

.section .text
.global matmat_q8_0_avx2

# MM_DOTS_PAIR xa, imm, acc0, acc1: input k's block at [xa] (imm = k * 0x55) against the
# pair (|w| in ymm6, ymm7, signs from [rdx + 2], [rdx + rbx + 2]; scales in ymm2, ymm3 as
# MM_SCALES0R leaves them): acc0 += row 0's scale * f32(the 8 sums of 4 products), acc1
# likewise for row 1; ymm0, ymm1, ymm4, ymm5 clobbered. MM_DOTS_ROW: the last row alone
# (w in ymm6, |w| in ymm4, its scales in MM_S).
.macro MM_DOTS_PAIR xa, imm, acc0, acc1
    vmovdqu ymm4, [\xa + 2]
    vpsignb ymm0, ymm4, [rdx + 2]     # x * sign(w0)
    vpsignb ymm1, ymm4, [rdx + rbx + 2]
    vpmaddubsw ymm0, ymm6, ymm0       # |w0| * that
    vpmaddubsw ymm1, ymm7, ymm1
    vpmaddwd ymm0, ymm0, [rip + kg_one_i16]
    vpmaddwd ymm1, ymm1, [rip + kg_one_i16]
    vcvtdq2ps ymm0, ymm0
    vcvtdq2ps ymm1, ymm1
    MM_FMAR ymm0, ymm2, \imm, ymm5, \acc0
    MM_FMAR ymm1, ymm3, \imm, ymm5, \acc1
.endm
.macro MM_DOTS_ROW xa, k4, acc
    vmovdqu ymm2, [\xa + 2]
    vpsignb ymm0, ymm2, ymm6
    vpmaddubsw ymm0, ymm4, ymm0
    vpmaddwd ymm0, ymm0, [rip + kg_one_i16]
    vcvtdq2ps ymm0, ymm0
    MM_FMA ymm0, \k4, \acc
.endm
.macro MM_Q8_0_PAIR pre
    GPREFETCH rdx
    GPREFETCH rdx+rbx
    MM_SCALES0R \pre, ymm2, ymm3, xmm3
    vpabsb ymm6, [rdx + 2]
    vpabsb ymm7, [rdx + rbx + 2]
    MM_DOTS_PAIR rsi, 0x00, ymm8, ymm12
    MM_DOTS_PAIR rsi+rdi, 0x55, ymm9, ymm13
    MM_DOTS_PAIR rsi+r10, 0xaa, ymm10, ymm14
    MM_DOTS_PAIR rsi+rbp, 0xff, ymm11, ymm15
    add rdx, 34
    add rsi, 34
.if \pre
    add rax, 16
.endif
.endm
.macro MM_Q8_0_ROW a0, a1, a2, a3
    GPREFETCH rdx
    MM_SCALES0 1
    vmovdqu ymm6, [rdx + 2]
    vpabsb ymm4, ymm6
    MM_DOTS_ROW rsi, 0, \a0
    MM_DOTS_ROW rsi+rdi, 4, \a1
    MM_DOTS_ROW rsi+r10, 8, \a2
    MM_DOTS_ROW rsi+rbp, 12, \a3
    add rdx, 34
    add rsi, 34
.endm

# matmat_q8_0_avx2(rcx = out, rdx = W, r8 = xq (Q8_0 inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q8_0_avx2:
    MM_PROLOGUE_SAVE MM_FRAME_Q
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    imul rbx, r9, 34                # bytes per row
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
    MM_Q8_0_PAIR 1
    dec r11
    jnz .Lpblock
    jmp .Lpair_done
.Lqblock:                             # rows too long for the table: converted here
    MM_Q8_0_PAIR 0
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
    MM_Q8_0_ROW ymm8, ymm9, ymm10, ymm11
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

