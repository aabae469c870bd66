# The matvec bodies of the "8 rows interleaved" weight types Q4_0_R8, Q4_1_R8 and Q8_0_R8
# (AVX2; layout in peasm/ggml.py's module text: per group of 8 rows and block column, 8 f16
# d, Q4_1: 8 f16 m, then 4 vectors (Q8_0: 8) of 32 bytes whose dword lane r holds row r's
# qs[4v..4v+3]). Q8_0_R8: the Q4_0 loops with signed weights (R8V_Q8 below states its
# bounds), acc = fma(f32(I_b), f32(d_w) * f32(d_x), acc) per block as Q4_0 (not the plain
# Q8_0 bodies' rounding: its own matmat, ggml_mm_r8.s, is bit for bit this).
# The math per row and block is ggml's vec_dot_q4_0_q8_0 / vec_dot_q4_1_q8_1 /
# vec_dot_q8_0_q8_0 (format docs: ggml-common.h):
#   Q4_0: f32(d_w) * f32(d_x) * sum_j (q_j - 8) * x_j
#   Q4_1: f32(d_w) * f32(d_x) * sum_j q_j * x_j + f32(m_w) * f32(s_x)
#   Q8_0: f32(d_w) * f32(d_x) * sum_j w_j * x_j
#
#   matvec_q4_<k>_r8_avx2, matvec_q8_0_r8_avx2
#       (rcx = out f32*, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d)
#       peasm/ggml.py's matvec contract, xq in the vec_dot_type (Q8_0: {f16 d, i8 qs[32]},
#       34 bytes; Q8_1: {f16 d, f16 s, i8 qs[32]}, 36 bytes). d a multiple of 8 (the
#       caller's: the rest, d mod 8 rows, are neither read nor written), W at a group's
#       start, n a multiple of 32 (the rest ignored); n = 0 writes d zeros. Unaligned
#       pointers. Clobbers rax, rcx, rdx, r8-r11, ymm0-ymm5 and the upper halves of
#       ymm6-ymm15; saves the rest; vzeroupper before returning. Stack: Q4_0, Q8_0: 56
#       bytes of pushes and R8V_FRAME (4.3 KiB); Q4_1: 168 bytes.
#
# Rounding. Q4_0_R8 (and Q8_0_R8): llama.cpp's repacked Q4_0 gemv's (q4_0_8x8: one FMA a
# block and row), the same as ggml_mm8.inc's, so each output is bit for bit the
# plain-layout matmat_q4_0_avx2's for the same row and input, and the R8 matmat's: per row
# a single f32 accumulator, the blocks in order: acc = fma(f32(I_b), f32(d_w) * f32(d_x)
# (rounded once), acc). I_b is the block's exact integer sum sum_j q_j x_j - 8 sum_j x_j
# (the second term per input block, computed once per call: the chunk's scratch below).
# Q4_1_R8: ggml's vec_dot_q4_1_q8_1 (AVX2), which llama.cpp runs on x86 for Q4_1 (it does
# not repack it), so each output is bit for bit the plain-layout matvec_q4_1_avx2's (whose
# decode logits equal llama.cpp's): per row 8 f32 accumulators, one per ggml lane j (the
# int32 sum of 4 consecutive products of the unpacked block: j < 4 weights 4j..4j+3, j >= 4
# weights 16 + 4(j - 4)..), acc_j = fma(f32(lane_j), f32(d_w) * f32(d_x), acc_j) in block
# order; summs += f32(m_w) * f32(s_x) (product, then sum); the result
# ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7)) + summs
# (hsum_float_8's order); ggml_mm_r8.s's matmat_q4_1_r8_avx2 rounds the same.
#
# Q4_0: per block and group of 8 rows, no horizontal sum: vector v's 32 bytes loaded once,
# its nibbles split (low: weights 4v..4v+3 of each row's block, high: 16 + 4v..), each
# vpmaddubsw'd (the unsigned nibbles q, 0..15) against vpbroadcastd of the input's 4 signed
# bytes (x, -128..127: a Q8 block may hold -128 though ggml's quantizer writes -127..127);
# a pair's sum |q x + q' x'| <= 2 * 15 * 128 = 3840 (no saturation), the 8 products of a
# word lane added in int16: |sum| <= 8 * 3840 = 30720 < 2^15, exact; one vpmaddwd by 1 ->
# the 8 rows' I_b (Q4_0: minus 8 sum x) in 8 int32 lanes, exact in f32 (|I_b| <= 32 * 15 *
# 128 + 8 * 32 * 128 < 2^24). Four groups (32 rows: 4 independent accumulators) at a time,
# so each broadcast serves 4 groups; a last 1..3 groups one at a time.
#
# Q4_1: the same vpmaddubsw, but each half vector vpmaddwd'd by 1 on its own: vector v's
# low nibbles give the 8 rows' ggml lane v, its high nibbles lane 4 + v (|lane| <= 4 * 15 *
# 128, exact), so a block is 8 int32 vectors, 8 conversions and 8 FMAs into the 8 lane
# accumulators of the group's 8 rows, and the fold above is vertical (8 rows at once). Nine
# accumulators a group: one group per pass, the groups in memory order (W read front to
# back: one stream), the input read as it is (no scratch, no chunks: any n).
#
# Prefetch (Q4_0): the 4 groups are 4 sequential streams the hardware prefetchers follow,
# except when a group's bytes (8 rows) fit in a page (R8V_PF_GROUP_MAX: rows of at most 512
# bytes, e.g. SmolLM2's n = 576 in Q4_x): streams that short end before the prefetchers ramp
# up, so while a pass runs over 4 groups it prefetches the next 4 groups' bytes linearly
# (prefetcht2, 4 group blocks' worth per block: the whole next pass by the pass's end).
# Measured (development host, Zen 3 shared by 2 vCPUs, streamed as `peasm bench kernels
# --only ggml --cpu-time`, GB/s, stream_read 17-21, alternating runs): Q4_0_R8 1536x576:
# 10.4-12.2 without, 14.0-17.3 with; at rows of 2048 (and for Q8_0_R8 at any n) the linear
# prefetch lost 5-30% (and one prefetcht0 a group block 1024-2048 ahead lost more): none
# there. In cache the Q4_0 loop runs at about 30-34 GB/s (4.2-5 ns a group block), the
# plain-layout matvec at 10. Q4_1_R8 (same host and way, 3 alternating runs, GB/s and
# ratio to stream_read 19-22): 576x576 18.3-19.8 (0.89-0.98), 1536x576 18.7-19.7
# (0.84-0.99), 576x1536 16.6-17.1 (0.74-0.86), 2048x5632 17.2-19.7 (0.85-0.95); the plain
# matvec_q4_1_avx2 then (2 rows at a time) 7-10 (0.31-0.46), now (4 rows, ggml_quads.inc)
# 0.54-0.66 of stream_read; the former 4-groups body (ggml_mm8.inc's rounding)
# 13.4-16.8, 13.7-15.6, 16.5-18.0, 18.6-21.7. In cache 21-26 GB/s (6.2-7.6 ns a group
# block: 8 conversions and FMAs a row and block, as ggml's), the former body 30-41.
#
# Loop order (Q4_0, Q8_0): K = n / 32 blocks in chunks of at most R8V_KC_MAX blocks (one
# chunk for n <= 16384); per chunk the input's blocks into a scratch on the stack (f32(d_x),
# then Q4_0: 8 sum x as int32), then every group over the chunk: its accumulators start at 0
# (first chunk) or at the outputs (later chunks) and are stored back to the outputs.
#
# Registers (Q4_0, Q8_0): rbx = bytes per row, then the prefetch pointer, r12 = bytes per
# group (8 rows), r13 = out, r14 = W, r15 = groups; the chunk: rdx = the current groups'
# block c0, rcx = their outputs, r10 = groups left; the block loop: rsi = group 0's block
# (groups 1, 2: + r12, + 2 r12), rdi = group 3's, r11 = the input's block, rax = its
# scratch, r9 = blocks left; ymm0-ymm3 the groups' int16 sums (Q8_0: int32), ymm4, ymm5 the
# broadcast input bytes (Q8_0: x, |x|), ymm6, ymm7 scratch, ymm8 = f32(d_x), ymm9 = 0x0f in
# every byte, ymm10 = 1 in every word, ymm11 = Q4_0: 8 sum x, ymm12-ymm15 the groups' f32
# accumulators (8 rows each). Q4_1: its body's own comment.
.include "kernels.inc"
.include "kmacros.inc"

