# The job board: rows of one kernel call split across cores. Knows nothing of how the other
# cores were started (efi_stubs/mp.s starts them through UEFI MP services; the hosted runners
# start host threads or emulated cores): each worker core runs k_par_worker(index) forever,
# and k_par_set_workers says how many of them may take work.
#
# One job at a time, posted by one caller (the boot core): the items of a call (the rows
# 0..d-1 of a matvec, cut into chunks of whole 4-row blocks since the bodies reduce 4 rows at
# a time; the rows of several matvecs queued by k_par_rows_queue and posted together by
# k_par_rows_flush, e.g. wq, wk, wv of one input, so a decode step posts fewer, larger jobs;
# the rows of a weight applied to a batch of inputs, k_par_matmat; or the heads of
# attention) are cut into chunks; every core, the caller included,
# takes the next chunk from a shared counter until none is left, and the caller returns once
# every chunk is done. A chunk is the body called on a sub-range (a sub-matrix, some heads),
# so each output is computed by the same instructions on the same data as a single-core
# call: results are bit for bit those of one core, however the chunks fell.
#
# Memory ordering (x86 TSO, Intel SDM vol 3, 9.2): the caller writes the job's fields, then
# the claim word with one aligned store; stores are seen in order, so a core that claims a
# chunk of the new word sees the new fields. Claims are `lock xadd` on that word (chunk count
# in its high half, next chunk in its low half, so a claim reads both at once and a late
# claim on a finished job just finds it empty). A job's fields are rewritten only after its
# last chunk is done, and a chunk is reported done by `lock inc` after its rows are written,
# so the caller sees every row once the count is complete. The spin loops use `pause` (the
# hosted unicorn runner switches cores at `pause` and at `lock` instructions).
#
# Not reentrant: only one core posts jobs, and a body must not post one itself.
.include "kernels.inc"

.equ PAR_GRAIN, 4                     # rows per block: chunks are whole blocks
.equ PAR_CHUNKS_PER_CORE, 4           # chunks per core taking part (balance vs per-chunk cost)
.equ PAR_MAX_WORKERS, 255
.equ PAR_PART_CHUNKS_PER_CORE, 8      # queued rows jobs: chunks per core taking part, at most
.equ PAR_PART_MIN_CHUNK_SHIFT, 13     #  and no chunk under 2^13 weight bytes (a claim and a
                                      #  body call cost ~0.2 us: 8 KiB of Q4 rows take ~1 us)
.equ PAR_MAX_PARTS, 4                 # matvecs one queued job may hold
# a queued matvec (parallel.s's own records, par_parts)
.equ PP_BODY, 0
.equ PP_OUT, 8
.equ PP_W, 16
.equ PP_X, 24
.equ PP_ROW_BYTES, 32
.equ PP_N, 40                         # dword
.equ PP_D, 44                         # dword: rows
.equ PP_CHUNKS, 48                    # dword: chunks of this part in the posted job
.equ PP_SIZE, 64
.equ PAR_TILE_BYTES, 16384            # k_par_matmat without a matmat body: weight bytes a
                                      #  tile of rows may take (stays in L1 while every
                                      #  input of the batch passes over it)

.section .data
.balign 64, 0
par_word:        .quad 0              # claim word: chunk count << 32 | next chunk
.balign 64, 0
par_done:        .long 0              # chunks of the current job done (the caller spins here)
.balign 64, 0
k_par_worker_chunks: .quad 0          # chunks done by workers so far (tests, /cpu)
.balign 64, 0                         # (each line written by every chunk stays apart from
.global k_par_workers, k_par_worker_chunks  #  the others and from the ones workers read)
k_par_workers:   .long 0              # workers allowed to take chunks (their index below it)
par_quit:        .long 0              # nonzero: workers return from k_par_worker
par_job_run:     .quad 0              # the job: par_run_rows or par_run_range(ecx = chunk)
par_job_body:    .quad 0              # rows: body(out + i0*4, W + i0*row_bytes, x, n, rows)
par_job_out:     .quad 0              #   (range: body(ctx = out, first = i0, count))
par_job_w:       .quad 0
par_job_x:       .quad 0
par_job_row_bytes: .quad 0
par_job_n:       .long 0
par_job_d:       .long 0              # items (rows, heads)
par_job_chunk:   .long 0              # items per chunk (the last one may have fewer)
.balign 8
par_matvec_body: .quad 0              # the single-core matvec body behind k_matvec
par_attention_body: .quad 0           # the single-core attention body behind k_attention
par_nparts:      .long 0              # matvecs queued (k_par_rows_queue), not yet posted
.balign 64, 0
par_parts:       .fill PAR_MAX_PARTS * PP_SIZE, 1, 0   # their PP_* records

