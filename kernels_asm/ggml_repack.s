# Weights repacked in place between ggml's row-major blocks and this program's "rows
# interleaved" internal types (the R8 forms of Q4_0, Q4_1, Q4_K and F32: peasm/ggml.py's module text
# states the layout, peasm/ggml_r8.py packs it in numpy for the tests). The loader repacks a
# weight once when the running path has the R8 type's matvec body, and back when a path
# without it is chosen (app_asm/model_repack.s). Plain integer code, no SIMD: the same bytes
# on every path and under emulation; the weights are touched once per model load.
#
# The layout, for an R8 type of the table (GROUP_ROWS G > 1, BASE_TYPE its file type, the
# base's BLOCK_SIZE bs and BLOCK_BYTES bb): a 4-bit block is sb = bb - bs/2 bytes of f16
# scales (Q4_0: d; Q4_1: d, m; Q4_K: d, dmin and its 12 scale bytes, moved as 6 more
# words) then bs/2 bytes of nibbles. Rows in groups of G, a group in
# the bytes of its G rows; for each block column in order, one group block of G * bb bytes:
# each f16 scale field of the G rows (row r's at 2r), then bs/8 vectors of 4G bytes, vector
# v's dword r = row r's nibble bytes 4v .. 4v+3. A type of block size 1 (F32_R8) instead:
# for each 32-byte chunk column in order, the chunk of each of the G rows (row r's at 32r);
# its rows must be whole chunks (row bytes a multiple of 32).
.include "kernels.inc"
.include "ggml.inc"

.section .text
.global ggml_repack_r8, ggml_unpack_r8, ggml_r8_of
.extern ggml_type_table

# ggml_repack_r8(rcx = W, edx = file type id, r8d = rows, r9 = row bytes,
#                qword [rsp+40] = scratch of at least G * row bytes)
#   -> eax = the R8 type id now in W, or 0 (nothing written, scratch untouched) when no
#   R8 type of the table (ids GGML_TYPE_COUNT .. GGML_TABLE_ROWS-1, GROUP_ROWS > 1) has
#   edx as its BASE_TYPE, edx is not a file type id, rows is 0 or not a multiple of that
#   type's GROUP_ROWS G, or row bytes is 0 or not a multiple of its block bytes (of 32
#   for a block size of 1).
#   In place, group by group: the G rows copied to the scratch, then the group written back
#   in the R8 layout (above). W and the scratch must not overlap. Changes rax, rcx, rdx,
#   r8-r11 only (the ABI's volatile registers; no xmm).
ggml_repack_r8:
    push rcx
    mov ecx, edx
    call ggml_r8_of
    pop rcx
    test eax, eax
    jz .Lnone
    imul r11d, eax, GGML_TT_SIZE
    lea rdx, [rip + ggml_type_table]
    add r11, rdx                      # r11 = the R8 type's row
    xor edx, edx                      # direction: 0 pack
    jmp r8_move
.Lnone:
    ret

# ggml_r8_of(ecx = type id) -> eax = the id of its R8 form: the first internal type of the
#   table (ids GGML_TYPE_COUNT .. GGML_TABLE_ROWS-1) with GROUP_ROWS > 1 whose BASE_TYPE is
#   ecx; 0 when there is none or ecx is not a file type id (below GGML_TYPE_COUNT). Changes
#   rax, rdx, r11 only.
ggml_r8_of:
    xor eax, eax
    cmp ecx, GGML_TYPE_COUNT
    jae .Lof_done
    lea r11, [rip + ggml_type_table]
    mov eax, GGML_TYPE_COUNT
.Lof_find:
    cmp eax, GGML_TABLE_ROWS
    jae .Lof_none
    imul edx, eax, GGML_TT_SIZE
    cmp dword ptr [r11 + rdx + GGML_TT_GROUP_ROWS], 1
    jbe .Lof_next
    cmp [r11 + rdx + GGML_TT_BASE_TYPE], ecx
    je .Lof_done
.Lof_next:
    inc eax
    jmp .Lof_find
.Lof_none:
    xor eax, eax
.Lof_done:
    ret

