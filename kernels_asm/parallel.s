# The job board: rows of one kernel call split across cores. Knows nothing of how the other
# cores were started (efi_stubs/mp.s starts them through UEFI MP services; the hosted runners
# start host threads or emulated cores): each worker core runs k_par_worker(index) forever,
# and k_par_set_workers says how many of them may take work.
#
# One job at a time, posted by one caller (the boot core): the items of a call (the rows
# 0..d-1 of a matvec, cut into chunks of whole 4-row blocks since the bodies reduce 4 rows at
# a time, and of whole groups of a weight stored in groups of rows; the rows of several
# matvecs queued by k_par_rows_queue and posted together by k_par_rows_flush, e.g. wq, wk, wv of one input, so a decode step posts fewer, larger jobs;
# the rows of a weight applied to a batch of inputs, k_par_matmat; or the heads of
# attention) are cut into chunks; every core, the caller included,
# takes the next chunk of its end (below) until none is left, and the caller returns once
# every chunk is done. A chunk is the body called on a sub-range (a sub-matrix, some heads),
# so each output is computed by the same instructions on the same data as a single-core
# call: results are bit for bit those of one core, however the chunks fell.
#
# Two ends: the caller takes chunks from the front (0, 1, 2, ...), the workers from the back
# (n-1, n-2, ...), so with one worker each core walks its own end of the rows, its next chunk
# next to its last, not interleaved with the other core's (as chunks taken in turn from one
# counter were): fewer, longer runs of memory per core for the hardware prefetcher. The
# chunks meet in the middle, where the guided cut (parallel_queue.s) puts its small ones.
# (Measured on a 2-core host, SmolLM2 decode steps at 2 cores, the two forms A/B interleaved:
# 2-7% faster.)
#
# Memory ordering (x86 TSO, Intel SDM vol 3, 9.2): the caller writes the job's fields, then
# the claim word with one aligned store; stores are seen in order, so a core that claims a
# chunk of the new word sees the new fields. Claims are `lock xadd` on that word (chunk count
# in bits 48-63, chunks claimed from the back in bits 24-47 and from the front in bits 0-23;
# a claim adds 1 to its end's field and reads all three at once: it holds a chunk while
# front + back claims before it < count, so every chunk goes to exactly one claim, and a late
# claim on a finished job just finds it empty). A job's fields are rewritten only after its
# last chunk is done. A core reports the chunks it did with one `lock add` to the done count
# once its claim finds none left (not one locked write per chunk: both lines are shared by
# every core), after their rows are written, so the caller sees every row once the count is
# complete; a core's uncounted chunks hold the job open, so they all belong to it. The spin loops use `pause` (the
# hosted unicorn runner switches cores at `pause` and at `lock` instructions).
#
# Not reentrant: only one core posts jobs, and a body must not post one itself.
#
# This file: the board itself (posting a job, claiming and running its chunks, the workers'
# loop) and the single-kernel jobs (k_par_rows, k_par_for, the k_matvec / k_attention
# wrappers). The other kinds of job post through par_post with the fields below:
# parallel_queue.s (several matvecs as one job), parallel_matmat.s (a batch of inputs).
.include "kernels.inc"
.include "parallel.inc"

.equ PAR_FRONT, 1                     # a claim from the front (the caller): par_word + this
.equ PAR_BACK_SHIFT, 24
.equ PAR_BACK, 1 << PAR_BACK_SHIFT    # a claim from the back (the workers)
.equ PAR_COUNT_SHIFT, 48
.equ PAR_TAKEN_MASK, 0xFFFFFF         # each end's claims (< 2^24: chunks + cores)

.section .data
.balign 64, 0
par_word:        .quad 0              # claim word: count << 48 | back claims << 24 | front claims
.balign 64, 0
par_done:        .long 0              # chunks of the current job done (the caller spins here)
.balign 64, 0
k_par_worker_chunks: .quad 0          # chunks done by workers so far (tests, /cpu)
.balign 64, 0                         # (each line written by every chunk stays apart from
.global k_par_workers, k_par_worker_chunks  #  the others and from the ones workers read)
k_par_workers:   .long 0              # workers allowed to take chunks (their index below it)
par_quit:        .long 0              # nonzero: workers return from k_par_worker
.balign 64, 0                         # (idle workers poll the two above: a line apart from
                                      #  the job's fields, which the caller writes per job)
par_job_run:     .quad 0              # the job: par_run_rows or par_run_range(ecx = chunk)
par_job_body:    .quad 0              # rows: body(out + i0*4, W + i0*row_bytes, x, n, rows)
par_job_out:     .quad 0              #   (range: body(ctx = out, first = i0, count))
par_job_w:       .quad 0
par_job_x:       .quad 0
par_job_row_bytes: .quad 0
par_job_n:       .long 0
par_job_d:       .long 0              # items (rows, heads)
par_job_chunk:   .long 0              # items per chunk (the last one may have fewer)
par_split_grain: .long 0              # k_par_rows: the grain PAR_SPLIT rounds to
.balign 8
par_matvec_body: .quad 0              # the single-core matvec body behind k_matvec
par_attention_body: .quad 0           # the single-core attention body behind k_attention
.balign 4
par_for_cuts:    .fill 9 * (PAR_MAX_WORKERS + 1) + 1, 4, 0   # par_for_groups: its chunks' ends

.section .text
.global k_par_rows, k_par_for, k_par_worker, k_par_set_workers, k_par_quit
.global par_matvec, par_attention, par_select_entries
.global par_post, par_rows_alone, par_run_range     # for parallel_queue.s, parallel_matmat.s
.global par_job_run, par_job_body, par_job_out, par_job_d, par_job_chunk
.extern k_matvec, k_attention, k_attention_heads

# k_par_rows(rcx = body, rdx = out, r8 = W, r9 = x, dword [rsp+40] = n, dword [rsp+48] = d,
#            qword [rsp+56] = row_bytes, dword [rsp+64] = group rows)
#   Runs body over rows 0..d-1 of W, split across the workers and this core; returns when all
#   are done. body follows the matvec contract (kernels.inc, peasm/ggml.py):
#   body(rcx = out, rdx = W, r8 = x, r9d = n, dword [rsp+40] = rows), out f32[rows], W rows of
#   row_bytes bytes each; each chunk is body(out + i0*4, W + i0*row_bytes, x, n, rows), i0 a
#   multiple of PAR_GRAIN and of the group rows (the weight type's GROUP_ROWS: 1, or 8 for
#   rows stored interleaved in groups of 8, whose group g is at W + g*8*row_bytes; 0 reads
#   as 1; a power of two). With no workers, or fewer than 2 chunks' worth of rows, it is one
#   call body(out, W, x, n, d). Clobbers what the body may (rax, rcx, rdx, r8-r11, xmm0-xmm5).
k_par_rows:
    cmp dword ptr [rip + k_par_workers], 0
    je .Lserial
    mov r10d, dword ptr [rsp + 48]    # d
    test r10d, r10d
    jz .Lserial
    mov r11d, dword ptr [rsp + 64]
    PAR_GRAIN_OF r11d, eax
    mov [rip + par_split_grain], r11d # (only this core posts: nobody else reads it)
    PAR_SPLIT [rip+par_split_grain]
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
#   k_par_rows_queue's, parallel_queue.s) entry rsp and arguments: shift the arguments, tail call.
par_rows_alone:
    mov rax, rcx
    mov rcx, rdx
    mov rdx, r8
    mov r8, r9
    mov r9d, dword ptr [rsp + 40]
    mov r10d, dword ptr [rsp + 48]
    mov dword ptr [rsp + 40], r10d    # our own argument slots: ours to reuse
    jmp rax

# k_par_for(rcx = body, rdx = ctx, r8d = count)
#   Runs body(rcx = ctx, edx = first, r8d = items) over items 0..count-1 split across the
#   workers and this core; returns when all are done. Chunks of floor(count / chunks wanted)
#   items (at least 1; PAR_CHUNKS_PER_CORE chunks wanted per core taking part): few, costly
#   items (attention's heads: 9 of them on 2 cores are 9 chunks, not 5 of 2 heads where one
#   core does 6) balance to the item. Alone (no workers, or 1 chunk): one call
#   body(ctx, 0, count). body follows the MS x64 ABI and may clobber what a kernel may.
k_par_for:
    cmp dword ptr [rip + k_par_workers], 0
    je .Lalone
    mov r10d, r8d
    test r10d, r10d
    jz .Lalone
    push rdx
    mov eax, [rip + k_par_workers]
    inc eax
    imul r11d, eax, PAR_CHUNKS_PER_CORE
    mov eax, r10d
    xor edx, edx
    div r11d                          # items per chunk: floor(count / chunks wanted)
    cmp eax, 1
    adc eax, 0                        #  at least 1
    mov r11d, eax
    lea eax, [r10 + r11 - 1]
    xor edx, edx
    div r11d                          # chunks = ceil(count / per chunk)
    xchg eax, r11d
    pop rdx
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

