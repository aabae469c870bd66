# ggml's Q4_K weights times a batch of Q8_K inputs: the matmat body kind (contract, loop
# order, groups and tiles in ggml_mm.inc). Per super-block the math of matvec_q4_k_avx2
# (ggml_q4_k.s, which states the layout and ggml_vec_dot_q4_K_q8_K's sums):
#   isum = sum_j sc[j] * dot(nibbles of sub-block j, q8 of j)   (exact, 8 i32 lanes)
#   prod = m[2i] * s[2i] + m[2i+1] * s[2i+1], s[j] = bsums[2j] + bsums[2j+1]   (4 lanes)
#   acc_m -= f32(prod) * (yd * dmin) (4 f32 lanes, in the frame), acc += f32(isum) * (yd * d)
# and the lanes added at the end of the row as there (ggml_vec_dot_q4_K_q8_K's AVX2 build):
# every output is the matvec body's bit for bit. Register blocking: one row times a group of 4 inputs: the row's scales and
# mins are decoded once per super-block (general-purpose code, as the matvec), its 4 chunks
# of 64 nibbles unpacked once (ymm6, ymm7) and each dotted with the 4 inputs' q8 (from
# memory) into their isum (ymm12 + k); acc of input k in ymm8 + k, ymm4 = (d, dmin) x 4,
# xmm5 = the mins as words. Rows one at a time (the matvec has no pairs).
#
# Registers in the super-block loop: rdx = W (the row's super-block), rsi = the group's
# input 0 at this super-block, rdi / r10 / rbp = inputs 1..3's offsets from it, rcx = out,
# r8 = rows left in the tile, r9 = super-blocks per row, r11 = super-blocks left, r12 =
# kg_k_sctab (ggml_consts.s: entry s = 16 words of s at s * 32), rax / rbx / r13 / r14 / r15 =
# the scale decode; rbx's and r12-r15's values (ggml_mm.inc's) wait in the frame during a
# group.
.include "kernels.inc"
.include "kmacros.inc"
.include "kquant.inc"
.include "ggml_mm.inc"

.section .text
.global matmat_q4_k_avx2

# MMK_DOT4 xa, acc: input's chunk at the q8 offset y (xa = rsi+reg+y): isum += sc_lo *
# dot(ymm6, q8) + sc_hi * dot(ymm7, q8 + 32), scale table entries at r12 + r13 * 8 and
# r12 + rbx * 8; ymm0, ymm1 clobbered
.macro MMK_DOT xa, isum
    vpmaddubsw ymm0, ymm6, [\xa]
    vpmaddubsw ymm1, ymm7, [\xa + 32]
    vpmaddwd ymm0, ymm0, [r12 + r13 * 8]
    vpmaddwd ymm1, ymm1, [r12 + rbx * 8]
    vpaddd ymm0, ymm0, ymm1
    vpaddd \isum, \isum, ymm0
.endm
# MMK_CHUNK q, y: 64 weights (qs bytes at block offset q) against the 4 inputs' q8 at y
.macro MMK_CHUNK q, y
    vmovdqu ymm6, [rdx + \q]
    vpsrlw ymm7, ymm6, 4
    vpand ymm6, ymm6, [rip + kg_nib]
    vpand ymm7, ymm7, [rip + kg_nib]
    movzx r13d, al
    movzx ebx, ah
    MMK_DOT rsi + \y, ymm12
    MMK_DOT rsi + rdi + \y, ymm13
    MMK_DOT rsi + r10 + \y, ymm14
    MMK_DOT rsi + rbp + \y, ymm15
    shr rax, 16
.endm
# MMK_SCALE xa, acc, isum, k: input k's super-block done (its Q8_K at xa): the min term into
# its 4-lane accumulator at [rsp + MMK_ACCM + 16k] and the isum term into acc, in the
# matvec's order and roundings (KQ_K4_HEAD_AVX2 0: prod = m words x s words); ymm0-ymm3
# clobbered
.macro MMK_SCALE xa, acc, isum, k
    vmovdqu xmm0, [\xa + Q8K_BSUMS]
    vphaddw xmm0, xmm0, [\xa + Q8K_BSUMS + 16]    # s_j = bsums[2j] + bsums[2j+1]
    vpmaddwd xmm0, xmm0, xmm5                      # prod, 4 dwords
    vcvtdq2ps xmm0, xmm0
    vbroadcastss ymm1, dword ptr [\xa + Q8K_D]
    vmulps ymm1, ymm4, ymm1           # (yd * d, yd * dmin) x 4
    vmovshdup ymm2, ymm1
    vmovups xmm3, [rsp + MMK_ACCM + 16 * \k]
    vfnmadd231ps xmm3, xmm0, xmm2
    vmovups [rsp + MMK_ACCM + 16 * \k], xmm3
    vmovsldup ymm2, ymm1
    vcvtdq2ps ymm3, \isum
    vfmadd231ps \acc, ymm3, ymm2
.endm
# MMK_OUT acc, xacc, k: the row's result for input k (as matvec_q4_k_avx2's row end:
# hsum_float_8 of the lanes, plus the min lanes folded 0+2, 1+3, then added)
.macro MMK_OUT acc, xacc, k
    KHSUM_AVX \acc, \xacc, xmm0
    vmovups xmm1, [rsp + MMK_ACCM + 16 * \k]
    vmovhlps xmm2, xmm2, xmm1
    vaddps xmm1, xmm1, xmm2
    vmovshdup xmm2, xmm1
    vaddss xmm1, xmm1, xmm2
    vaddss \xacc, \xacc, xmm1
    mov rax, qword ptr [rsp + MM_O + 8 * \k]
    vmovss dword ptr [rcx + rax], \xacc
.endm

# matmat_q4_k_avx2(rcx = out, rdx = W, r8 = xq (Q8_K inputs), r9d = n, [rsp+40] d, [rsp+48] B,
#                  [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_k_avx2:
    MM_PROLOGUE_SAVE MMK_FRAME
    mov r9d, r9d
    shr r9, 8                         # super-blocks per row
    imul rbx, r9, 144                 # bytes per row
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
    lea r12, [rip + kg_k_sctab]
.Lrow:
    test r8, r8
    jz .Lgroup_done
    MM_ZERO_ACC
    vmovups [rsp + MMK_ACCM], ymm8    # (ymm8 = 0) the min accumulators
    vmovups [rsp + MMK_ACCM + 32], ymm8
    mov rsi, qword ptr [rsp + MM_XG]
    mov r11, r9
    test r11, r11
    jz .Lrow_done
.Lblock:
    prefetcht0 byte ptr [rdx + KQ_PREFETCH]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 64]
    prefetcht0 byte ptr [rdx + KQ_PREFETCH + 128]
    vpbroadcastd xmm4, dword ptr [rdx]    # (d, dmin) x 4
    vcvtph2ps ymm4, xmm4
    mov eax, dword ptr [rdx + 4]      # A: scales and mins (kq_scales_k4's packing)
    mov r13d, dword ptr [rdx + 12]    # C
    mov r14d, eax
    shr r14d, 2
    and r14d, 0x30303030
    and eax, 0x3f3f3f3f
    mov r15d, r13d
    and r15d, 0x0f0f0f0f
    or r15d, r14d
    shl r15, 32
    or rax, r15                       # sc 0..7
    shl rax, 2                        # 4 * sc: table offsets / 8
    mov r14d, dword ptr [rdx + 8]     # B
    mov r15d, r14d
    shr r15d, 2
    and r15d, 0x30303030
    and r14d, 0x3f3f3f3f
    shr r13d, 4
    and r13d, 0x0f0f0f0f
    or r13d, r15d
    shl r13, 32
    or r14, r13                       # m 0..7
    vmovq xmm5, r14
    vpmovzxbw xmm5, xmm5              # m 0..7 as words
    vpxor xmm12, xmm12, xmm12
    vpxor xmm13, xmm13, xmm13
    vpxor xmm14, xmm14, xmm14
    vpxor xmm15, xmm15, xmm15
    MMK_CHUNK 16, 4
    MMK_CHUNK 48, 68
    MMK_CHUNK 80, 132
    MMK_CHUNK 112, 196
    MMK_SCALE rsi, ymm8, ymm12, 0
    MMK_SCALE rsi + rdi, ymm9, ymm13, 1
    MMK_SCALE rsi + r10, ymm10, ymm14, 2
    MMK_SCALE rsi + rbp, ymm11, ymm15, 3
    add rdx, 144
    add rsi, Q8K_BYTES
    dec r11
    jnz .Lblock
.Lrow_done:
    MMK_OUT ymm8, xmm8, 0
    MMK_OUT ymm9, xmm9, 1
    MMK_OUT ymm10, xmm10, 2
    MMK_OUT ymm11, xmm11, 3
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
