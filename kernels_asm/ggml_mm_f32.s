# F32 weights times a batch of f32 inputs: the matmat body kind for ggml's F32 (contract,
# loop order and frame in ggml_mm.inc). Each output equals matvec_avx2's (matvec.s) bit for
# bit: per (row, input) the same 4 accumulators over 32-column steps (accumulator k takes
# columns 32j + 8k .. 32j + 8k + 7), then 8 columns at a time into accumulator 0, then one
# column at a time into lane 0 of accumulator 1 (the other lanes add 0 * 0, as there), then
# (a0 + a1) + (a2 + a3) and the same vhaddps reduction.
#
# Register blocking: one row times a group of 3 inputs: the row's 32 columns of a step are
# loaded once (ymm0-ymm3) and FMAd with each input's (from memory) into 12 accumulators,
# ymm4 + 4i + k for input i, accumulator k. Inputs in groups of 3 (ggml_mm.inc's clamping
# for the last group); x pointers: rsi, rdi, r10 for the group's inputs 0, 1, 2; rax = the
# column (bytes); rbp = n*4 rounded down to 32 columns, rbx to 8, r9 = n*4.
.include "kernels.inc"
.include "kmacros.inc"
.include "ggml_mm.inc"

.section .text
.global matmat_f32_avx2, matmat_f32_r8_avx2

# matmat_f32_avx2(rcx = out, rdx = W (f32 rows), r8 = x (f32 inputs), r9d = n, [rsp+40] d,
#                 [rsp+48] B, [rsp+56] out_stride, [rsp+64] x_stride)
matmat_f32_avx2:
    MM_PROLOGUE_SAVE MM_FRAME_F32
    mov r9d, r9d
    shl r9, 2                         # bytes per row
    mov rbx, r9
    MM_TILE_ROWS
    mov rbx, r9
    and rbx, -32                      # 8 columns at a time up to here
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
    mov rsi, qword ptr [rsp + MM_XG]
    add rdi, rsi
    add r10, rsi
    mov rbp, r9
    and rbp, -128                     # 32 columns at a time up to here
.Lrow:
    test r8, r8
    jz .Lgroup_done
    vxorps xmm4, xmm4, xmm4
    vxorps xmm5, xmm5, xmm5
    vxorps xmm6, xmm6, xmm6
    vxorps xmm7, xmm7, xmm7
    MM_ZERO_ACC
    xor eax, eax
.Lcols32:
    cmp rax, rbp
    jae .Lcols8
    vmovups ymm0, [rdx + rax]
    vmovups ymm1, [rdx + rax + 32]
    vmovups ymm2, [rdx + rax + 64]
    vmovups ymm3, [rdx + rax + 96]
    vfmadd231ps ymm4, ymm0, [rsi + rax]
    vfmadd231ps ymm5, ymm1, [rsi + rax + 32]
    vfmadd231ps ymm6, ymm2, [rsi + rax + 64]
    vfmadd231ps ymm7, ymm3, [rsi + rax + 96]
    vfmadd231ps ymm8, ymm0, [rdi + rax]
    vfmadd231ps ymm9, ymm1, [rdi + rax + 32]
    vfmadd231ps ymm10, ymm2, [rdi + rax + 64]
    vfmadd231ps ymm11, ymm3, [rdi + rax + 96]
    vfmadd231ps ymm12, ymm0, [r10 + rax]
    vfmadd231ps ymm13, ymm1, [r10 + rax + 32]
    vfmadd231ps ymm14, ymm2, [r10 + rax + 64]
    vfmadd231ps ymm15, ymm3, [r10 + rax + 96]
    sub rax, -128
    jmp .Lcols32
.Lcols8:
    cmp rax, rbx
    jae .Lcols1
    vmovups ymm0, [rdx + rax]
    vfmadd231ps ymm4, ymm0, [rsi + rax]
    vfmadd231ps ymm8, ymm0, [rdi + rax]
    vfmadd231ps ymm12, ymm0, [r10 + rax]
    add rax, 32
    jmp .Lcols8