.section .text
.global matvec_q4_0_r8_avx2, matvec_q4_1_r8_avx2, matvec_q8_0_r8_avx2

.section .rdata
.balign 32, 0
kr8v_b1:        # 1 in every byte (vpmaddubsw by it: pair sums of signed bytes)
    .long 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x01010101

.section .text
# frame (after 7 pushes)
.equ R8V_XMM, 0          # xmm6-xmm15 (160 bytes)
.equ R8V_K, 160          # blocks per row
.equ R8V_C0, 168         # the chunk's first block
.equ R8V_KC, 176         # blocks in this chunk
.equ R8V_XS, 192         # the input scratch: 8 bytes a block
.equ R8V_KC_MAX, 512     # blocks per chunk
.equ R8V_FRAME, 4288     # 192 + 8 * 512 (= 0 mod 16: 7 pushes and the return address)

# R8V_NIB first, s, base, sb, v: vector v of a group's block (at [base + sb + 32 v]) times
# the broadcast input bytes (ymm4: low nibbles, ymm5: high), into the int16 sums s (first:
# set); ymm6, ymm7 clobbered
.macro R8V_NIB first, s, base, sb, v
    vmovdqu ymm6, [\base + \sb + 32 * \v]
    vpand ymm7, ymm6, ymm9
