# The matmat bodies of the "8 rows interleaved" weight types Q4_0_R8, Q8_0_R8 (Q8_0_R8: its
# own block math below, each output bit for bit matvec_q8_0_r8_avx2's) and Q4_1_R8 (its own
# body at the end) (AVX2; layout in
# peasm/ggml.py's module text): ggml_mm8.inc's skeleton (M8_BODY: tiles of 32 rows = 4
# groups, chunks of 8 blocks unpacked once into a stack scratch, then every input over the
# chunk) with ggml_mm_q4.s's block math (M8_XFILL_*, M8_BLOCK_*; peasm's macros are
# program-wide) and an unpack of its own: the R8 storage already holds, per group and
# block, the dword lanes the skeleton's scratch wants (vector v, lane r = row r's qs[4v..
# 4v+3]), so the unpack only splits the nibbles (low: scratch vector v, high: 4 + v) and
# converts the 8 d at once: no gather, no transpose. Q4_1_R8's matvec rounds as ggml's
# vec_dot_q4_1_q8_1 (8 lane accumulators a row, ggml_r8.s), which ggml_mm8.inc's one
# accumulator a row does not: its matmat (matmat_q4_1_r8_avx2, below) keeps the matvec's 9
# accumulators for one group and input at a time over group blocks unpacked once for all
# inputs, bit for bit the matvec (so the prefill is the decode's numbers).
#
#   matmat_q4_0_r8_avx2(rcx = out, rdx = W, r8 = xq, r9d = n, [rsp+40] d, [rsp+48] B,
#                       [rsp+56] out_stride, [rsp+64] xq_stride)
#       peasm/ggml.py's matmat contract (ggml_mm.inc), with d rounded down to a multiple of
#       8 (the last d mod 8 outputs are neither computed nor written; the caller's rows come
#       in whole groups) and W at a group's start; outputs of different inputs must not
#       overlap. Each output is bit for bit matvec_q4_0_r8_avx2's (ggml_r8.s) for the same
#       row and input, and so the plain-layout matmat_q4_0_avx2's: the same exact integer
#       block sums, the same rounding (ggml_mm8.inc's "Rounding"). Registers and stack as
#       ggml_mm8.inc says.
#
# A tile of fewer than 4 groups (d mod 32 = 8, 16, 24) unpacks its missing sub-tiles from
# its last group again and masks their outputs (ggml_mm8.inc's masks): nothing read past
# W's d rows, nothing written but the outputs.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_mm8.inc"

.section .text
.global matmat_q4_0_r8_avx2, matmat_q4_1_r8_avx2, matmat_q8_0_r8_avx2

# R8M_UNPACK_Q4_0: one group block (rdx: 8 f16 d, 4 quant vectors) into the sub-tile's
# scratch at rax as M8_UNPACK_Q4_0 leaves it: vectors g the signed q - 8, +256 f32(d), +288
# the correction 128 * sum (q - 8) (int32); ymm0-ymm3, ymm8 clobbered
.macro R8M_UNPACK_Q4_0
    vpxor xmm8, xmm8, xmm8
    vmovdqu ymm0, [rdx + 16]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 0
    vmovdqu ymm0, [rdx + 48]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 1
    vmovdqu ymm0, [rdx + 80]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 2
    vmovdqu ymm0, [rdx + 112]
    M8_SPLIT ymm0, ymm2, ymm3
    M8_Q4_0_STORE ymm2, ymm3, 3
    M8_Q4_0_CORR
    vcvtph2ps ymm0, xmmword ptr [rdx]
    vmovups [rax + 256], ymm0
.endm
# R8M_UNPACK_Q8_0: one Q8_0_R8 group block (rdx: 8 f16 d, 8 vectors of signed bytes, lane
# r = row r's qs[4v..4v+3], i.e. elements 4v..4v+3 of its block) as the scratch's vectors
# g = v, +256 f32(d); ymm0 clobbered
.macro R8M_COPY v
    vmovdqu ymm0, [rdx + 16 + 32 * \v]
    vmovdqu [rax + 32 * \v], ymm0
