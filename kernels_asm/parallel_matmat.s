# Batched products on the job board (kernels_asm/parallel.s): one weight applied to a batch
# of inputs (the prefill, app_asm/forward_batch.s), its rows split across the cores in
# chunks of whole 4-row blocks (and whole groups of rows of a weight stored in groups,
# MATMAT_GROUP_ROWS), each chunk done for every input of the batch.
.include "kernels.inc"
.include "parallel.inc"

.equ PAR_TILE_BYTES, 16384            # k_par_matmat without a matmat body: weight bytes a
                                      #  tile of rows may take (stays in L1 while every
                                      #  input of the batch passes over it)

.section .data
.balign 4
par_mm_grain:    .long 0              # k_par_matmat: the grain PAR_SPLIT rounds to

.section .text
.global k_par_matmat
.extern k_par_workers, par_post, par_run_range, par_job_run, par_job_body, par_job_out
.extern par_job_d, par_job_chunk

# k_par_matmat(rcx = params: a MATMAT_* block, kernels.inc)
#   The batched product of one weight: its rows 0..d-1 split across the workers and this
#   core in chunks that start at multiples of PAR_GRAIN and of MATMAT_GROUP_ROWS (as
#   k_par_rows), each chunk done by
#   par_matmat_rows for all B inputs; returns when all are done. Alone (no workers, or under 2
#   chunks' worth of rows): one par_matmat_rows over every row. The block is read, never
#   written, and must stay untouched until the call returns. Each output is the type's matvec
#   (or matmat) body's value for that row and input: with the matvec fallback, bit for bit
#   what k_par_rows gives for that input alone. Clobbers what a body may (rax, rcx, rdx,
#   r8-r11, xmm0-xmm5).
k_par_matmat:
    cmp dword ptr [rip + k_par_workers], 0
    je .Lmm_alone
    mov r10d, [rcx + MATMAT_D]
    test r10d, r10d
    jz .Lmm_alone
    mov r11d, [rcx + MATMAT_GROUP_ROWS]
    PAR_GRAIN_OF r11d, eax
    mov [rip + par_mm_grain], r11d    # (only this core posts: nobody else reads it)
    PAR_SPLIT [rip+par_mm_grain]
    cmp r11d, 2
    jb .Lmm_alone
    mov [rip + par_job_chunk], eax
    mov [rip + par_job_d], r10d
    mov [rip + par_job_out], rcx      # the range job's ctx: the block
    lea rax, [rip + par_matmat_rows]
    mov [rip + par_job_body], rax
    lea rax, [rip + par_run_range]
    mov [rip + par_job_run], rax
    mov eax, r11d
    jmp par_post
.Lmm_alone:
    xor edx, edx
    mov r8d, [rcx + MATMAT_D]
    jmp par_matmat_rows

# par_matmat_rows(rcx = MATMAT block, edx = first row, r8d = rows): rows first..first+rows-1
#   of the product for every input. With a matmat body: one call of it on those rows. Without:
#   the rows in tiles of PAR_TILE_BYTES of weights (a multiple of the grain, PAR_GRAIN_OF
#   MATMAT_GROUP_ROWS: whole blocks and whole groups, at least one grain), and per tile the
#   matvec body once per input, so a tile comes from memory once and from cache for the other
#   inputs. first is a multiple of the grain (row 0 or a chunk's start), so every tile starts
#   on a block and a group as the single-input calls' chunks do. Clobbers what a body may.
par_matmat_rows:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 80                       # shadow + 5 stack arguments (7 pushes: aligned)
    mov rbx, rcx
    mov esi, edx                      # the next row
    lea edi, [rdx + r8]               # the end row
    mov rax, [rbx + MATMAT_BODY]
    test rax, rax
    jz .Ltiles
    mov rcx, [rbx + MATMAT_OUT]       # body(out + first*4, W + first*row_bytes, xq, n, rows,
    lea rcx, [rcx + rsi * 4]          #      B, out_stride, xq_stride)
    mov rdx, [rbx + MATMAT_ROW_BYTES]
    imul rdx, rsi
    add rdx, [rbx + MATMAT_W]
    mov r8, [rbx + MATMAT_XQ]
    mov r9d, [rbx + MATMAT_N]
    mov r10d, edi
    sub r10d, esi
    mov [rsp + 32], r10
    mov r10d, [rbx + MATMAT_B]
    mov [rsp + 40], r10
    mov r10, [rbx + MATMAT_OUT_STRIDE]
    mov [rsp + 48], r10
    mov r10, [rbx + MATMAT_XQ_STRIDE]
    mov [rsp + 56], r10
    call rax
    jmp .Lout
.Ltiles:
    mov ecx, [rbx + MATMAT_GROUP_ROWS]
    PAR_GRAIN_OF ecx, eax
    mov eax, PAR_TILE_BYTES           # rows a tile: PAR_TILE_BYTES / row_bytes, whole grains
    xor edx, edx
    div qword ptr [rbx + MATMAT_ROW_BYTES]
    mov edx, ecx
    neg edx
    and eax, edx
    cmp eax, ecx
    cmovb eax, ecx
    mov r12d, eax
.Ltile:
    cmp esi, edi
    jae .Lout
    mov r13d, edi                     # rows in this tile
    sub r13d, esi
    cmp r13d, r12d
    cmova r13d, r12d
    xor r14d, r14d                    # input b
.Linput:                              # matvec(out + b*out_stride + r0*4, W + r0*row_bytes,
    mov rcx, [rbx + MATMAT_OUT_STRIDE]  #      xq + b*xq_stride, n, tile rows)
    imul rcx, r14
    add rcx, [rbx + MATMAT_OUT]
    lea rcx, [rcx + rsi * 4]
    mov rdx, [rbx + MATMAT_ROW_BYTES]
    imul rdx, rsi
    add rdx, [rbx + MATMAT_W]
    mov r8, [rbx + MATMAT_XQ_STRIDE]
    imul r8, r14
    add r8, [rbx + MATMAT_XQ]
    mov r9d, [rbx + MATMAT_N]
    mov [rsp + 32], r13
    call qword ptr [rbx + MATMAT_MATVEC]
    inc r14d
    cmp r14d, [rbx + MATMAT_B]
    jb .Linput
    add esi, r13d
    jmp .Ltile
.Lout:
    add rsp, 80
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