.if \first
    vpmaddubsw \s, ymm7, ymm4
.else
    vpmaddubsw ymm7, ymm7, ymm4
    vpaddw \s, \s, ymm7
.endif
    vpsrlw ymm6, ymm6, 4
    vpand ymm6, ymm6, ymm9
    vpmaddubsw ymm6, ymm6, ymm5
    vpaddw \s, \s, ymm6
.endm
# R8V_V g, sb, xoff, v, first: vector v of the g groups' blocks (1 or 4), the input's
# bytes 4v.. and 16 + 4v.. (at [r11 + xoff]) broadcast once for them
.macro R8V_V g, sb, xoff, v, first
    vpbroadcastd ymm4, dword ptr [r11 + \xoff + 4 * \v]
    vpbroadcastd ymm5, dword ptr [r11 + \xoff + 16 + 4 * \v]
    R8V_NIB \first, ymm0, rsi, \sb, \v
.if \g > 1
    R8V_NIB \first, ymm1, rsi+r12, \sb, \v
    R8V_NIB \first, ymm2, rsi+2*r12, \sb, \v
    R8V_NIB \first, ymm3, rdi, \sb, \v
.endif
.endm
# R8V_FIN q, s, acc, base: a group's int16 sums s -> I_b (Q4_0: minus ymm11) -> f32,
# acc = fma(that, f32(d_w) * f32(d_x), acc); the group's block at base; ymm6 clobbered
.macro R8V_FIN q, s, acc, base
    vpmaddwd \s, \s, ymm10
.if \q == 0
    vpsubd \s, \s, ymm11
.endif
    vcvtdq2ps \s, \s
    vcvtph2ps ymm6, xmmword ptr [\base]
    vmulps ymm6, ymm6, ymm8
    vfmadd231ps \acc, \s, ymm6
.endm
# Q8_0_R8 (q = 2): 8 vectors of signed bytes w. R8V_Q8 v, first: vector v of the g groups'
# blocks times the input's bytes 4v.. broadcast (ymm4): |x| (ymm5, once for the g groups)
# times w * sign(x) (vpsignb) by vpmaddubsw: the pair sums x w + x' w', |.| <= 2 * 128 *
# 127 = 32512 < 2^15 for x in -128..127 and w in -127..127 (ggml's quantizer writes
# -127..127; a weight of -128 against a negative x would come out as -128 x: the same
# limit as the plain Q8_0 body's, there on x), each vpmaddwd'd by 1 into the groups' int32
# sums (ymm0-ymm3: |I_b| <= 32 * 128 * 127 < 2^24, exact in f32); ymm6 clobbered
.macro R8V_Q8W first, s, base, v
    vmovdqu ymm6, [\base + 16 + 32 * \v]
    vpsignb ymm6, ymm6, ymm4
    vpmaddubsw ymm6, ymm5, ymm6