# par_post: the tail of k_par_rows / k_par_for / k_par_rows_flush / k_par_matmat (jumped
#   to with their entry rsp; eax = chunks >= 2, the job's fields written): publishes the
#   job, takes chunks like any worker, waits for the rest, returns to their caller.
par_post:
    push rbx
    push rsi
    sub rsp, 40
    mov dword ptr [rip + par_done], 0
    mov ebx, eax                      # chunks
    shl rax, PAR_COUNT_SHIFT
    mov [rip + par_word], rax         # post: the fields above are visible before this (TSO)
    xor esi, esi                      # chunks this core did
.Lhelp:
    mov ecx, PAR_FRONT
    call par_take
    add esi, eax
    test eax, eax
    jnz .Lhelp
    lock add [rip + par_done], esi    # after their rows are written
    jmp .Lcheck
.Lwait:
    pause
.Lcheck:
    cmp [rip + par_done], ebx
    jb .Lwait
    add rsp, 40
    pop rsi
    pop rbx
    ret

# PAR_AVAILABLE word, count, back: word (a 64-bit register holding a claim word's value)
#   -> flags of front + back claims against the count: jb when a chunk is left. Changes
#   the three registers (64-bit).
.macro PAR_AVAILABLE word, count, back
    mov \count, \word
    shr \count, PAR_COUNT_SHIFT
    mov \back, \word
    shr \back, PAR_BACK_SHIFT
    and \back, PAR_TAKEN_MASK
    and \word, PAR_TAKEN_MASK
    add \word, \back
    cmp \word, \count
.endm

# par_take(ecx = PAR_FRONT: the caller's end, or PAR_BACK: a worker's) -> eax = 1 if a
#   chunk of the posted job was taken and done (from the front: chunk F, the front claims
#   before this one; from the back: chunk count-1-B), 0 if none was left (the caller adds
#   its chunks to par_done then). Clobbers what a body may.
par_take:
    sub rsp, 40
    mov eax, ecx
    lock xadd [rip + par_word], rax
    mov rdx, rax
    shr rdx, PAR_COUNT_SHIFT          # edx = count
    mov r8d, eax
    and r8d, PAR_TAKEN_MASK           # r8d = front claims before this one
    shr rax, PAR_BACK_SHIFT
    and eax, PAR_TAKEN_MASK           # eax = back claims before this one
    lea r9d, [r8 + rax]
    cmp r9d, edx
    jae .Lnone                        # (a claim past the end changes nothing that matters)
    not eax
    add eax, edx                      # from the back: count - 1 - B
    cmp ecx, PAR_FRONT
    cmove eax, r8d                    # from the front: F
    mov ecx, eax
    call qword ptr [rip + par_job_run]
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
    PAR_AVAILABLE rax, rdx, rcx
    jae .Lidle                        # nothing posted, or all of it taken
    xor esi, esi                      # chunks done of this job
.Ltake:
    mov ecx, PAR_BACK
    call par_take
    add esi, eax
    test eax, eax
    jnz .Ltake
    test esi, esi
    jz .Lpoll                         # (the last chunk went to another core)
    lock add [rip + par_done], esi    # after their rows are written
    lock add [rip + k_par_worker_chunks], rsi
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
    mov dword ptr [rsp + 56], 1       # f32 rows: groups of 1 (the callee's [rsp+64])
    mov r9, r8                        # x
    mov r8, rdx                       # W
    mov rdx, rcx                      # out
    mov rcx, [rip + par_matvec_body]
    call k_par_rows
    add rsp, 72
    ret

# par_attention(rcx = params): k_attention's contract (kernels.inc), the heads split across
#   the cores by par_for_groups over attention_heads_<path>, in groups of n_heads /
#   n_kv_heads (the query heads of one KV head: the GGUF path's runs do a group's heads
#   together, reading each key and value once for them all; 9 calls of one head took ~30%
#   longer than one call of 9). Each head's scores, softmax and weighted sum are its own,
#   done by the same instructions however the heads are grouped in a call: the same
#   results as one core.
par_attention:
    mov rdx, rcx
    mov r8d, dword ptr [rcx + ATT_N_HEADS]
    mov eax, r8d
    xor edx, edx
    div dword ptr [rcx + ATT_N_KV_HEADS]
    mov r9d, eax                      # heads a KV head serves
    mov rdx, rcx
    mov rcx, [rip + k_attention_heads]
    jmp par_for_groups

# par_for_groups(rcx = body, rdx = ctx, r8d = count, r9d = group): k_par_for's contract
#   (k_par_for: body(ctx, first, items) over items 0..count-1 across the workers and this
#   core), for items in groups of `group` consecutive ones that the body does faster
#   together (a group that does not divide count, or 0, reads as 1): chunks end where a
#   unit of whole groups ends (group x max(1, floor(groups / (PAR_CHUNKS_PER_CORE x cores)))
#   items) and where a core's even share ends (round(c x count / cores), c = 1 ..
#   cores-1), so a group is split only at a share's end (SmolLM2's 9 heads in 3 groups on
#   2 cores: 0-2, 3-4, 5, 6-8; the caller from the front takes 0-2 and 3-4, a worker 6-8
#   and 5). At most 9 x cores chunks (par_for_cuts). Alone (no workers, or one chunk):
#   body(ctx, 0, count). Clobbers what the body may.
par_for_groups:
    cmp dword ptr [rip + k_par_workers], 0
    je .Lg_alone
    test r8d, r8d
    jz .Lg_alone
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    mov [rip + par_job_body], rcx
    mov [rip + par_job_out], rdx
    mov r10d, r8d                     # r10d = count
    mov eax, r10d
    xor edx, edx
    test r9d, r9d
    jz .Lg_ones
    div r9d                           # eax = groups
    test edx, edx
    jz .Lg_sized
.Lg_ones:
    mov r9d, 1
    mov eax, r10d
.Lg_sized:
    mov r11d, [rip + k_par_workers]
    inc r11d                          # r11d = cores
    imul ecx, r11d, PAR_CHUNKS_PER_CORE
    xor edx, edx
    div ecx
    cmp eax, 1
    adc eax, 0                        # groups a unit: at least 1
    imul eax, r9d
    mov ebx, eax                      # ebx = items a unit
    lea rdi, [rip + par_for_cuts]     # rdi = the chunks' ends (entry 0: 0)
    mov dword ptr [rdi], 0
    xor esi, esi                      # esi = chunks
    xor r12d, r12d                    # r12d = the last end
    mov r13d, ebx                     # r13d = the next unit's end
    mov r9d, 1                        # r9d = c, the next share's end's core
.Lg_next:
    mov r8d, r10d                     # r8d = the next share's end, or count past the last
    cmp r9d, r11d
    jae .Lg_share
    mov eax, r9d                      # round(c x count / cores) = (2 c count + cores) / (2 cores)
    imul rax, r10
    add rax, rax
    add rax, r11
    lea rcx, [r11 + r11]
    xor edx, edx
    div rcx
    mov r8d, eax
.Lg_share:
    mov eax, r13d                     # the nearer of the two, at most count
    cmp eax, r8d
    cmova eax, r8d
    cmp eax, r10d
    cmova eax, r10d
    cmp eax, r8d                      # past the share's end (or at it): the next share
    jb .Lg_unit
    inc r9d
.Lg_unit:
    cmp eax, r13d
    jb .Lg_store
    add r13d, ebx
.Lg_store:
    cmp eax, r12d
    jbe .Lg_end                       # (a share's end that rounds onto the last end)
    inc esi
    mov [rdi + rsi * 4], eax
    mov r12d, eax
.Lg_end:
    cmp r12d, r10d
    jb .Lg_next
    mov eax, esi
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    cmp eax, 2
    jb .Lg_one
    lea rcx, [rip + par_run_cuts]
    mov [rip + par_job_run], rcx
    jmp par_post
.Lg_one:
    mov rcx, [rip + par_job_body]
    mov rdx, [rip + par_job_out]
.Lg_alone:
    mov rax, rcx
    mov rcx, rdx
    xor edx, edx
    jmp rax

# par_run_cuts(ecx = chunk j): body(ctx, end[j], end[j+1] - end[j]) (par_for_cuts)
par_run_cuts:
    sub rsp, 40
    lea rax, [rip + par_for_cuts]
    mov edx, [rax + rcx * 4]
    mov r8d, [rax + rcx * 4 + 4]
    sub r8d, edx
    mov rcx, [rip + par_job_out]
    call qword ptr [rip + par_job_body]
    add rsp, 40
    ret