# ggml_unpack_r8(rcx = W, edx = R8 type id, r8d = rows, r9 = row bytes,
#                qword [rsp+40] = scratch of at least G * row bytes)
#   -> eax = the file type id (the R8 type's BASE_TYPE) now in W, or GGML_TYPE_COUNT (the
#   "no type" value: 0 is F32's id) with nothing written when edx is not an R8 type of the
#   table or rows / row bytes are refused as by ggml_repack_r8. The inverse of ggml_repack_r8: ggml's row-major blocks again, bit for
#   bit what was packed. Same registers changed.
ggml_unpack_r8:
    mov eax, GGML_TYPE_COUNT
    cmp edx, GGML_TYPE_COUNT
    jb .Lnot_r8
    cmp edx, GGML_TABLE_ROWS
    jae .Lnot_r8
    lea r11, [rip + ggml_type_table]
    imul edx, edx, GGML_TT_SIZE
    add r11, rdx
    cmp dword ptr [r11 + GGML_TT_GROUP_ROWS], 1
    jbe .Lnot_r8
    mov eax, [r11 + GGML_TT_BASE_TYPE]
    mov edx, 1                        # direction: 1 unpack
    jmp r8_move
.Lnot_r8:
    ret

# r8_move: the tail of both (jumped to with their entry rsp and arguments; rcx = W, r8d =
#   rows, r9 = row bytes, r11 = the R8 type's table row, eax = the id to return, edx = 0
#   pack / 1 unpack). Checks the shape, then moves every group.
# Its frame after the 9 pushes: the caller's home slots of rcx and r9 hold the group's and a
# row's bytes.
.equ RM_GROUP_BYTES, 72 + 8
# 32 bytes from [rsi] to [rdi], then rdi 32 bytes on (rdx changed)
.macro RM_CHUNK32
    mov rdx, [rsi]
    mov [rdi], rdx
    mov rdx, [rsi + 8]
    mov [rdi + 8], rdx
    mov rdx, [rsi + 16]
    mov [rdi + 16], rdx
    mov rdx, [rsi + 24]
    mov [rdi + 24], rdx
    add rdi, 32
.endm
.equ RM_ROW_BYTES, 72 + 32
r8_move:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    mov r10, [rsp + 64 + 40]          # scratch
    push rax                          # the result, [rsp]
    mov [rsp + RM_ROW_BYTES], r9
    mov r15d, edx                     # direction
    mov r8d, r8d
    test r8, r8
    jz .Lrefuse
    mov ebp, [r11 + GGML_TT_GROUP_ROWS]   # rbp = G
    mov rax, r8
    xor edx, edx
    div rbp
    test rdx, rdx
    jnz .Lrefuse
    mov rbx, rax                      # rbx = groups
    test r9, r9
    jz .Lrefuse
    mov r12d, [r11 + GGML_TT_BLOCK_BYTES] # r12 = bb
    mov rax, r9
    xor edx, edx
    div r12
    test rdx, rdx
    jnz .Lrefuse
    mov r13d, [r11 + GGML_TT_BLOCK_SIZE]
    cmp r13d, 1
    jne .Lquant
    test r9b, 31
    jnz .Lrefuse                      # F32_R8: whole 32-byte chunks only
.Lquant:
    shr r13d, 1
    mov r14d, r13d
    shr r14d, 2                       # r14 = nibble dwords a block (bs / 8); 0: chunks
    neg r13
    add r13, r12                      # r13 = sb, scale bytes a block
    mov r11, rcx                      # r11 = the group's first byte
    mov rax, r9
    imul rax, rbp                     # G * row bytes: a group
    mov [rsp + RM_GROUP_BYTES], rax
.Lgroup:
    mov rsi, r11                      # the group to the scratch
    mov rdi, r10
    mov rcx, [rsp + RM_GROUP_BYTES]
    rep movsb
    mov rdi, r11                      # then written back in order, from the scratch
    test r14d, r14d
    jz .Lchunks
    test r15d, r15d
    jnz .Lunpack
    # pack: for each block column (r8 = its offset in a row), each scale word then each
    # nibble dword of the G rows (row r at r10 + r * row bytes)
    xor r8d, r8d
.Lp_block:
    xor ecx, ecx                      # ecx = offset in the block