.section .text
.global k_par_rows, k_par_rows_queue, k_par_rows_flush, k_par_for, k_par_worker, k_par_set_workers, k_par_quit
.global par_matvec, par_attention, par_select_entries, k_par_matmat
.extern k_matvec, k_attention, k_attention_heads

# PAR_SPLIT grain: r10d = items (> 0) -> eax = items per chunk (a multiple of grain, a power
# of 2), r11d = chunks; aims at PAR_CHUNKS_PER_CORE chunks per core taking part. Changes
# only rax, r11.
.macro PAR_SPLIT grain
    push rdx
    push rcx
    mov ecx, [rip + k_par_workers]
    inc ecx
    imul ecx, ecx, PAR_CHUNKS_PER_CORE
    lea eax, [r10 + rcx - 1]
    xor edx, edx
    div ecx                           # ceil(items / chunks wanted)
    add eax, \grain - 1
    and eax, -\grain
    mov ecx, eax
    lea eax, [r10 + rcx - 1]
    xor edx, edx
    div ecx                           # chunks = ceil(items / per chunk)
    mov r11d, eax
    mov eax, ecx
    pop rcx
    pop rdx
.endm

# k_par_rows(rcx = body, rdx = out, r8 = W, r9 = x, dword [rsp+40] = n, dword [rsp+48] = d,
#            qword [rsp+56] = row_bytes)
#   Runs body over rows 0..d-1 of W, split across the workers and this core; returns when all
#   are done. body follows the matvec contract (kernels.inc, peasm/ggml.py):
#   body(rcx = out, rdx = W, r8 = x, r9d = n, dword [rsp+40] = rows), out f32[rows], W rows of
#   row_bytes bytes each; each chunk is body(out + i0*4, W + i0*row_bytes, x, n, rows). With no
#   workers, or fewer than 2 chunks' worth of rows, it is one call body(out, W, x, n, d).
#   Clobbers what the body may (rax, rcx, rdx, r8-r11, xmm0-xmm5).
k_par_rows:
    cmp dword ptr [rip + k_par_workers], 0
    je .Lserial
    mov r10d, dword ptr [rsp + 48]    # d
    test r10d, r10d
    jz .Lserial
    PAR_SPLIT PAR_GRAIN
    cmp r11d, 2
    jb .Lserial                       # one chunk: nothing to share
    mov [rip + par_job_chunk], eax
    mov [rip + par_job_d], r10d
    mov [rip + par_job_body], rcx
    mov [rip + par_job_out], rdx
    mov [rip + par_job_w], r8
    mov [rip + par_job_x], r9
    mov ecx, dword ptr [rsp + 40]
    mov [rip + par_job_n], ecx
    mov rcx, [rsp + 56]
    mov [rip + par_job_row_bytes], rcx
    lea rcx, [rip + par_run_rows]
    mov [rip + par_job_run], rcx
    mov eax, r11d
    jmp par_post
.Lserial:
    jmp par_rows_alone

# par_rows_alone: body(out, W, x, n, d) on this core, jumped to with k_par_rows's (or
#   k_par_rows_queue's) entry rsp and arguments: shift the arguments, tail call.
par_rows_alone:
    mov rax, rcx
    mov rcx, rdx
    mov rdx, r8
    mov r8, r9
    mov r9d, dword ptr [rsp + 40]
    mov r10d, dword ptr [rsp + 48]
    mov dword ptr [rsp + 40], r10d    # our own argument slots: ours to reuse
    jmp rax

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

# k_par_for(rcx = body, rdx = ctx, r8d = count)
#   Runs body(rcx = ctx, edx = first, r8d = items) over items 0..count-1 split across the
#   workers and this core (chunks of any size); returns when all are done. Alone (no
#   workers, or under 2 chunks' worth): one call body(ctx, 0, count). body follows the MS x64
#   ABI and may clobber what a kernel may.
k_par_for:
    cmp dword ptr [rip + k_par_workers], 0
    je .Lalone
    mov r10d, r8d
    test r10d, r10d
    jz .Lalone
    PAR_SPLIT 1
    cmp r11d, 2
    jb .Lalone
    mov [rip + par_job_chunk], eax
    mov [rip + par_job_d], r10d
    mov [rip + par_job_body], rcx
    mov [rip + par_job_out], rdx
    lea rcx, [rip + par_run_range]
    mov [rip + par_job_run], rcx
    mov eax, r11d
    jmp par_post
