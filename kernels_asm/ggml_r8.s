# The matvec bodies of the "8 rows interleaved" weight types Q4_0_R8 and Q4_1_R8 (AVX2;
# layout in peasm/ggml.py's module text: per group of 8 rows and block column, 8 f16 d,
# Q4_1: 8 f16 m, then 4 vectors of 32 bytes whose dword lane r holds row r's qs[4v..4v+3]).
# The math per row and block is ggml's vec_dot_q4_0_q8_0 / vec_dot_q4_1_q8_1 (format docs:
# ggml-common.h):
#   Q4_0: f32(d_w) * f32(d_x) * sum_j (q_j - 8) * x_j
#   Q4_1: f32(d_w) * f32(d_x) * sum_j q_j * x_j + f32(m_w) * f32(s_x)
#
#   matvec_q4_<k>_r8_avx2(rcx = out f32*, rdx = W, r8 = xq, r9d = n, dword [rsp+40] = d)
#       peasm/ggml.py's matvec contract, xq in the vec_dot_type (Q8_0: {f16 d, i8 qs[32]},
#       34 bytes; Q8_1: {f16 d, f16 s, i8 qs[32]}, 36 bytes). d a multiple of 8 (the
#       caller's: the rest, d mod 8 rows, are neither read nor written), W at a group's
#       start, n a multiple of 32 (the rest ignored); n = 0 writes d zeros. Unaligned
#       pointers. Stack: 56 bytes of pushes and R8V_FRAME (4.3 KiB). Clobbers rax, rcx,
#       rdx, r8-r11, ymm0-ymm5 and the upper halves of ymm6-ymm15; saves the rest;
#       vzeroupper before returning.
#
# Rounding (the same as ggml_mm8.inc's, so each output is bit for bit the plain-layout
# matmat_q4_<k>_avx2's for the same row and input, and the R8 matmat's): per row a single
# f32 accumulator, the blocks in order: acc = fma(f32(I_b), f32(d_w) * f32(d_x) (rounded
# once), acc); Q4_1 then acc = fma(f32(m_w), f32(s_x), acc). I_b is the block's exact
# integer sum: Q4_0 sum_j q_j x_j - 8 sum_j x_j (the second term per input block, computed
# once per call: the chunk's scratch below), Q4_1 sum_j q_j x_j.
#
# Per block and group of 8 rows, no horizontal sum: vector v's 32 bytes loaded once, its
# nibbles split (low: weights 4v..4v+3 of each row's block, high: 16 + 4v..), each
# vpmaddubsw'd (the unsigned nibbles q, 0..15) against vpbroadcastd of the input's 4 signed
# bytes (x, -128..127: a Q8 block may hold -128 though ggml's quantizer writes -127..127);
# a pair's sum |q x + q' x'| <= 2 * 15 * 128 = 3840 (no saturation), the 8 products of a
# word lane added in int16: |sum| <= 8 * 3840 = 30720 < 2^15, exact; one vpmaddwd by 1 ->
# the 8 rows' I_b (Q4_0: minus 8 sum x) in 8 int32 lanes, exact in f32 (|I_b| <= 32 * 15 *
# 128 + 8 * 32 * 128 < 2^24). Four groups (32 rows: 4 independent accumulators) at a time,
# so each broadcast serves 4 groups; a last 1..3 groups one at a time. No software
# prefetch: the 4 groups are 4 sequential streams the hardware prefetchers follow.
# Measured (development host, Zen 3 shared by 2 vCPUs, `peasm bench kernels --only ggml
# --cpu-time`, streamed, ratio to stream_read, two alternating rounds): no prefetch
# 0.90-1.16; one prefetcht0 a group block 1024 or 2048 bytes ahead 0.60-0.90; three (every
# line) 1024 ahead 0.90-1.26, 2048 ahead 0.76-1.24, 4096 ahead 0.73-1.04. In cache the loop
# runs at about 34 GB/s (4.2-4.9 ns a group block), the plain-layout matvec at 10.
#
# Loop order: K = n / 32 blocks in chunks of at most R8V_KC blocks (one chunk for n <=
# 16384); per chunk the input's blocks into a scratch on the stack (f32(d_x), then Q4_0:
# 8 sum x as int32, Q4_1: f32(s_x)), then every group over the chunk: its accumulators start
# at 0 (first chunk) or at the outputs (later chunks) and are stored back to the outputs.
#
# Registers: rbx = bytes per row, r12 = bytes per group (8 rows), r13 = out, r14 = W,
# r15 = groups; the chunk: rdx = the current groups' block c0, rcx = their outputs, r10 =
# groups left; the block loop: rsi = group 0's block (groups 1, 2: + r12, + 2 r12), rdi =
# group 3's, r11 = the input's block, rax = its scratch, r9 = blocks left; ymm0-ymm3 the
# groups' int16 sums, ymm4, ymm5 the broadcast input bytes, ymm6, ymm7 scratch, ymm8 =
# f32(d_x), ymm9 = 0x0f in every byte, ymm10 = 1 in every word, ymm11 = Q4_0: 8 sum x,
# Q4_1: f32(s_x), ymm12-ymm15 the groups' f32 accumulators (8 rows each).
.include "kernels.inc"
.include "kmacros.inc"

.section .text
.global matvec_q4_0_r8_avx2, matvec_q4_1_r8_avx2

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
# acc = fma(that, f32(d_w) * f32(d_x), acc) (Q4_1: then acc = fma(f32(m_w), f32(s_x), acc));
# the group's block at base; ymm6, ymm7 clobbered
.macro R8V_FIN q, s, acc, base
    vpmaddwd \s, \s, ymm10
.if \q == 0
    vpsubd \s, \s, ymm11
.endif
    vcvtdq2ps \s, \s
    vcvtph2ps ymm6, xmmword ptr [\base]
    vmulps ymm6, ymm6, ymm8
    vfmadd231ps \acc, \s, ymm6
.if \q == 1
    vcvtph2ps ymm7, xmmword ptr [\base + 16]
    vfmadd231ps \acc, ymm7, ymm11
.endif
.endm
# R8V_BLOCK q, g, sb, xoff: one block column of g groups (1 or 4) into their accumulators
.macro R8V_BLOCK q, g, sb, xoff
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
.endm
# R8V_GROUPS q, g, sb, gbb, xoff, xb: g groups (1 or 4) at rdx over the chunk, outputs at rcx
.macro R8V_GROUPS q, g, sb, gbb, xoff, xb
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
# R8V_XFILL_Q4_1: f32(d_x), f32(s_x) from the Q8_1 block at r11
.macro R8V_XFILL_Q4_1
    vmovd xmm0, dword ptr [r11]
    vcvtph2ps xmm0, xmm0
    vmovq qword ptr [rax], xmm0
.endm

# R8V_BODY q, bb, sb, xoff, xb: the whole body (q: 0 or 1; bb: bytes per weight block;
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
    R8V_XFILL_Q4_1
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
    R8V_GROUPS \q, 4, \sb, 8*\bb, \xoff, \xb
    lea rdx, [rdx + 4 * r12]
    sub rcx, -128
    sub r10, 4
    jmp r8v_quad\@
r8v_one\@:
    test r10, r10
    jz r8v_chunk_done\@
    R8V_GROUPS \q, 1, \sb, 8*\bb, \xoff, \xb
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

# matvec_q4_1_r8_avx2(rcx = out, rdx = W (Q4_1_R8), r8 = xq (Q8_1), r9d = n, [rsp+40] d)
matvec_q4_1_r8_avx2:
    R8V_BODY 1, 20, 32, 4, 36