.endm
.macro R8M_UNPACK_Q8_0
    R8M_COPY 0
    R8M_COPY 1
    R8M_COPY 2
    R8M_COPY 3
    R8M_COPY 4
    R8M_COPY 5
    R8M_COPY 6
    R8M_COPY 7
    vcvtph2ps ymm0, xmmword ptr [rdx]
    vmovups [rax + 256], ymm0
.endm

# Q8_0_R8's block math (M8_BODY's xfill and block; ggml_r8.s states the bounds): the input's
# scratch per block is f32(d_x) (M8_XSB_Q4_1's 8 bytes, so Q4_1's frame); per g, the input's
# bytes 4g..4g+3 broadcast (ymm9) and their magnitudes (ymm12) once for the 4 sub-tiles,
# each sub-tile's vector g (ymm8) signed by x (vpsignb), vpmaddubsw'd with |x| and
# vpmaddwd'd by 1 into the sub-tile's int32 sums ymm0-ymm3; then M8_SCALE_FMA
.macro M8R_XFILL_Q8_0
    vmovd xmm0, dword ptr [rsi]
    vcvtph2ps xmm0, xmm0
    vmovss dword ptr [rax], xmm0
.endm
.macro M8R_W8 first, s, j, g
    vmovdqu ymm8, [rax + M8_WSS * \j + 32 * \g]
    vpsignb ymm8, ymm8, ymm9
    vpmaddubsw ymm8, ymm12, ymm8
.if \first
    vpmaddwd \s, ymm8, ymm11
.else
    vpmaddwd ymm8, ymm8, ymm11
    vpaddd \s, \s, ymm8
.endif
.endm
.macro M8R_G_Q8_0 g, first
    vpbroadcastd ymm9, dword ptr [rsi + 2 + 4 * \g]
    vpabsb ymm12, ymm9
    M8R_W8 \first, ymm0, 0, \g
    M8R_W8 \first, ymm1, 1, \g
    M8R_W8 \first, ymm2, 2, \g
    M8R_W8 \first, ymm3, 3, \g
.endm
.macro M8R_BLOCK_Q8_0
    M8R_G_Q8_0 0, 1
    M8R_G_Q8_0 1, 0
    M8R_G_Q8_0 2, 0
    M8R_G_Q8_0 3, 0
    M8R_G_Q8_0 4, 0
    M8R_G_Q8_0 5, 0
    M8R_G_Q8_0 6, 0
    M8R_G_Q8_0 7, 0
    vbroadcastss ymm9, dword ptr [rcx]
    M8_SCALE_FMA ymm0, ymm4, 0
    M8_SCALE_FMA ymm1, ymm5, 1
    M8_SCALE_FMA ymm2, ymm6, 2
    M8_SCALE_FMA ymm3, ymm7, 3
.endm

# R8M_CHUNK gbb, unpack: the tile's chunk (M8_BODY's `chunk`, after M8_CHUNK_BEGIN gbb: r9
# = how far ahead to prefetch), sub-tile by sub-tile: sub-tile j is the tile's group
# min(j, v/8 - 1), its blocks c0 .. c0 + kc - 1 at W_tile + 8 rbx g + gbb c0 (gbb = 8 x
# block bytes: a group block); each unpacked by `unpack` (rdx -> rax) after a prefetch of
# the same group block r9 ahead (every line it spans: 3 to 5); rax, rcx, rdx, r10 clobbered
.macro R8M_CHUNK gbb, unpack
r8m_sub\@:
    mov rax, qword ptr [rsp + M8_V]
    shr rax, 3
    dec rax                           # the tile's last group
    mov rdx, qword ptr [rsp + M8_SUB]
    cmp rdx, rax
    cmova rdx, rax
    imul rdx, rbx
    shl rdx, 3                        # its first row's offset
    mov rcx, qword ptr [rsp + M8_C0]
    imul rcx, rcx, \gbb
    add rdx, rcx
    add rdx, qword ptr [rsp + M8_WT]
    mov rax, qword ptr [rsp + M8_SUB]
    imul rax, rax, M8_WSS
    add rax, qword ptr [rsp + M8_WS]
    mov r10, qword ptr [rsp + M8_KC]
    test r10, r10
    jz r8m_unpacked\@