.Lp_scale:
    cmp rcx, r13
    jae .Lp_nib
    lea rsi, [r10 + r8]
    add rsi, rcx
    mov eax, ebp
.Lp_scale_r:
    movzx r9d, word ptr [rsi]
    mov [rdi], r9w
    add rdi, 2
    add rsi, [rsp + RM_ROW_BYTES]           # + row bytes (the caller's r9, saved above)
    dec eax
    jnz .Lp_scale_r
    add ecx, 2
    jmp .Lp_scale
.Lp_nib:
    cmp rcx, r12
    jae .Lp_next
    lea rsi, [r10 + r8]
    add rsi, rcx
    mov eax, ebp
.Lp_nib_r:
    mov r9d, [rsi]
    mov [rdi], r9d
    add rdi, 4
    add rsi, [rsp + RM_ROW_BYTES]
    dec eax
    jnz .Lp_nib_r
    add ecx, 4
    jmp .Lp_nib
.Lp_next:
    add r8, r12
    cmp r8, [rsp + RM_ROW_BYTES]
    jb .Lp_block
    jmp .Lgroup_done
.Lunpack:
    # unpack: for each row r (r9 = 2r), each block column (rsi = its group block in the
    # scratch), the scale words then the nibble dwords of row r
    xor r9d, r9d
.Lu_row:
    mov rsi, r10
    mov r8, [rsp + RM_ROW_BYTES]            # row bytes left
.Lu_block:
    xor ecx, ecx                      # scale field offset (2 bytes a field)
.Lu_scale:
    cmp rcx, r13
    jae .Lu_nib0
    mov rax, rcx
    imul rax, rbp                     # field f at f * 2G = offset * G
    add rax, rsi
    movzx eax, word ptr [rax + r9]
    mov [rdi], ax
    add rdi, 2
    add ecx, 2
    jmp .Lu_scale
.Lu_nib0:
    mov rax, r13
    imul rax, rbp
    add rax, rsi                      # the vectors, after G * sb bytes of scales
    lea rax, [rax + r9 * 2]           # dword r of each vector
    mov ecx, r14d
.Lu_nib:
    mov edx, [rax]
    mov [rdi], edx
    add rdi, 4
    lea rax, [rax + rbp * 4]          # the next vector: 4G bytes on
    dec ecx
    jnz .Lu_nib
    mov rax, r12
    imul rax, rbp
    add rsi, rax                      # the next group block
    sub r8, r12
    jnz .Lu_block
    add r9d, 2
    mov eax, ebp
    add eax, eax
    cmp r9d, eax
    jb .Lu_row
    jmp .Lgroup_done
.Lchunks:                             # block size 1 (F32_R8): 32-byte chunks
    test r15d, r15d
    jnz .Lc_unpack
    xor r8d, r8d                      # pack: for each chunk column (r8 = its row offset),
.Lc_col:                              # the chunk of each of the G rows
    lea rsi, [r10 + r8]
    mov eax, ebp
.Lc_row:
    RM_CHUNK32
    add rsi, [rsp + RM_ROW_BYTES]
    dec eax
    jnz .Lc_row
    add r8, 32
    cmp r8, [rsp + RM_ROW_BYTES]
    jb .Lc_col
    jmp .Lgroup_done
.Lc_unpack:                           # unpack: for each row r (r9 = 32r), its chunks, 32G
    xor r9d, r9d                      # bytes apart in the scratch
    mov ecx, ebp
    shl ecx, 5                        # rcx = 32G
.Lc_urow:
    lea rsi, [r10 + r9]
    mov r8, [rsp + RM_ROW_BYTES]
.Lc_ucol:
    RM_CHUNK32
    add rsi, rcx
    sub r8, 32
    jnz .Lc_ucol
    add r9, 32
    cmp r9, rcx
    jb .Lc_urow
.Lgroup_done:
    mov r11, rdi
    dec rbx
    jnz .Lgroup
    pop rax
    jmp .Lout
.Lrefuse:
    pop rax
    xor eax, eax                      # pack: 0; unpack: GGML_TYPE_COUNT
    test r15d, r15d
    jz .Lout
    mov eax, GGML_TYPE_COUNT
.Lout:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret
