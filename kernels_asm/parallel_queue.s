# Queued row jobs on the job board (kernels_asm/parallel.s): the products that share an
# input (wq, wk, wv of one activation; w_gate, w_up of another) queued one by one by
# k_par_rows_queue and posted together by k_par_rows_flush, so a decode step posts fewer,
# larger jobs. Each chunk is one matvec body call on whole 4-row blocks of one of them: the
# same instructions on the same data as on one core, so the results are bit for bit its.
.include "kernels.inc"
.include "parallel.inc"

.equ PAR_PART_CHUNKS_PER_CORE, 8      # queued rows jobs: chunks per core taking part, at most
.equ PAR_PART_MIN_CHUNK_SHIFT, 13     #  and no chunk under 2^13 weight bytes (a claim and a
                                      #  body call cost ~0.2 us: 8 KiB of Q4 rows take ~1 us)
.equ PAR_MAX_PARTS, 4                 # matvecs one queued job may hold
# a queued matvec (this file's records, par_parts)
.equ PP_BODY, 0
.equ PP_OUT, 8
.equ PP_W, 16
.equ PP_X, 24
.equ PP_ROW_BYTES, 32
.equ PP_N, 40                         # dword
.equ PP_D, 44                         # dword: rows
.equ PP_CHUNKS, 48                    # dword: chunks of this part in the posted job
.equ PP_SIZE, 64

.section .data
.balign 8
par_nparts:      .long 0              # matvecs queued (k_par_rows_queue), not yet posted
.balign 64, 0
par_parts:       .fill PAR_MAX_PARTS * PP_SIZE, 1, 0   # their PP_* records

.section .text
.global k_par_rows_queue, k_par_rows_flush
.extern k_par_workers, par_post, par_rows_alone, par_job_run, par_job_chunk

# k_par_rows_queue(rcx = body, rdx = out, r8 = W, r9 = x, dword [rsp+40] = n,
#                  dword [rsp+48] = d, qword [rsp+56] = row_bytes)
#   k_par_rows's arguments and result, but deferred: the matvec joins the queued job, which
#   k_par_rows_flush posts (every queued matvec's rows, one job) and waits for. Until that
#   returns, out must not be read and W, x must not change. With no workers (or d = 0) it
#   runs now, as k_par_rows does. A fifth matvec flushes the four queued first. Same bodies
#   on the same sub-ranges as one core: bit for bit its results. Clobbers what a body may.
k_par_rows_queue:
    cmp dword ptr [rip + k_par_workers], 0
    je par_rows_alone
    cmp dword ptr [rsp + 48], 0
    je par_rows_alone
    cmp dword ptr [rip + par_nparts], PAR_MAX_PARTS
    jb .Lroom
    push rcx                          # full: post the queued ones first
    push rdx
    push r8
    push r9
    sub rsp, 40
    call k_par_rows_flush
    add rsp, 40
    pop r9
    pop r8
    pop rdx
    pop rcx
.Lroom:
    mov eax, [rip + par_nparts]
    lea r10d, [rax + 1]
    mov [rip + par_nparts], r10d
    imul eax, eax, PP_SIZE
    lea r11, [rip + par_parts]
    add r11, rax
    mov [r11 + PP_BODY], rcx
    mov [r11 + PP_OUT], rdx
    mov [r11 + PP_W], r8
    mov [r11 + PP_X], r9
    mov eax, dword ptr [rsp + 40]
    mov [r11 + PP_N], eax
    mov eax, dword ptr [rsp + 48]
    mov [r11 + PP_D], eax
    mov rax, [rsp + 56]
    mov [r11 + PP_ROW_BYTES], rax
    ret