r8m_unpack\@:
    prefetcht0 [rdx + r9]
    prefetcht0 [rdx + r9 + 64]
    prefetcht0 [rdx + r9 + 128]
.if \gbb > 192
    prefetcht0 [rdx + r9 + 192]
.endif
    prefetcht0 [rdx + r9 + \gbb - 1]
    \unpack
    add rdx, \gbb
    add rax, M8_WSB
    dec r10
    jnz r8m_unpack\@
r8m_unpacked\@:
    inc qword ptr [rsp + M8_SUB]
    cmp qword ptr [rsp + M8_SUB], 4
    jb r8m_sub\@
.endm
.macro R8M_CHUNK_Q8_0
    R8M_CHUNK 272, R8M_UNPACK_Q8_0
.endm
.macro R8M_CHUNK_Q4_0
    R8M_CHUNK 144, R8M_UNPACK_Q4_0
.endm

# matmat_q4_0_r8_avx2(rcx = out, rdx = W (Q4_0_R8), r8 = xq (Q8_0 inputs), r9d = n,
#                     [rsp+40] d, [rsp+48] B, [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q4_0_r8_avx2:
    M8_BODY 18, 34, 144, 1, M8_FRAME_Q4_0, M8_XSB_Q4_0, R8M_CHUNK_Q4_0, M8_XFILL_Q4_0, M8_BLOCK_Q4_0

# matmat_q8_0_r8_avx2(rcx = out, rdx = W (Q8_0_R8), r8 = xq (Q8_0 inputs), r9d = n,
#                     [rsp+40] d, [rsp+48] B, [rsp+56] out_stride, [rsp+64] xq_stride)
matmat_q8_0_r8_avx2:
    M8_BODY 34, 34, 272, 1, M8_FRAME_Q4_1, M8_XSB_Q4_1, R8M_CHUNK_Q8_0, M8R_XFILL_Q8_0, M8R_BLOCK_Q8_0