.if \first
    vpmaddwd \s, ymm6, ymm10
.else
    vpmaddwd ymm6, ymm6, ymm10
    vpaddd \s, \s, ymm6
.endif
.endm
.macro R8V_Q8 g, v, first
    vpbroadcastd ymm4, dword ptr [r11 + 2 + 4 * \v]
    vpabsb ymm5, ymm4
    R8V_Q8W \first, ymm0, rsi, \v
.if \g > 1
    R8V_Q8W \first, ymm1, rsi+r12, \v
    R8V_Q8W \first, ymm2, rsi+2*r12, \v
    R8V_Q8W \first, ymm3, rdi, \v
.endif
.endm
# R8V_FIN8 s, acc, base: acc = fma(f32(I_b), f32(d_w) * f32(d_x), acc); ymm6 clobbered
.macro R8V_FIN8 s, acc, base
    vcvtdq2ps \s, \s
    vcvtph2ps ymm6, xmmword ptr [\base]
    vmulps ymm6, ymm6, ymm8
    vfmadd231ps \acc, \s, ymm6
.endm
.macro R8V_BLOCK8 g
    R8V_Q8 \g, 0, 1
    R8V_Q8 \g, 1, 0
    R8V_Q8 \g, 2, 0
    R8V_Q8 \g, 3, 0
    R8V_Q8 \g, 4, 0
    R8V_Q8 \g, 5, 0
    R8V_Q8 \g, 6, 0
    R8V_Q8 \g, 7, 0
    vbroadcastss ymm8, dword ptr [rax]
    R8V_FIN8 ymm0, ymm12, rsi
.if \g > 1
    R8V_FIN8 ymm1, ymm13, rsi+r12
    R8V_FIN8 ymm2, ymm14, rsi+2*r12
    R8V_FIN8 ymm3, ymm15, rdi
.endif
.endm

# R8V_BLOCK q, g, sb, xoff: one block column of g groups (1 or 4) into their accumulators
.macro R8V_BLOCK q, g, sb, xoff
.if \q == 2
    R8V_BLOCK8 \g
.else
    R8V_V \g, \sb, \xoff, 0, 1
    R8V_V \g, \sb, \xoff, 1, 0
    R8V_V \g, \sb, \xoff, 2, 0
    R8V_V \g, \sb, \xoff, 3, 0
    vbroadcastss ymm8, dword ptr [rax]
    vbroadcastss ymm11, dword ptr [rax + 4]
    R8V_FIN \q, ymm0, ymm12, rsi
.if \g > 1
    R8V_FIN \q, ymm1, ymm13, rsi+r12
    R8V_FIN \q, ymm2, ymm14, rsi+2*r12
    R8V_FIN \q, ymm3, ymm15, rdi
.endif
.endif
.endm
# R8V_PFN gbb: 4 group blocks' bytes of the next 4 groups at rbx (prefetcht2), rbx
# advanced; only when a group's bytes (r12) are at most R8V_PF_GROUP_MAX (see the top)
.equ R8V_PF_GROUP_MAX, 4096
.macro R8V_PFN gbb
.irp off, 0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960, 1024
.if \off < 4 * \gbb
    prefetcht2 [rbx + \off]
.endif
.endr
    add rbx, 4 * \gbb
.endm
# R8V_GROUPS q, g, sb, gbb, xoff, xb: g groups (1 or 4) at rdx over the chunk, outputs at rcx
.macro R8V_GROUPS q, g, sb, gbb, xoff, xb, pf
    cmp qword ptr [rsp + R8V_C0], 0
    jne r8v_load\@
    vxorps xmm12, xmm12, xmm12
