# ggml's Q6_K weights times a batch of Q8_K inputs: the matmat body kind (contract, loop
# order, groups and tiles in ggml_mm.inc). Per super-block the math of matvec_q6_k_avx2
# (ggml_q6_k.s, which states the layout and ggml_vec_dot_q6_K_q8_K's sums):
#   isum = sum_s sc[s] * (sum_{e in s} u[e] * q8[e] - 32 * bsums[s])   (exact, 8 i32 lanes)
#   acc += f32(isum) * (f32(d) * yd)                                    (8 f32 lanes, FMA)
# and the 8 lanes added at the end of the row as there: every output is the matvec body's
# bit for bit. Register blocking: one row times a group of 4 inputs: each group of 32
# weights' u (ymm6, built from ql and qh once) and its two sub-blocks' scale words (ymm7,
# one vpshufb of the scales, as the matvec) meet the 4 inputs' q8 (from memory): isum of
# input k in ymm12 + k, acc in ymm8 + k; ymm4 / ymm5 = scales 0..7 / 8..15 in both lanes,
# ymm1 / ymm2 = the ql / qh bytes in use, r13d = the f16 d. Rows one at a time.
#
# Registers in the super-block loop: rdx = W (the row's super-block), rsi = the group's
# input 0 at this super-block, rdi / r10 / rbp = inputs 1..3's offsets from it, rcx = out,
# r8 = rows left in the tile, r9 = super-blocks per row, r11 = super-blocks left, r12 =
# kg_k_bcast (ggml_consts.s's vpshufb masks); r12-r15 (ggml_mm.inc's) wait in the frame.
.include "kernels.inc"
.include "kmacros.inc"
.include "kquant.inc"
.include "ggml_mm.inc"

.section .rdata
.balign 32, 0
kmm6_m30:               # 0x30: the 2 high bits of a Q6_K quant, moved to bits 4-5
    .rept 32
    .byte 0x30
    .endr

.section .text
.global matmat_q6_k_avx2

# MM6_DOT y, m: the 32 weights in ymm6 against the 4 inputs' q8 at Q8_K offset y, scale
# words by kg_k_bcast + m from sv (ymm4 or ymm5); ymm0, ymm7 clobbered
.macro MM6_DOT1 xa, isum
    vpmaddubsw ymm0, ymm6, [\xa]
    vpmaddwd ymm0, ymm0, ymm7
    vpaddd \isum, \isum, ymm0
.endm
.macro MM6_DOT y, m, sv
    vpshufb ymm7, \sv, [r12 + \m]
    MM6_DOT1 rsi + \y, ymm12
    MM6_DOT1 rsi + rdi + \y, ymm13
    MM6_DOT1 rsi + r10 + \y, ymm14
    MM6_DOT1 rsi + rbp + \y, ymm15
.endm
# MM6_HALF ql, qh, y, sv: 128 weights (as KQ6_HALF); ymm1-ymm3, ymm6 clobbered
.macro MM6_HALF ql, qh, y, sv
    vmovdqu ymm1, [rdx + \ql]
    vmovdqu ymm2, [rdx + \qh]
    vpand ymm6, ymm1, [rip + kg_nib]
    vpsllw ymm3, ymm2, 4
    vpand ymm3, ymm3, [rip + kmm6_m30]
    vpor ymm6, ymm6, ymm3
    MM6_DOT \y, 0, \sv
    vpsrlw ymm6, ymm1, 4
    vpand ymm6, ymm6, [rip + kg_nib]
    vpand ymm3, ymm2, [rip + kmm6_m30]
    vpor ymm6, ymm6, ymm3
    MM6_DOT \y + 64, 64, \sv
    vmovdqu ymm1, [rdx + \ql + 32]
    vpand ymm6, ymm1, [rip + kg_nib]
    vpsllw ymm3, ymm2, 2
    vpand ymm3, ymm3, [rip + kmm6_m30]
    vpor ymm6, ymm6, ymm3
    MM6_DOT \y + 32, 32, \sv
    vpsrlw ymm6, ymm1, 4
    vpand ymm6, ymm6, [rip + kg_nib]
    vpsrlw ymm3, ymm2, 2
    vpand ymm3, ymm3, [rip + kmm6_m30]
    vpor ymm6, ymm6, ymm3
    MM6_DOT \y + 96, 96, \sv