# k_par_rows_flush(): posts the queued matvecs (k_par_rows_queue) as one job and returns
#   when every row of every one is written; nothing queued: returns at once. Chunks: whole
#   PAR_GRAIN-row blocks of one matvec each (a matvec's last chunk may have fewer rows), as
#   many as PAR_PART_CHUNKS_PER_CORE per core taking part but none under
#   2^PAR_PART_MIN_CHUNK_SHIFT weight bytes on average (and at least one per matvec). One
#   chunk in all: one body call here. Clobbers what a body may (rax, rcx, rdx, r8-r11,
#   xmm0-xmm5).
k_par_rows_flush:
    mov r8d, [rip + par_nparts]
    test r8d, r8d
    jz .Lnothing
    mov dword ptr [rip + par_nparts], 0
    lea r9, [rip + par_parts]
    xor r10d, r10d                    # rows in all
    xor eax, eax                      # weight bytes in all
    mov rcx, r9
    mov edx, r8d
.Lsum:
    mov r11d, [rcx + PP_D]
    add r10d, r11d
    imul r11, [rcx + PP_ROW_BYTES]
    add rax, r11
    add rcx, PP_SIZE
    dec edx
    jnz .Lsum
    shr rax, PAR_PART_MIN_CHUNK_SHIFT # chunks the bytes allow
    mov ecx, [rip + k_par_workers]
    inc ecx
    imul ecx, ecx, PAR_PART_CHUNKS_PER_CORE
    cmp rax, rcx
    cmovb ecx, eax                    # the fewer
    mov eax, 1
    cmp ecx, eax
    cmovb ecx, eax                    # at least one
    lea eax, [r10 + rcx - 1]
    xor edx, edx
    div ecx                           # rows per chunk: ceil(rows / chunks), whole blocks
    add eax, PAR_GRAIN - 1
    and eax, -PAR_GRAIN
    mov [rip + par_job_chunk], eax
    mov ecx, eax
    xor r10d, r10d                    # chunks in all
    mov r11, r9
.Lcount:                              # each part: ceil(d / per chunk) chunks
    mov eax, [r11 + PP_D]
    add eax, ecx
    dec eax
    xor edx, edx
    div ecx
    mov [r11 + PP_CHUNKS], eax
    add r10d, eax
    add r11, PP_SIZE
    dec r8d
    jnz .Lcount
    cmp r10d, 2
    jb .Lone
    lea rax, [rip + par_run_parts]
    mov [rip + par_job_run], rax
    mov eax, r10d
    jmp par_post
.Lone:                                # one matvec, one chunk: body(out, W, x, n, d) here
    sub rsp, 56
    mov eax, [r9 + PP_D]
    mov dword ptr [rsp + 32], eax
    mov rcx, [r9 + PP_OUT]
    mov rdx, [r9 + PP_W]
    mov r8, [r9 + PP_X]
    mov r9d, [r9 + PP_N]
    call qword ptr [rip + par_parts]  # PP_BODY of the first record (offset 0)
    add rsp, 56
.Lnothing:
    ret

# par_run_parts(ecx = chunk): the chunk's matvec (the parts in queue order, PP_CHUNKS
#   each) on its rows: body(out + i0*4, W + i0*row_bytes, x, n, rows)
par_run_parts:
    sub rsp, 56
    lea r11, [rip + par_parts]
.Lfind:
    mov eax, [r11 + PP_CHUNKS]
    cmp ecx, eax
    jb .Lfound
    sub ecx, eax
    add r11, PP_SIZE
    jmp .Lfind
.Lfound:
    mov eax, ecx
    imul eax, [rip + par_job_chunk]
    mov r10d, eax                     # i0
    mov edx, [r11 + PP_D]
    sub edx, eax
    mov eax, [rip + par_job_chunk]
    cmp edx, eax
    cmova edx, eax                    # rows
    mov dword ptr [rsp + 32], edx
    mov rcx, [r11 + PP_OUT]
    lea rcx, [rcx + r10 * 4]
    mov rdx, [r11 + PP_ROW_BYTES]
    imul rdx, r10
    add rdx, [r11 + PP_W]
    mov r8, [r11 + PP_X]
    mov r9d, [r11 + PP_N]
    call qword ptr [r11 + PP_BODY]
    add rsp, 56
    ret