.if \g > 1
    vxorps xmm13, xmm13, xmm13
    vxorps xmm14, xmm14, xmm14
    vxorps xmm15, xmm15, xmm15
.endif
    jmp r8v_acc\@
r8v_load\@:
    vmovups ymm12, [rcx]
.if \g > 1
    vmovups ymm13, [rcx + 32]
    vmovups ymm14, [rcx + 64]
    vmovups ymm15, [rcx + 96]
.endif
r8v_acc\@:
    mov rsi, rdx
.if \pf
    lea rbx, [rdx + 4 * r12]          # the next 4 groups, prefetched linearly
.endif
    lea rdi, [rdx + 2 * r12]
    add rdi, r12
    mov r11, qword ptr [rsp + R8V_C0]
    imul r11, r11, \xb
    add r11, r8
    lea rax, [rsp + R8V_XS]
    mov r9, qword ptr [rsp + R8V_KC]
    test r9, r9
    jz r8v_done\@
r8v_block\@:
.if \pf
    R8V_PFN \gbb
.endif
    R8V_BLOCK \q, \g, \sb, \xoff
    add rsi, \gbb
    add rdi, \gbb
    add r11, \xb
    add rax, 8
    dec r9
    jnz r8v_block\@
r8v_done\@:
    vmovups [rcx], ymm12
.if \g > 1
    vmovups [rcx + 32], ymm13
    vmovups [rcx + 64], ymm14
    vmovups [rcx + 96], ymm15
.endif
.endm

# R8V_XFILL_Q4_0: the scratch block at rax from the Q8_0 block at r11: f32(d_x), then
# 8 sum x (int32: vpmaddubsw by 1, vpmaddwd by 1, the 8 dwords added)
.macro R8V_XFILL_Q4_0
    vmovd xmm0, dword ptr [r11]
    vcvtph2ps xmm0, xmm0
    vmovss dword ptr [rax], xmm0
    vmovdqu ymm0, [rip + kr8v_b1]
    vpmaddubsw ymm0, ymm0, [r11 + 2]
    vpmaddwd ymm0, ymm0, ymm10
    vextracti128 xmm1, ymm0, 1
    vpaddd xmm0, xmm0, xmm1
    vpshufd xmm1, xmm0, 0x4e
    vpaddd xmm0, xmm0, xmm1
    vpshufd xmm1, xmm0, 0xb1
    vpaddd xmm0, xmm0, xmm1
    vpslld xmm0, xmm0, 3
    vmovd dword ptr [rax + 4], xmm0
.endm

# R8V_XFILL_Q8_0: f32(d_x) from the Q8_0 block at r11
.macro R8V_XFILL_Q8_0
    vmovd xmm0, dword ptr [r11]
    vcvtph2ps xmm0, xmm0
    vmovss dword ptr [rax], xmm0
.endm

# R8V_BODY q, bb, sb, xoff, xb: the whole body (q: 0 Q4_0, 2 Q8_0; bb: bytes per weight block;
# sb: bytes of a group block's scales; xoff: the input quants' offset in its block; xb: an
# input block's bytes)
.macro R8V_BODY q, bb, sb, xoff, xb
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, R8V_FRAME
    KSAVE_XMM6_15_VEX R8V_XMM
    mov r15d, dword ptr [rsp + R8V_FRAME + 56 + 40]   # d
    shr r15, 3                        # groups
    mov r13, rcx
    mov r14, rdx
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    mov qword ptr [rsp + R8V_K], r9
    imul rbx, r9, \bb                 # bytes per row
    lea r12, [8 * rbx]                # bytes per group
    mov qword ptr [rsp + R8V_C0], 0
    vmovdqu ymm9, [rip + kg_nib]
    vmovdqu ymm10, [rip + kg_one_i16]
r8v_chunk\@:
    mov rax, qword ptr [rsp + R8V_K]
    sub rax, qword ptr [rsp + R8V_C0]
    mov ecx, R8V_KC_MAX
    cmp rax, rcx
    cmova rax, rcx
    mov qword ptr [rsp + R8V_KC], rax
    mov r9, rax
    mov r11, qword ptr [rsp + R8V_C0]
    imul r11, r11, \xb
    add r11, r8
    lea rax, [rsp + R8V_XS]
    test r9, r9
    jz r8v_filled\@