.endm
# MM6_INIT xa, isum: isum = -32 * sum_s sc[s] * bsums[s] (input's Q8_K at xa; ymm3 = the
# scales as words); ymm0 clobbered
.macro MM6_INIT xa, isum
    vpmaddwd ymm0, ymm3, [\xa + Q8K_BSUMS]
    vpslld ymm0, ymm0, 5
    vpxor \isum, \isum, \isum
    vpsubd \isum, \isum, ymm0
.endm
# MM6_SCALE xa, acc, isum: acc += f32(isum) * (f32(d) * yd) (d: the f16 in r13d); ymm0,
# ymm1 clobbered
.macro MM6_SCALE xa, acc, isum
    vmovd xmm1, r13d
    vcvtph2ps xmm1, xmm1
    vmulss xmm1, xmm1, dword ptr [\xa + Q8K_D]
    vbroadcastss ymm1, xmm1
    vcvtdq2ps ymm0, \isum
    vfmadd231ps \acc, ymm0, ymm1
.endm
# MM6_OUT acc, xacc, k: the row's result for input k (lanes added as matvec_q6_k_avx2)
.macro MM6_OUT acc, xacc, k
    KHSUM_AVX \acc, \xacc, xmm0
    mov rax, qword ptr [rsp + MM_O + 8 * \k]
    vmovss dword ptr [rcx + rax], \xacc
.endm

# matmat_q6_k_avx2(rcx = out, rdx = W, r8 = xq (Q8_K inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q6_k_avx2:
    MM_PROLOGUE_SAVE MMK_FRAME
    mov r9d, r9d
    shr r9, 8                         # super-blocks per row
    imul rbx, r9, 210                 # bytes per row
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
    mov qword ptr [rsp + MMK_R12], r12
    mov qword ptr [rsp + MMK_R13], r13
    mov qword ptr [rsp + MMK_R14], r14
    mov qword ptr [rsp + MMK_R15], r15
    mov qword ptr [rsp + MMK_RBX], rbx
    lea r12, [rip + kg_k_bcast]
.Lrow:
    test r8, r8
    jz .Lgroup_done
    MM_ZERO_ACC
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
    test r11, r11
    jz .Lrow_done
.Lblock:
    prefetcht0 byte ptr [rdx + KQ_PREFETCH]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 64]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 128]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 192]
    movzx r13d, word ptr [rdx + 208]  # d (f16)
    vpmovsxbw ymm3, [rdx + 192]       # the 16 scales as words
    MM6_INIT rsi, ymm12
    MM6_INIT rsi + rdi, ymm13
    MM6_INIT rsi + r10, ymm14
    MM6_INIT rsi + rbp, ymm15
    vpermq ymm4, ymm3, 0x44           # scales 0..7 in both lanes
    vpermq ymm5, ymm3, 0xee           # scales 8..15
    MM6_HALF 0, 128, Q8K_QS, ymm4
    MM6_HALF 64, 160, Q8K_QS + 128, ymm5
    MM6_SCALE rsi, ymm8, ymm12
    MM6_SCALE rsi + rdi, ymm9, ymm13
    MM6_SCALE rsi + r10, ymm10, ymm14
    MM6_SCALE rsi + rbp, ymm11, ymm15
    add rdx, 210
    add rsi, Q8K_BYTES
    dec r11
    jnz .Lblock
.Lrow_done:
    MM6_OUT ymm8, xmm8, 0
    MM6_OUT ymm9, xmm9, 1
    MM6_OUT ymm10, xmm10, 2
    MM6_OUT ymm11, xmm11, 3
    add rcx, 4
    dec r8
    jmp .Lrow
.Lgroup_done:
    mov r12, qword ptr [rsp + MMK_R12]
    mov r13, qword ptr [rsp + MMK_R13]
    mov r14, qword ptr [rsp + MMK_R14]
    mov r15, qword ptr [rsp + MMK_R15]
    mov rbx, qword ptr [rsp + MMK_RBX]
    MM_GROUP_END 4
    jmp .Lgroup
.Ltile_done:
    MM_TILE_END rbx
    jmp .Ltile
.Ldone:
    MM_EPILOGUE MMK_FRAME