.Lcols1:                              # vmovss zeroes lanes 1..7, so they add 0 * 0
    cmp rax, r9
    jae .Lrow_done
    vmovss xmm0, dword ptr [rdx + rax]
    vmovss xmm1, dword ptr [rsi + rax]
    vfmadd231ps ymm5, ymm0, ymm1
    vmovss xmm1, dword ptr [rdi + rax]
    vfmadd231ps ymm9, ymm0, ymm1
    vmovss xmm1, dword ptr [r10 + rax]
    vfmadd231ps ymm13, ymm0, ymm1
    add rax, 4
    jmp .Lcols1
.Lrow_done:
    vaddps ymm4, ymm4, ymm5
    vaddps ymm6, ymm6, ymm7
    vaddps ymm4, ymm4, ymm6
    vaddps ymm8, ymm8, ymm9
    vaddps ymm10, ymm10, ymm11
    vaddps ymm8, ymm8, ymm10
    vaddps ymm12, ymm12, ymm13
    vaddps ymm14, ymm14, ymm15
    vaddps ymm12, ymm12, ymm14
    vhaddps ymm0, ymm4, ymm8          # per 128-bit half: a01 a23 b01 b23
    vhaddps ymm1, ymm12, ymm12
    vhaddps ymm0, ymm0, ymm1          # per half: a b c c
    vextractf128 xmm1, ymm0, 1
    vaddps xmm0, xmm0, xmm1
    vmovss dword ptr [rcx], xmm0
    mov rax, qword ptr [rsp + MM_O + 8]
    vmovshdup xmm1, xmm0
    vmovss dword ptr [rcx + rax], xmm1
    mov rax, qword ptr [rsp + MM_O + 16]
    vmovhlps xmm1, xmm0, xmm0
    vmovss dword ptr [rcx + rax], xmm1
    add rcx, 4
    add rdx, r9
    dec r8
    jmp .Lrow
.Lgroup_done:
    MM_GROUP_END 3
    jmp .Lgroup
.Ltile_done:
    MM_TILE_END r9
    jmp .Ltile
.Ldone:
    MM_EPILOGUE MM_FRAME_F32

# matmat_f32_r8_avx2(rcx = out, rdx = W in the F32_R8 layout, r8 = x (f32 inputs), r9d = n,
#                    [rsp+40] d, [rsp+48] B, [rsp+56] out_stride, [rsp+64] x_stride)
#   peasm/ggml.py's matmat contract (ggml_mm.inc) for F32_R8 (layout in peasm/ggml.py's
#   module text: groups of 8 rows, chunk c = 256 bytes, row r's columns 8c..8c+7 at 32r),
#   with d rounded down to a multiple of 8 (the last d mod 8 outputs are neither computed
#   nor written, as matvec_f32_r8_avx2) and n a multiple of 8; outputs of different inputs
#   must not overlap. Each output is bit for bit matvec_f32_r8_avx2's (matvec.s) for the
#   same row and input: one 8-lane accumulator a (row, input), lane j = columns 8c + j,
#   one FMA a chunk with c in order, then the same fold ((l0+l1)+(l2+l3)) + ((l4+l5)+
#   (l6+l7)) by the same vhaddps, vhaddps, low half + high half.
#   Register blocking: 4 rows x 3 inputs = 12 accumulators (ymm0-11: input i, row r in
#   ymm(4i + r)); per chunk the 3 inputs' x loaded once (ymm12-14), each of the 4 rows'
#   32 bytes of W once (ymm15) for 3 FMAs; a group's rows 0-3, then 4-7 over the same x
#   (from L1). Groups of 3 inputs as ggml_mm.inc; tiles of F32R8_TILE_BYTES of W (whole
#   groups, at least one), not ggml_mm.inc's MM_TILE_BYTES.
#   Registers, stack: as ggml_mm.inc (F32's frame); r11 = the W chunk pointer.
# F32R8_FOLD a, b, c, d, xa: rows a..d of one input (as the matvec: pairs, pairs of pairs,
# low half + high half) into xa = rows 0..3; ymm15 clobbered
.macro F32R8_FOLD a, b, c, d, xa
    vhaddps \a, \a, \b
    vhaddps \c, \c, \d
    vhaddps \a, \a, \c
    vextractf128 xmm15, \a, 1
    vaddps \xa, \xa, xmm15