r8v_fill\@:
.if \q == 0
    R8V_XFILL_Q4_0
.else
    R8V_XFILL_Q8_0
.endif
    add r11, \xb
    add rax, 8
    dec r9
    jnz r8v_fill\@
r8v_filled\@:
    mov rdx, qword ptr [rsp + R8V_C0]
    imul rdx, rdx, 8 * \bb
    add rdx, r14                      # group 0's block c0
    mov rcx, r13
    mov r10, r15
r8v_quad\@:
    cmp r10, 4
    jb r8v_one\@
    cmp r12, R8V_PF_GROUP_MAX
    ja r8v_quad_long\@
    R8V_GROUPS \q, 4, \sb, 8*\bb, \xoff, \xb, 1
    jmp r8v_quad_next\@
r8v_quad_long\@:
    R8V_GROUPS \q, 4, \sb, 8*\bb, \xoff, \xb, 0
r8v_quad_next\@:
    lea rdx, [rdx + 4 * r12]
    sub rcx, -128
    sub r10, 4
    jmp r8v_quad\@
r8v_one\@:
    test r10, r10
    jz r8v_chunk_done\@
    R8V_GROUPS \q, 1, \sb, 8*\bb, \xoff, \xb, 0
    add rdx, r12
    add rcx, 32
    dec r10
    jmp r8v_one\@
r8v_chunk_done\@:
    mov rax, qword ptr [rsp + R8V_C0]
    add rax, qword ptr [rsp + R8V_KC]
    mov qword ptr [rsp + R8V_C0], rax
    cmp rax, qword ptr [rsp + R8V_K]
    jb r8v_chunk\@
    KLOAD_XMM6_15_VEX R8V_XMM
    add rsp, R8V_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    vzeroupper
    ret
.endm

# matvec_q4_0_r8_avx2(rcx = out, rdx = W (Q4_0_R8), r8 = xq (Q8_0), r9d = n, [rsp+40] d)
matvec_q4_0_r8_avx2:
    R8V_BODY 0, 18, 16, 2, 34

# --- Q4_1_R8: ggml's vec_dot_q4_1_q8_1 per row (the top's "Q4_1_R8") ----------------------
# R8Q1_V v, lo, hi: vector v of the group block at rdx against the input block at r11: the
# low nibbles (ggml's lane v of the 8 rows) times the input's bytes 4v.. -> int32 -> f32,
# lo = fma(that, ymm1, lo); the high nibbles (lane 4 + v) times bytes 16 + 4v.. into hi;
# ymm0, ymm2-ymm4 clobbered
.macro R8Q1_V v, lo, hi
    vmovdqu ymm2, [rdx + 32 + 32 * \v]
    vpand ymm3, ymm2, ymm5
    vpbroadcastd ymm0, dword ptr [r11 + 4 + 4 * \v]
    vpmaddubsw ymm3, ymm3, ymm0
    vpmaddwd ymm3, ymm3, ymm6
    vcvtdq2ps ymm3, ymm3
    vfmadd231ps \lo, ymm3, ymm1
    vpsrlw ymm2, ymm2, 4
    vpand ymm2, ymm2, ymm5
    vpbroadcastd ymm4, dword ptr [r11 + 20 + 4 * \v]
    vpmaddubsw ymm2, ymm2, ymm4
    vpmaddwd ymm2, ymm2, ymm6
    vcvtdq2ps ymm2, ymm2
    vfmadd231ps \hi, ymm2, ymm1