# --- Q4_1_R8: ggml's vec_dot_q4_1_q8_1 per row and input (ggml_r8.s's "Rounding") ---------
#   matmat_q4_1_r8_avx2(rcx = out, rdx = W (Q4_1_R8), r8 = xq (Q8_1 inputs), r9d = n,
#                       [rsp+40] d, [rsp+48] B, [rsp+56] out_stride, [rsp+64] xq_stride)
#       peasm/ggml.py's matmat contract (ggml_mm.inc): d rounded down to a multiple of 8
#       (the last d mod 8 outputs neither computed nor written), W at a group's start, any
#       strides (0 included), n a multiple of 32 (the rest ignored; n = 0 writes zeros),
#       outputs of different inputs must not overlap, unaligned pointers. Each output is
#       bit for bit matvec_q4_1_r8_avx2's (ggml_r8.s) for the same row and input (NaN
#       payloads aside: the same places): per (group, input) the matvec's 8 lane
#       accumulators and its m*s sum, the same conversions, products and FMAs in block
#       order, the same fold. Clobbers rax, rcx, rdx, r8-r11, ymm0-ymm5 and the upper
#       halves of ymm6-ymm15; saves the rest; vzeroupper before returning. Stack: 64 bytes
#       of pushes and Q1M_FRAME (17.5 KiB; the workers' stacks are 64 KiB, efi_stubs/mp.s).
#
# What it saves over the matvec once per input: the nibble split (per group block 4 loads,
# 4 shifts, 8 masks) and the 2 f16 conversions of d_w, m_w, done once per group block for
# a batch of inputs into a scratch (Q1M_WS: per block the 8 lane vectors, lane j's 8 rows
# as unsigned bytes 0..15, then f32 d_w, f32 m_w: 320 bytes), which each input of the batch
# reads back as memory operands. The 9 accumulators of a (group, input) need 9 registers,
# so the inputs go one at a time over the unpacked chunk. When the row is one chunk and
# the table fits in the scratch the chunk leaves free (8 B K <= (Q1M_KC_MAX - K) 320 bytes:
# SmolLM2's n = 576 up to B = 66), the inputs' f32 d_x, s_x are converted once per call
# into a table (Q1M_XT) too, which the block loop broadcasts from memory (Q1M_BLOCK_T);
# else converted per block (Q1M_BLOCK). What it cannot save: per lane a
# vpmaddubsw, a vpmaddwd and an FMA. On the development host (Zen 3, loops of independent
# operations) 16 vpmaddwd alone take 8 cycles, 16 FMAs alone 8, both together 15.7: they
# share two pipes, while conversions, masks and broadcasts run beside them; so about 26
# operations a group block and input (with the 2 scale products) on 2 pipes bound this
# body and the matvec alike, and the nibble split saved is worth about 1.2 (the two bodies'
# block loops alone, in cache: 4.9 against 5.8 ns a group block and input). Measured (same
# host, CPU time, alternating in one process, B = 32, weights streamed, ns a group block
# and input, best of 3): against k_par_matmat's matvec tiles 1.21-1.22 times faster at
# 576x576 and 1536x576 (5.3-5.4 ns against 6.5; the scale table: before it 1.13-1.15),
# 1.04-1.12 at 576x1536 (no table: 8 x 32 x 48 bytes do not fit), 1.01-1.09 at 2048x5632
# (several chunks, each unpacked again for every batch of 8 inputs; chunks of 48 blocks
# there: 0.90-0.98, batches of 16 inputs: 1.08-1.14 for 2.3 KiB more stack, left out).
# Tried and slower: tiles of 2 groups with each input's bytes broadcast once into a scratch
# (20 loads of 256 bits a group block, and the scratch's stores), and the vpmaddwd
# replaced by a shift, an add and a mask (off the multiply pipes, but more operations).
#
# Loop order: per group of 8 rows (W read once from memory, front to back), the inputs in
# batches, per batch the group's blocks in chunks (Q1M_KC_MAX blocks, or Q1M_KC_MULTI for
# rows longer than that), each chunk unpacked once (prefetching the next group's same
# blocks), then each input of the batch
# over it: its accumulators from 0 (first chunk) or from the accumulator scratch (Q1M_AS,
# 288 bytes an input), back there, or after the last chunk folded into its 8 outputs. Rows
# of at most Q1M_KC_MAX blocks (n <= 1536: SmolLM2-135M's rows, 576 and 1536) are one
# chunk: one batch of all B inputs, unpacked once, no scratch for the accumulators; longer
# rows: batches of Q1M_IB_MAX inputs.
#
# Registers: rbx = bytes per row, r12 = out_stride, r13 = xq_stride, r14 = B, r15 = groups
# left; the input loop: rdi = the input at the chunk's first block, rbp = its outputs (the
# group's), r9 = its accumulator scratch, r8 = the batch's inputs left; the block loop: rsi
# = the input's block, rax = the scratch block, r11 = blocks left; ymm6 = 1 in every word,
# ymm7 = the 8 rows' summs, ymm8-ymm15 their lane accumulators 0..7 (as the matvec's),
# ymm0-ymm5 scratch (ymm1: f32(d_w) * f32(d_x)); with the scale table r10 = the input's
# row of it (0 without), rcx its entry for the block.
.equ Q1M_XMM, 0          # xmm6-xmm15 (160 bytes)
.equ Q1M_K, 160          # blocks per row
.equ Q1M_C0, 168         # the chunk's first block
.equ Q1M_KC, 176         # blocks in this chunk
.equ Q1M_IB, 184         # inputs per batch
.equ Q1M_WG, 192         # W at the group's first block
.equ Q1M_OG, 200         # out at the group's first row (input 0)
.equ Q1M_XB, 208         # the batch's first input (block 0)
.equ Q1M_OB, 216         # out at the group's first row for the batch's first input
.equ Q1M_BL, 224         # inputs left (this batch included)
.equ Q1M_NB, 232         # inputs in this batch
.equ Q1M_WS, 240         # the weight scratch (32-aligned address)
.equ Q1M_AS, 248         # the accumulator scratch (32-aligned address)
.equ Q1M_XQ, 256         # xq (input 0)
.equ Q1M_XT, 264         # the inputs' scale table (0: none, scales converted per block)
.equ Q1M_XTS, 272        # its bytes per input (8 K; 0 without a table)
.equ Q1M_AREA, 280       # the scratches (plus 32 bytes to align them)
.equ Q1M_KC_MAX, 48      # blocks per chunk
.equ Q1M_KC_MULTI, 24    # blocks per chunk of rows longer than Q1M_KC_MAX
.equ Q1M_IB_MAX, 8       # inputs per batch when a row is more than one chunk
.equ Q1M_WSB, 320        # weight scratch bytes per block: 8 lane vectors, f32 d_w, f32 m_w
.equ Q1M_ASB, 288        # accumulator scratch bytes per input: summs, lanes 0..7
.equ Q1M_FRAME, 17976    # Q1M_AREA + 32 + 48 x 320 + 8 x 288 (= 8 mod 16: 8 pushes)

