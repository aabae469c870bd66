# ggml's Q4_0 and Q4_1 weights times a batch of inputs (Q8_0 / Q8_1, ggml's vec_dot_type):
# the matmat body kind (contract, loop order and registers in ggml_mm.inc; block layouts
# in ggml_qmacros.inc). The math per block is ggml's vec_dot_q4_0_q8_0 / vec_dot_q4_1_q8_1
# (format docs: ggml-common.h), as the matvec bodies of ggml_q4.s compute it:
#   Q4_0: f32(d_w) * f32(d_x) * sum_j (q_j - 8) * x_j
#   Q4_1: f32(d_w) * f32(d_x) * sum_j q_j * x_j, plus f32(m_w) * f32(s_x) into a separate sum
# Per block the two rows' nibbles are unpacked once (32 bytes each in ymm6, ymm7) and dotted
# with the group's 4 inputs: vpmaddubsw (unsigned nibbles by signed activation quants; Q4_0
# subtracts 8 * (x_2k + x_2k+1), computed once per input for both rows, exact in int16 as
# GPAIR_DOTO_AVX2 states), vpmaddwd by 1 into 8 int32, converted, times the scale into the
# (row, input)'s 8-lane sum with one FMA. The integer sums are exact, so every output is the
# matvec body's bit for bit.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_qmacros.inc"
.include "ggml_mm.inc"

.section .text
.global matmat_q4_0_avx2, matmat_q4_1_avx2

.global kmm_nib_shift
.section .rdata
.balign 32, 0
kmm_nib_shift:  # vpsrlvd counts: the low 128 bits keep the low nibbles, the high get the high
    .long 0, 0, 0, 0, 4, 4, 4, 4

.section .text
# --- Q4_0 (activation Q8_0: {d, qs[32]}, quants at +2; ymm5 = 8 in every byte) -----------
# MM_Q4_0_PAIR pre: one block of the pair (rows at rdx, rdx + rbx) for the group's 4 inputs
# (at rsi + 0 / rdi / r10 / rbp); pre: the activation scales from the table at rax (else
# converted here); advances rdx, rsi (and rax). MM_Q4_0_ROW a0..a3: one block of the last
# row alone into the given accumulators (the matvec's even/odd block sums).
.macro MM_Q4_0_PAIR pre
    GPREFETCH rdx
    GPREFETCH rdx+rbx
    MM_SCALES0R \pre, ymm2, ymm3, xmm3
    MM_NIB ymm6, rdx, 2
    MM_NIB ymm7, rdx+rbx, 2
    MM_DOTO_PAIR rsi, 0x00, ymm8, ymm12
    MM_DOTO_PAIR rsi+rdi, 0x55, ymm9, ymm13
    MM_DOTO_PAIR rsi+r10, 0xaa, ymm10, ymm14
    MM_DOTO_PAIR rsi+rbp, 0xff, ymm11, ymm15
    add rdx, 18
    add rsi, 34
.if \pre
    add rax, 16
.endif
.endm
.macro MM_Q4_0_ROW a0, a1, a2, a3
    GPREFETCH rdx
    MM_SCALES0 1
    MM_NIB ymm6, rdx, 2
    MM_DOTO_ROW rsi, 0, \a0
    MM_DOTO_ROW rsi+rdi, 4, \a1
    MM_DOTO_ROW rsi+r10, 8, \a2
    MM_DOTO_ROW rsi+rbp, 12, \a3
    add rdx, 18
    add rsi, 34
.endm

# --- Q4_1 (activation Q8_1: {d, s, qs[32]}, quants at +4): the same shape ---------------
.macro MM_Q4_1_PAIR pre
    GPREFETCH rdx
    GPREFETCH rdx+rbx
    MM_SCALES1R \pre, ymm2, ymm3, xmm3, ymm4, xmm4
    MM_NIB ymm6, rdx, 4
    MM_NIB ymm7, rdx+rbx, 4
    MM_DOTU_PAIR rsi, 0x00, ymm8, ymm12
    MM_DOTU_PAIR rsi+rdi, 0x55, ymm9, ymm13
    MM_DOTU_PAIR rsi+r10, 0xaa, ymm10, ymm14
    MM_DOTU_PAIR rsi+rbp, 0xff, ymm11, ymm15
    add rdx, 20
    add rsi, 36
.if \pre
    add rax, 32
.endif
.endm
.macro MM_Q4_1_ROW a0, a1, a2, a3
    GPREFETCH rdx
    MM_SCALES1 1
    MM_NIB ymm6, rdx, 4
    MM_DOTU_ROW rsi, 0, \a0
    MM_DOTU_ROW rsi+rdi, 4, \a1
    MM_DOTU_ROW rsi+r10, 8, \a2
    MM_DOTU_ROW rsi+rbp, 12, \a3
    add rdx, 20
    add rsi, 36
.endm

# matmat_q4_0_avx2(rcx = out, rdx = W, r8 = xq (Q8_0 inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_0_avx2:
    MM_PROLOGUE_SAVE MM_FRAME_Q
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    imul rbx, r9, 18                # bytes per row
    MM_TILE_ROWS
    vmovdqu ymm5, [rip + kg_b8]
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
    MM_Q4_0_PAIR 1
    dec r11
    jnz .Lpblock
    jmp .Lpair_done
.Lqblock:                             # rows too long for the table: converted here
    MM_Q4_0_PAIR 0
    dec r11
    jnz .Lqblock
.Lpair_done:
    MM_PAIR_STORE
    add rcx, 8
    add rdx, rbx                      # past the pair's second row
    sub r8, 2
    jmp .Lpair
.Lrow:                                # an odd last row: even blocks into ymm8-11, odd into ymm12-15
    test r8, r8
    jz .Lgroup_done
    MM_ZERO_ACC
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
.Lrblock2:
    cmp r11, 2
    jb .Lrblock1
    MM_Q4_0_ROW ymm8, ymm9, ymm10, ymm11
    MM_Q4_0_ROW ymm12, ymm13, ymm14, ymm15
    sub r11, 2
    jmp .Lrblock2
.Lrblock1:
    test r11, r11
    jz .Lrow_done
    MM_Q4_0_ROW ymm8, ymm9, ymm10, ymm11
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

# matmat_q4_1_avx2(rcx = out, rdx = W, r8 = xq (Q8_1 inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_1_avx2:
    MM_PROLOGUE_SAVE MM_FRAME_Q
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    imul rbx, r9, 20                # bytes per row
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
    MM_Q4_1_PAIR 1
    dec r11
    jnz .Lpblock
    jmp .Lpair_done
.Lqblock:                             # rows too long for the table: converted here
    MM_Q4_1_PAIR 0
    dec r11
    jnz .Lqblock
.Lpair_done:
    vmovups [rsp + MM_M], ymm5
    MM_PAIR_STORE
    add rcx, 8
    add rdx, rbx                      # past the pair's second row
    sub r8, 2
    jmp .Lpair
.Lrow:                                # an odd last row: even blocks into ymm8-11, odd into ymm12-15
    test r8, r8
    jz .Lgroup_done
    MM_ZERO_ACC
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
.Lrblock2:
    cmp r11, 2
    jb .Lrblock1
    MM_Q4_1_ROW ymm8, ymm9, ymm10, ymm11
    MM_Q4_1_ROW ymm12, ymm13, ymm14, ymm15
    sub r11, 2
    jmp .Lrblock2
.Lrblock1:
    test r11, r11
    jz .Lrow_done
    MM_Q4_1_ROW ymm8, ymm9, ymm10, ymm11
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