.endm
# R8Q1_BLOCK: one group block (rdx) against one Q8_1 block (r11) into ymm7-ymm15
.macro R8Q1_BLOCK
    vpbroadcastd xmm0, dword ptr [r11]        # f16 d_x, s_x, 4 times
    vcvtph2ps ymm0, xmm0                      # f32 d_x, s_x, d_x, s_x, ...
    vmovshdup ymm1, ymm0                      # s_x in every lane
    vcvtph2ps ymm2, xmmword ptr [rdx + 16]    # the 8 rows' m_w
    vmulps ymm2, ymm2, ymm1
    vaddps ymm7, ymm7, ymm2                   # summs += f32(m_w * s_x)
    vmovsldup ymm0, ymm0                      # d_x in every lane
    vcvtph2ps ymm1, xmmword ptr [rdx]         # the 8 rows' d_w
    vmulps ymm1, ymm1, ymm0                   # f32(d_w * d_x)
    R8Q1_V 0, ymm8, ymm12
    R8Q1_V 1, ymm9, ymm13
    R8Q1_V 2, ymm10, ymm14
    R8Q1_V 3, ymm11, ymm15
.endm

# R8Q1_PF: how far ahead (bytes) the block loop prefetches W, 3 lines a block (every line of
# its 160 bytes). One group a pass reads W as one stream, and the hardware prefetchers alone
# left it at 13-14 GB/s streamed (stream_read 20-21; about 24 in cache): with the prefetch
# 16-21 (see the top's "Measured"); 1024 to 3072 within the noise of each other, 512 less.
.equ R8Q1_PF, 2048
# matvec_q4_1_r8_avx2(rcx = out, rdx = W (Q4_1_R8), r8 = xq (Q8_1), r9d = n, [rsp+40] d)
#   Registers: rdx = the group block (groups follow each other: W front to back), r11 = the
#   input block, rax = blocks left, r9 = blocks per row, r10 = groups left, rcx = the
#   group's outputs; ymm5 = 0x0f in every byte, ymm6 = 1 in every word, ymm7 = the 8 rows'
#   summs, ymm8-ymm15 their lane accumulators 0..7, ymm0-ymm4 scratch (ymm1: d_w d_x).
matvec_q4_1_r8_avx2:
    sub rsp, 168                      # xmm6-xmm15, 8 to align
    KSAVE_XMM6_15_VEX 0
    mov r10d, dword ptr [rsp + 168 + 40]
    shr r10, 3                        # groups
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    vmovdqu ymm5, [rip + kg_nib]
    vmovdqu ymm6, [rip + kg_one_i16]
.Lgroup:
    test r10, r10
    jz .Ldone
    vxorps xmm7, xmm7, xmm7
    vxorps xmm8, xmm8, xmm8
    vxorps xmm9, xmm9, xmm9
    vxorps xmm10, xmm10, xmm10
    vxorps xmm11, xmm11, xmm11
    vxorps xmm12, xmm12, xmm12
    vxorps xmm13, xmm13, xmm13
    vxorps xmm14, xmm14, xmm14
    vxorps xmm15, xmm15, xmm15
    mov r11, r8
    mov rax, r9
    test rax, rax
    jz .Lfold
.Lblock:
    prefetcht0 [rdx + R8Q1_PF]
    prefetcht0 [rdx + R8Q1_PF + 64]
    prefetcht0 [rdx + R8Q1_PF + 128]
    R8Q1_BLOCK
    add rdx, 160
    add r11, 36
    dec rax
    jnz .Lblock
.Lfold:                               # hsum_float_8's order, the 8 rows at once
    vaddps ymm8, ymm8, ymm12          # lanes 0 + 4
    vaddps ymm10, ymm10, ymm14        # 2 + 6
    vaddps ymm8, ymm8, ymm10
    vaddps ymm9, ymm9, ymm13          # 1 + 5
    vaddps ymm11, ymm11, ymm15        # 3 + 7
    vaddps ymm9, ymm9, ymm11
    vaddps ymm8, ymm8, ymm9
    vaddps ymm8, ymm8, ymm7           # + summs
    vmovups [rcx], ymm8
    add rcx, 32
    dec r10
    jmp .Lgroup
.Ldone:
    KLOAD_XMM6_15_VEX 0
    add rsp, 168
    vzeroupper
    ret

# matvec_q8_0_r8_avx2(rcx = out, rdx = W (Q8_0_R8), r8 = xq (Q8_0), r9d = n, [rsp+40] d)
matvec_q8_0_r8_avx2:
    R8V_BODY 2, 34, 16, 2, 34