# Q1M_UNPACK_V v: vector v of the group block at rdx -> lane vectors v (low nibbles) and
# 4 + v (high) of the scratch block at rax; ymm0, ymm1 clobbered
.macro Q1M_UNPACK_V v
    vmovdqu ymm0, [rdx + 32 + 32 * \v]
    vpand ymm1, ymm0, ymm5
    vmovdqa [rax + 32 * \v], ymm1
    vpsrlw ymm0, ymm0, 4
    vpand ymm0, ymm0, ymm5
    vmovdqa [rax + 128 + 32 * \v], ymm0
.endm
# Q1M_LANE j, acc, t: lane j of the scratch block at rax times the input's bytes 4j..4j+3
# (lanes 4..7: 16 + 4(j - 4)..: both at +4 + 4j of the Q8_1 block at rsi) -> int32 (exact:
# ggml_r8.s's bounds) -> f32, acc = fma(that, ymm1, acc); t and ymm(t + 1) clobbered
.macro Q1M_LANE j, acc, t, t1
    vpbroadcastd \t, dword ptr [rsi + 4 + 4 * \j]
    vmovdqa \t1, [rax + 32 * \j]
    vpmaddubsw \t1, \t1, \t
    vpmaddwd \t1, \t1, ymm6
    vcvtdq2ps \t1, \t1
    vfmadd231ps \acc, \t1, ymm1
.endm
# Q1M_BLOCK: one scratch block (rax) against one Q8_1 block (rsi) into ymm7-ymm15, as
# R8Q1_BLOCK rounds: summs += f32(m_w) * f32(s_x), then lane j += f32(I_j) * (f32(d_w) *
# f32(d_x)); ymm0-ymm5 clobbered
# Q1M_LANES: the 8 lanes' products and FMAs of a block (Q1M_LANE 0 .. 7)
.macro Q1M_LANES
    Q1M_LANE 0, ymm8, ymm2, ymm3
    Q1M_LANE 1, ymm9, ymm4, ymm5
    Q1M_LANE 2, ymm10, ymm2, ymm3
    Q1M_LANE 3, ymm11, ymm4, ymm5
    Q1M_LANE 4, ymm12, ymm2, ymm3
    Q1M_LANE 5, ymm13, ymm4, ymm5
    Q1M_LANE 6, ymm14, ymm2, ymm3
    Q1M_LANE 7, ymm15, ymm4, ymm5
.endm
.macro Q1M_BLOCK
    vpbroadcastd xmm0, dword ptr [rsi]        # f16 d_x, s_x, 4 times
    vcvtph2ps ymm0, xmm0
    vmovshdup ymm1, ymm0                      # s_x in every lane
    vmulps ymm1, ymm1, [rax + 288]
    vaddps ymm7, ymm7, ymm1
    vmovsldup ymm0, ymm0                      # d_x in every lane
    vmulps ymm1, ymm0, [rax + 256]
    Q1M_LANES
.endm
# Q1M_BLOCK_T: the same with the input block's f32 d_x, s_x from the scale table (rcx): the
# same values (vcvtph2ps of the same f16), broadcast from memory
.macro Q1M_BLOCK_T
    vbroadcastss ymm1, dword ptr [rcx + 4]    # s_x in every lane
    vmulps ymm1, ymm1, [rax + 288]
    vaddps ymm7, ymm7, ymm1
    vbroadcastss ymm1, dword ptr [rcx]        # d_x
    vmulps ymm1, ymm1, [rax + 256]
    Q1M_LANES
.endm
.macro Q1M_ACC op, base
    \op [\base], ymm7
    \op [\base + 32], ymm8
    \op [\base + 64], ymm9
    \op [\base + 96], ymm10
    \op [\base + 128], ymm11
    \op [\base + 160], ymm12
    \op [\base + 192], ymm13
    \op [\base + 224], ymm14
    \op [\base + 256], ymm15
.endm

matmat_q4_1_r8_avx2:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, Q1M_FRAME
    KSAVE_XMM6_15_VEX Q1M_XMM
    mov r15d, dword ptr [rsp + Q1M_FRAME + 64 + 40]   # d
    mov r14d, dword ptr [rsp + Q1M_FRAME + 64 + 48]   # B
    mov r12, qword ptr [rsp + Q1M_FRAME + 64 + 56]    # out_stride
    mov r13, qword ptr [rsp + Q1M_FRAME + 64 + 64]    # xq_stride
    shr r15, 3                        # groups
    jz .Ldone
    test r14, r14
    jz .Ldone
    mov qword ptr [rsp + Q1M_WG], rdx
    mov qword ptr [rsp + Q1M_OG], rcx
    mov qword ptr [rsp + Q1M_XQ], r8
    lea rax, [rsp + Q1M_AREA + 31]
    and rax, -32
    mov qword ptr [rsp + Q1M_WS], rax
    add rax, Q1M_KC_MAX * Q1M_WSB
    mov qword ptr [rsp + Q1M_AS], rax
    mov r9d, r9d
    shr r9, 5                         # blocks per row
    mov qword ptr [rsp + Q1M_K], r9
    imul rbx, r9, 20                  # bytes per row
    mov rax, r14                      # one chunk: all inputs in one batch
    mov ecx, Q1M_IB_MAX
    cmp r9, Q1M_KC_MAX
    cmova rax, rcx
    mov qword ptr [rsp + Q1M_IB], rax
    xor eax, eax                      # a scale table in the chunk's unused scratch?
    mov qword ptr [rsp + Q1M_XT], rax
    mov qword ptr [rsp + Q1M_XTS], rax
    cmp r9, Q1M_KC_MAX
    ja .Lno_table
    mov eax, Q1M_KC_MAX
    sub rax, r9
    imul rax, rax, Q1M_WSB            # bytes the one chunk leaves free
    lea rcx, [8 * r9]
    mov qword ptr [rsp + Q1M_XTS], rcx
    imul rcx, r14                     # the table's bytes: 8 B K
    cmp rcx, rax
    jbe .Ltable
    mov qword ptr [rsp + Q1M_XTS], 0
    jmp .Lno_table
.Ltable:
    imul rax, r9, Q1M_WSB
    add rax, qword ptr [rsp + Q1M_WS]
    mov qword ptr [rsp + Q1M_XT], rax
    mov rdi, r8                       # input 0
    mov r10, r14
.Ltable_input:
    mov rsi, rdi
    mov r11, r9
    test r11, r11
    jz .Ltable_next
.Ltable_block:
    vmovd xmm0, dword ptr [rsi]       # f16 d_x, s_x -> f32 (as Q1M_BLOCK converts them)
    vcvtph2ps xmm0, xmm0
    vmovq qword ptr [rax], xmm0
    add rsi, 36
    add rax, 8
    dec r11
    jnz .Ltable_block
.Ltable_next:
    add rdi, r13
    dec r10
    jnz .Ltable_input
.Lno_table:
    vmovdqu ymm6, [rip + kg_one_i16]
.Lgroup:
    mov rax, qword ptr [rsp + Q1M_XQ]   # the first batch: input 0
    mov qword ptr [rsp + Q1M_XB], rax
    mov rax, qword ptr [rsp + Q1M_OG]
    mov qword ptr [rsp + Q1M_OB], rax
    mov qword ptr [rsp + Q1M_BL], r14
.Lbatch:
    mov rax, qword ptr [rsp + Q1M_BL]
    mov rcx, qword ptr [rsp + Q1M_IB]
    cmp rax, rcx
    cmova rax, rcx
    mov qword ptr [rsp + Q1M_NB], rax
    mov qword ptr [rsp + Q1M_C0], 0
.Lchunk:                              # blocks c0 .. c0 + kc - 1 of the group, unpacked
    mov rax, qword ptr [rsp + Q1M_K]
    sub rax, qword ptr [rsp + Q1M_C0]
    mov ecx, Q1M_KC_MULTI
    cmp qword ptr [rsp + Q1M_K], Q1M_KC_MAX
    ja 1f
    mov ecx, Q1M_KC_MAX
1:
    cmp rax, rcx
    cmova rax, rcx
    mov qword ptr [rsp + Q1M_KC], rax
    mov r10, rax
    imul rdx, qword ptr [rsp + Q1M_C0], 160
    add rdx, qword ptr [rsp + Q1M_WG]
    mov rax, qword ptr [rsp + Q1M_WS]
    lea r9, [8 * rbx]                 # the next group's same block
    vmovdqu ymm5, [rip + kg_nib]
    test r10, r10
    jz .Lunpacked
.Lunpack:
    prefetcht0 [rdx + r9]
    prefetcht0 [rdx + r9 + 64]
    prefetcht0 [rdx + r9 + 128]
    prefetcht0 [rdx + r9 + 159]
    Q1M_UNPACK_V 0
    Q1M_UNPACK_V 1
    Q1M_UNPACK_V 2
    Q1M_UNPACK_V 3
    vcvtph2ps ymm0, xmmword ptr [rdx]         # the 8 rows' d_w
    vmovaps [rax + 256], ymm0
    vcvtph2ps ymm0, xmmword ptr [rdx + 16]    # m_w
    vmovaps [rax + 288], ymm0
    add rdx, 160
    add rax, Q1M_WSB
    dec r10
    jnz .Lunpack
.Lunpacked:
    imul rdi, qword ptr [rsp + Q1M_C0], 36
    add rdi, qword ptr [rsp + Q1M_XB]
    mov rbp, qword ptr [rsp + Q1M_OB]
    mov r9, qword ptr [rsp + Q1M_AS]
    mov r8, qword ptr [rsp + Q1M_NB]
    mov r10, qword ptr [rsp + Q1M_XT]   # (a table: one chunk, one batch from input 0)