.Lalone:
    mov rax, rcx
    mov rcx, rdx
    xor edx, edx
    jmp rax

# k_par_matmat(rcx = params: a MATMAT_* block, kernels.inc)
#   The batched product of one weight: its rows 0..d-1 split across the workers and this
#   core in chunks of whole PAR_GRAIN-row blocks (as k_par_rows), each chunk done by
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
    PAR_SPLIT PAR_GRAIN
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
#   the rows in tiles of PAR_TILE_BYTES of weights (whole PAR_GRAIN-row blocks, at least one
#   block), and per tile the matvec body once per input, so a tile comes from memory once and
#   from cache for the other inputs. first is a multiple of PAR_GRAIN (row 0 or a chunk's
#   start), so every tile starts on a block as the single-input calls' chunks do. Clobbers
#   what a body may.
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
    mov eax, PAR_TILE_BYTES           # rows a tile: PAR_TILE_BYTES / row_bytes, whole blocks
    xor edx, edx
    div qword ptr [rbx + MATMAT_ROW_BYTES]
    and eax, -PAR_GRAIN
    mov ecx, PAR_GRAIN
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

# par_post: the tail of k_par_rows / k_par_rows_flush / k_par_for / k_par_matmat (jumped
#   to with their entry rsp; eax = chunks >= 2, the job's fields written): publishes the
#   job, takes chunks like any worker, waits for the rest, returns to their caller.
par_post:
    push rbx
    sub rsp, 32
    mov dword ptr [rip + par_done], 0
    mov ebx, eax                      # chunks
    shl rax, 32
    mov [rip + par_word], rax         # post: the fields above are visible before this (TSO)
.Lhelp:
    call par_take
    test eax, eax
    jnz .Lhelp
    jmp .Lcheck
.Lwait:
    pause
.Lcheck:
    cmp [rip + par_done], ebx
    jb .Lwait
    add rsp, 32
    pop rbx
    ret

# par_take() -> eax = 1 if a chunk of the posted job was taken and done, 0 if none was left.
#   Clobbers what a body may.
par_take:
    sub rsp, 40
    mov eax, 1
    lock xadd [rip + par_word], rax
    mov rdx, rax
    shr rdx, 32                       # chunks
    cmp eax, edx
    jae .Lnone                        # (a claim past the end changes nothing that matters)
    mov ecx, eax
    call qword ptr [rip + par_job_run]
    lock inc dword ptr [rip + par_done]   # after its results are written
    mov eax, 1
    add rsp, 40
    ret
.Lnone:
    xor eax, eax
    add rsp, 40
    ret

# par_chunk_range(ecx = chunk) -> r10 = first item, edx = items in it. Changes rax, rdx, r10.
.macro PAR_CHUNK_RANGE
    mov eax, ecx
    imul eax, [rip + par_job_chunk]
    mov r10d, eax
    mov edx, [rip + par_job_d]
    sub edx, eax
    mov eax, [rip + par_job_chunk]
    cmp edx, eax
    cmova edx, eax
.endm

# par_run_rows(ecx = chunk): body(out + i0*4, W + i0*row_bytes, x, n, rows)
par_run_rows:
    sub rsp, 56
    PAR_CHUNK_RANGE
    mov dword ptr [rsp + 32], edx
    mov rcx, [rip + par_job_out]
    lea rcx, [rcx + r10 * 4]
    mov rdx, [rip + par_job_row_bytes]
    imul rdx, r10
    add rdx, [rip + par_job_w]
    mov r8, [rip + par_job_x]
    mov r9d, [rip + par_job_n]
    call qword ptr [rip + par_job_body]
    add rsp, 56
    ret

# par_run_range(ecx = chunk): body(ctx, first, items)
par_run_range:
    sub rsp, 40
    PAR_CHUNK_RANGE
    mov r8d, edx
    mov edx, r10d
    mov rcx, [rip + par_job_out]
    call qword ptr [rip + par_job_body]
    add rsp, 40
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

# k_par_worker(ecx = worker index) : a worker core's loop. Waits for chunks (spinning with
#   `pause`), takes them while its index is below k_par_workers, and returns only after
#   k_par_quit. Calls no one but the job bodies. MS x64 ABI; preserves what it must.
k_par_worker:
    push rbx
    push rsi
    push rdi
    sub rsp, 192                      # 32 shadow + xmm6..15 saves (160)
    movups [rsp + 32], xmm6           # (a body may use them; it restores them, but a
    movups [rsp + 48], xmm7           #  future body that does not must not break our caller)
    movups [rsp + 64], xmm8
    movups [rsp + 80], xmm9
    movups [rsp + 96], xmm10
    movups [rsp + 112], xmm11
    movups [rsp + 128], xmm12
    movups [rsp + 144], xmm13
    movups [rsp + 160], xmm14
    movups [rsp + 176], xmm15
    mov ebx, ecx
    jmp .Lpoll
.Lidle:
    pause
.Lpoll:
    cmp dword ptr [rip + par_quit], 0
    jne .Lquit
    cmp ebx, [rip + k_par_workers]
    jae .Lidle
    mov rax, [rip + par_word]
    mov rdx, rax
    shr rdx, 32
    cmp eax, edx
    jae .Lidle                        # nothing posted, or all of it taken
    call par_take
    test eax, eax
    jz .Lpoll
    lock inc qword ptr [rip + k_par_worker_chunks]
    jmp .Lpoll
.Lquit:
    movups xmm6, [rsp + 32]
    movups xmm7, [rsp + 48]
    movups xmm8, [rsp + 64]
    movups xmm9, [rsp + 80]
    movups xmm10, [rsp + 96]
    movups xmm11, [rsp + 112]
    movups xmm12, [rsp + 128]
    movups xmm13, [rsp + 144]
    movups xmm14, [rsp + 160]
    movups xmm15, [rsp + 176]
    add rsp, 192
    pop rdi
    pop rsi
    pop rbx
    ret

# k_par_set_workers(ecx = count): how many workers (indices 0..count-1) take chunks from now
#   on (at most PAR_MAX_WORKERS; 0: every call runs on the calling core alone). Call it only
#   between jobs, from the core that posts them. Also points k_matvec and k_attention at
#   par_matvec and par_attention when count > 0 (see par_select_entries). Changes only rax, rcx.
k_par_set_workers:
    mov eax, PAR_MAX_WORKERS
    cmp ecx, eax
    cmova ecx, eax
    mov [rip + k_par_workers], ecx
    jmp par_select_entries

# k_par_quit(ecx = 1): every worker returns from k_par_worker (at its next look at the
#   board); ecx = 0 clears that, for workers started afresh. Changes nothing else.
k_par_quit:
    mov [rip + par_quit], ecx
    ret

# par_select_entries(): the dispatch's k_matvec and k_attention go through the job board
#   when there are workers (par_matvec, par_attention, which call the single-core bodies per
#   chunk), else they are the single-core bodies. kernels_init calls it after filling the
#   table; k_par_set_workers after a change of count. Changes only rax, rcx.
.macro PAR_SELECT entry, wrapper, saved
    mov rax, [rip + \entry]
    lea rcx, [rip + \wrapper]
    cmp rax, rcx
    cmove rax, [rip + \saved]        # the entry holds the wrapper: the body saved before
    mov [rip + \saved], rax          # else a body kernels_init just put there
    test rax, rax
    cmovz rcx, rax                    # no body yet (kernels_init will call us): leave 0
    cmp dword ptr [rip + k_par_workers], 0
    cmovne rax, rcx
    mov [rip + \entry], rax
.endm

par_select_entries:
    PAR_SELECT k_matvec, par_matvec, par_matvec_body
    PAR_SELECT k_attention, par_attention, par_attention_body
    ret

# par_matvec(rcx = out, rdx = W, r8 = x, r9d = n, dword [rsp+40] = d): k_matvec's contract
#   (kernels.inc), the rows split across the cores by k_par_rows over the f32 body.
par_matvec:
    sub rsp, 72
    mov eax, dword ptr [rsp + 72 + 40]
    mov dword ptr [rsp + 40], eax     # d (the callee's [rsp+48])
    mov r9d, r9d
    mov dword ptr [rsp + 32], r9d     # n (the callee's [rsp+40])
    lea rax, [r9 * 4]
    mov [rsp + 48], rax               # row bytes (the callee's [rsp+56])
    mov r9, r8                        # x
    mov r8, rdx                       # W
    mov rdx, rcx                      # out
    mov rcx, [rip + par_matvec_body]
    call k_par_rows
    add rsp, 72
    ret

# par_attention(rcx = params): k_attention's contract (kernels.inc), the heads split across
#   the cores by k_par_for over attention_heads_<path> (each head's scores, softmax and
#   weighted sum are its own: the same results as one core).
par_attention:
    sub rsp, 40
    mov rdx, rcx
    mov r8d, dword ptr [rcx + ATT_N_HEADS]
    mov rcx, [rip + k_attention_heads]
    call k_par_for
    add rsp, 40
    ret