.endm
# F32R8_STORE: the half's 12 results (rows 4h..4h+3 of the 3 inputs) to out at rcx
.macro F32R8_STORE
    F32R8_FOLD ymm0, ymm1, ymm2, ymm3, xmm0
    F32R8_FOLD ymm4, ymm5, ymm6, ymm7, xmm4
    F32R8_FOLD ymm8, ymm9, ymm10, ymm11, xmm8
    vmovups [rcx], xmm0
    mov rax, qword ptr [rsp + MM_O + 8]
    vmovups [rcx + rax], xmm4
    mov rax, qword ptr [rsp + MM_O + 16]
    vmovups [rcx + rax], xmm8
.endm
# W bytes a tile (as k_par_matmat's tiles, PAR_TILE_BYTES: in L1; measured in one noisy
# session, stories110M shapes: 16 KiB 0.94-1.36x the tile path, 32 or 64 KiB no better)
.equ F32R8_TILE_BYTES, 16384
matmat_f32_r8_avx2:
    MM_PROLOGUE_SAVE MM_FRAME_F32
    and r15, -8                       # whole groups only
    mov r9d, r9d
    shl r9, 2                         # bytes per row (x bytes)
    mov eax, F32R8_TILE_BYTES         # rows a tile: F32R8_TILE_BYTES / row bytes, whole
    xor edx, edx                      # groups, at least one
    lea r10, [r9 + 1]
    div r10
    and rax, -8
    mov r10d, 8
    cmp rax, r10
    cmovb rax, r10
    mov qword ptr [rsp + MM_TROWS], rax
.Lr8_tile:
    test r15, r15
    jz .Lr8_done
    test r14, r14
    jz .Lr8_done
    MM_TILE_BEGIN
.Lr8_group:
    mov rax, qword ptr [rsp + MM_BL]
    test rax, rax
    jz .Lr8_tile_done
    MM_GROUP_BEGIN
    mov rsi, qword ptr [rsp + MM_XG]
    add rdi, rsi
    add r10, rsi
.Lr8_rows:
    test r8, r8
    jz .Lr8_group_done
    mov r11, rdx                      # rows 0-3, then (r11 = rdx + 128) rows 4-7
    mov ebp, 2
.Lr8_half:
    vxorps xmm0, xmm0, xmm0
    vxorps xmm1, xmm1, xmm1
    vxorps xmm2, xmm2, xmm2
    vxorps xmm3, xmm3, xmm3
    vxorps xmm4, xmm4, xmm4
    vxorps xmm5, xmm5, xmm5
    vxorps xmm6, xmm6, xmm6
    vxorps xmm7, xmm7, xmm7
    MM_ZERO_ACC
    xor eax, eax
    test r9, r9
    jz .Lr8_fold
.Lr8_chunk:
    vmovups ymm12, [rsi + rax]
    vmovups ymm13, [rdi + rax]
    vmovups ymm14, [r10 + rax]
    vmovups ymm15, [r11]
    vfmadd231ps ymm0, ymm15, ymm12
    vfmadd231ps ymm4, ymm15, ymm13
    vfmadd231ps ymm8, ymm15, ymm14
    vmovups ymm15, [r11 + 32]
    vfmadd231ps ymm1, ymm15, ymm12
    vfmadd231ps ymm5, ymm15, ymm13
    vfmadd231ps ymm9, ymm15, ymm14
    vmovups ymm15, [r11 + 64]
    vfmadd231ps ymm2, ymm15, ymm12
    vfmadd231ps ymm6, ymm15, ymm13
    vfmadd231ps ymm10, ymm15, ymm14
    vmovups ymm15, [r11 + 96]
    vfmadd231ps ymm3, ymm15, ymm12
    vfmadd231ps ymm7, ymm15, ymm13
    vfmadd231ps ymm11, ymm15, ymm14
    add r11, 256
    add rax, 32
    cmp rax, r9
    jb .Lr8_chunk
.Lr8_fold:
    F32R8_STORE
    add rcx, 16
    lea r11, [rdx + 128]
    dec ebp
    jnz .Lr8_half
    lea rax, [r9 * 8]
    add rdx, rax                      # the next group of 8 rows
    sub r8, 8
    jmp .Lr8_rows
.Lr8_group_done:
    MM_GROUP_END 3
    jmp .Lr8_group
.Lr8_tile_done:
    MM_TILE_END r9
    jmp .Lr8_tile
.Lr8_done:
    MM_EPILOGUE MM_FRAME_F32