.Linput:                              # each input of the batch over the chunk
    cmp qword ptr [rsp + Q1M_C0], 0
    jne .Lacc_load
    vxorps xmm7, xmm7, xmm7
    vxorps xmm8, xmm8, xmm8
    vxorps xmm9, xmm9, xmm9
    vxorps xmm10, xmm10, xmm10
    vxorps xmm11, xmm11, xmm11
    vxorps xmm12, xmm12, xmm12
    vxorps xmm13, xmm13, xmm13
    vxorps xmm14, xmm14, xmm14
    vxorps xmm15, xmm15, xmm15
    jmp .Lacc_ok
.Lacc_load:
    vmovaps ymm7, [r9]
    vmovaps ymm8, [r9 + 32]
    vmovaps ymm9, [r9 + 64]
    vmovaps ymm10, [r9 + 96]
    vmovaps ymm11, [r9 + 128]
    vmovaps ymm12, [r9 + 160]
    vmovaps ymm13, [r9 + 192]
    vmovaps ymm14, [r9 + 224]
    vmovaps ymm15, [r9 + 256]
.Lacc_ok:
    mov rsi, rdi
    mov rax, qword ptr [rsp + Q1M_WS]
    mov r11, qword ptr [rsp + Q1M_KC]
    test r11, r11
    jz .Lblocks_done
    mov rcx, r10
    test rcx, rcx
    jz .Lblock
.Lblock_t:
    Q1M_BLOCK_T
    add rsi, 36
    add rax, Q1M_WSB
    add rcx, 8
    dec r11
    jnz .Lblock_t
    jmp .Lblocks_done
.Lblock:
    Q1M_BLOCK
    add rsi, 36
    add rax, Q1M_WSB
    dec r11
    jnz .Lblock
.Lblocks_done:
    mov rax, qword ptr [rsp + Q1M_C0]
    add rax, qword ptr [rsp + Q1M_KC]
    cmp rax, qword ptr [rsp + Q1M_K]
    jae .Lfold
    Q1M_ACC vmovaps, r9
    jmp .Linput_next
.Lfold:                               # hsum_float_8's order, the 8 rows at once (R8Q1's)
    vaddps ymm8, ymm8, ymm12          # lanes 0 + 4
    vaddps ymm10, ymm10, ymm14        # 2 + 6
    vaddps ymm8, ymm8, ymm10
    vaddps ymm9, ymm9, ymm13          # 1 + 5
    vaddps ymm11, ymm11, ymm15        # 3 + 7
    vaddps ymm9, ymm9, ymm11
    vaddps ymm8, ymm8, ymm9
    vaddps ymm8, ymm8, ymm7           # + summs
    vmovups [rbp], ymm8
.Linput_next:
    add rdi, r13
    add rbp, r12
    add r9, Q1M_ASB
    add r10, qword ptr [rsp + Q1M_XTS]  # (0 without a table)
    dec r8
    jnz .Linput
    mov rax, qword ptr [rsp + Q1M_C0]   # the next chunk
    add rax, qword ptr [rsp + Q1M_KC]
    mov qword ptr [rsp + Q1M_C0], rax
    cmp rax, qword ptr [rsp + Q1M_K]
    jb .Lchunk
    mov rax, qword ptr [rsp + Q1M_NB]   # the next batch
    mov rcx, rax
    imul rcx, r13
    add qword ptr [rsp + Q1M_XB], rcx
    mov rcx, rax
    imul rcx, r12
    add qword ptr [rsp + Q1M_OB], rcx
    sub qword ptr [rsp + Q1M_BL], rax
    jnz .Lbatch
    mov rax, rbx                      # the next group
    shl rax, 3
    add qword ptr [rsp + Q1M_WG], rax
    add qword ptr [rsp + Q1M_OG], 32
    dec r15
    jnz .Lgroup
.Ldone:
    KLOAD_XMM6_15_VEX Q1M_XMM
    add rsp, Q1M_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    vzeroupper
    ret
