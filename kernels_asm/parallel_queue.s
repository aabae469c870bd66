# Queued row jobs on the job board (kernels_asm/parallel.s): the products that share an
# input (wq, wk, wv of one activation; w_gate, w_up of another) queued one by one by
# k_par_rows_queue and posted together by k_par_rows_flush, so a decode step posts fewer,
# larger jobs. Each chunk is one matvec body call on whole 4-row blocks (and whole groups of
# rows, for a weight stored in groups: its grain) of one of them: the same instructions on the same data as on one core, so the results are bit for bit its.
# k_par_rows_flush_glu posts the FFN's gate and up products with their elementwise tail
# (SwiGLU) done per chunk, so no core does it alone after the job.
.include "kernels.inc"
.include "parallel.inc"

.equ PAR_MAX_PARTS, 4                 # matvecs one queued job may hold
# The chunks of a queued job shrink as they go ("guided" self-scheduling), cut from both ends
# of the job's rows in turn (the board's two ends, parallel.s: the caller takes the front
# chunks, the workers the back ones): each takes 1/(PAR_GUIDED_SHARE * cores) of the weight
# bytes not yet cut, so the first chunks at both ends are large (few claims, long runs of
# memory) and the last ones, where the ends meet, small (the cores finish close together),
# but none under 2^PAR_MIN_CHUNK_SHIFT bytes (a claim and a body call cost ~0.2 us; 8 KiB of
# Q4 rows take ~0.4 us) nor under 2^-PAR_TABLE_SHIFT of the job's bytes, except where a
# matvec ends (at most once per end per matvec) or the ends meet.
.equ PAR_GUIDED_SHARE, 2
.equ PAR_MIN_CHUNK_SHIFT, 13
.equ PAR_TABLE_SHIFT, 8               # so at most 2^8 chunks of that size, plus the cut short
.equ PAR_MAX_CHUNKS, 256 + 2 * PAR_MAX_PARTS + 2    # ones: the table's length
# a queued matvec (this file's records, par_parts)
.equ PP_BODY, 0
.equ PP_OUT, 8
.equ PP_W, 16
.equ PP_X, 24
.equ PP_ROW_BYTES, 32
.equ PP_N, 40                         # dword
.equ PP_D, 44                         # dword: rows
.equ PP_GRAIN, 48                     # dword: a chunk's rows start at a multiple of it
.equ PP_SIZE, 64
# a chunk of the posted job (par_chunks): rows i0 .. i0+rows-1 of one queued matvec; the
# front chunks (cut from the job's first row on) at entries 0 .. front-1 in row order, the
# back ones (cut from its last row down) at the table's end, entries PAR_MAX_CHUNKS-back ..
# PAR_MAX_CHUNKS-1 in row order too: chunk j of the job (row order, as the board numbers
# them) is entry j below par_cut_front, else entry j + par_cut_gap (PAR_CUT_ENTRY)
.equ PC_PART, 0                       # its PP_* record
.equ PC_I0, 8                         # dword
.equ PC_ROWS, 12                      # dword
.equ PC_SIZE, 16

.section .data
.balign 8
par_nparts:      .long 0              # matvecs queued (k_par_rows_queue), not yet posted
.balign 64, 0
par_parts:       .fill PAR_MAX_PARTS * PP_SIZE, 1, 0   # their PP_* records
par_chunks:      .fill PAR_MAX_CHUNKS * PC_SIZE, 1, 0  # the posted job's chunks, PC_* each
par_pair:        .fill PP_SIZE, 1, 0  # k_par_rows_flush_glu: both products' rows as one record
.balign 8
par_cut_front:   .long 0              # the posted job's front chunks (par_cut)
par_cut_gap:     .long 0              # PAR_MAX_CHUNKS - its chunks
.balign 8
par_glu_body:    .quad 0              # k_par_rows_flush_glu's glu(a, b, n) body
par_glu_a:       .quad 0
par_glu_b:       .quad 0
par_glu_n:       .long 0

.section .text
.global k_par_rows_queue, k_par_rows_flush, k_par_rows_flush_glu
.extern k_par_workers, par_post, par_rows_alone, par_job_run

# k_par_rows_queue(rcx = body, rdx = out, r8 = W, r9 = x, dword [rsp+40] = n,
#                  dword [rsp+48] = d, qword [rsp+56] = row_bytes, dword [rsp+64] = group rows)
#   k_par_rows's arguments (group rows: the weight type's GROUP_ROWS, a power of two, 0 read
#   as 1; every chunk starts at a multiple of it and of PAR_GRAIN) and result, but deferred:
#   the matvec joins the queued job, which k_par_rows_flush posts (every queued matvec's rows, one job) and waits for. Until that
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
    mov eax, dword ptr [rsp + 64]
    PAR_GRAIN_OF eax, r10d
    mov [r11 + PP_GRAIN], eax
    ret

# PAR_CUT_ROWS: the next chunk's rows -> eax: rbx = bytes not yet cut, rcx = bytes a row
#   (> 0), r11d = rows free at this end of the matrix (> 0), r10 = the grain (a power of
#   two, from PP_GRAIN), r12 = the smallest chunk's bytes, r13 = PAR_GUIDED_SHARE * cores
#   taking part; what is left / r13, at least r12 bytes, in rows rounded up to a multiple of
#   the grain, at most r11d. Changes only rax, rdx.
.macro PAR_CUT_ROWS
    mov rax, rbx
    xor edx, edx
    div r13
    cmp rax, r12
    cmovb rax, r12
    add rax, rcx
    dec rax
    xor edx, edx
    div rcx
    lea rax, [rax + r10 - 1]
    mov rdx, r10
    neg rdx
    and rax, rdx
    cmp rax, r11
    cmova eax, r11d
.endm

# par_cut(r9 = the first PP_* record, r8d = records >= 1, each of d > 0 rows) -> eax =
#   chunks: the job's rows (every record's, in order, as one run) cut into par_chunks from
#   both ends in turn, front then back, each chunk guided (PAR_CUT_ROWS: 1/(PAR_GUIDED_SHARE
#   * cores) of the bytes not yet cut, at least 2^PAR_MIN_CHUNK_SHIFT bytes and
#   2^-PAR_TABLE_SHIFT of the job's) and within one record: a front chunk starts where the
#   last one ended (row 0 of its record first), a back chunk ends where the last back one
#   began (its record's last row first) and starts at a multiple of its record's grain
#   (rounded down, or where the front reached), so every chunk starts at a multiple of its
#   grain and ends at one or at its record's end. Rows of no bytes: one chunk, all free rows
#   of that end. Sets par_cut_front and par_cut_gap. Changes rax, rcx, rdx, r8-r11.
par_cut:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    mov rsi, r9                       # rsi = the front's record, r14d its next row
    imul eax, r8d, PP_SIZE
    lea rdi, [r9 + rax - PP_SIZE]     # rdi = the back's record, r15d its first row cut
    xor ebx, ebx                      # rbx = weight bytes in all, then still to cut
.Lsum:
    mov eax, [r9 + PP_D]
    imul rax, [r9 + PP_ROW_BYTES]
    add rbx, rax
    add r9, PP_SIZE
    dec r8d
    jnz .Lsum
    mov r12, rbx                      # the smallest chunk
    shr r12, PAR_TABLE_SHIFT
    mov eax, 1 << PAR_MIN_CHUNK_SHIFT
    cmp r12, rax
    cmovb r12, rax
    mov r13d, [rip + k_par_workers]
    inc r13d
    imul r13d, r13d, PAR_GUIDED_SHARE
    xor r14d, r14d
    mov r15d, [rdi + PP_D]
    xor ebp, ebp                      # ebp = front chunks
    xor r9d, r9d                      # r9d = back chunks
.Lfront:
    mov r11d, [rsi + PP_D]            # free rows: to the record's end, or to the back's cut
    cmp rsi, rdi
    cmove r11d, r15d
    sub r11d, r14d
    jnz .Lfront_cut
    cmp rsi, rdi
    je .Lcut_done                     # the ends met
    add rsi, PP_SIZE
    xor r14d, r14d
    jmp .Lfront
.Lfront_cut:
    mov rcx, [rsi + PP_ROW_BYTES]
    mov r10d, [rsi + PP_GRAIN]
    mov eax, r11d
    test rcx, rcx
    jz .Lfront_rows                   # (rows of no bytes: all in one chunk)
    PAR_CUT_ROWS
.Lfront_rows:
    imul edx, ebp, PC_SIZE
    lea r8, [rip + par_chunks]
    add r8, rdx
    mov [r8 + PC_PART], rsi
    mov [r8 + PC_I0], r14d
    mov [r8 + PC_ROWS], eax
    inc ebp
    add r14d, eax
    imul rax, rcx
    sub rbx, rax
.Lback:
    xor r11d, r11d                    # free rows: from the record's start, or the front's
    cmp rsi, rdi
    cmove r11d, r14d
    neg r11d
    add r11d, r15d
    jnz .Lback_cut
    cmp rsi, rdi
    je .Lcut_done
    sub rdi, PP_SIZE
    mov r15d, [rdi + PP_D]
    jmp .Lback
.Lback_cut:
    mov rcx, [rdi + PP_ROW_BYTES]
    mov r10d, [rdi + PP_GRAIN]
    mov eax, r11d
    test rcx, rcx
    jz .Lback_rows
    PAR_CUT_ROWS
.Lback_rows:
    mov edx, r15d                     # its first row: r15d - rows, down to the grain,
    sub edx, eax                      #  not below the free rows' first
    neg r10d
    and edx, r10d
    mov eax, r15d
    sub eax, r11d
    cmp edx, eax
    cmovb edx, eax
    mov eax, r15d
    sub eax, edx                      # eax = its rows
    mov r15d, edx
    mov r10d, PAR_MAX_CHUNKS - 1
    sub r10d, r9d
    imul r10d, r10d, PC_SIZE
    lea r8, [rip + par_chunks]
    add r8, r10
    mov [r8 + PC_PART], rdi
    mov [r8 + PC_I0], edx
    mov [r8 + PC_ROWS], eax
    inc r9d
    imul rax, rcx
    sub rbx, rax
    jmp .Lfront
.Lcut_done:
    mov [rip + par_cut_front], ebp
    lea eax, [rbp + r9]
    mov edx, PAR_MAX_CHUNKS
    sub edx, eax
    mov [rip + par_cut_gap], edx
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# PAR_CUT_ENTRY: ecx = chunk j of the posted job (row order) -> r11 = its par_chunks entry.
#   Changes rax, r11.
.macro PAR_CUT_ENTRY
    xor eax, eax
    cmp ecx, [rip + par_cut_front]
    cmovae eax, [rip + par_cut_gap]
    add eax, ecx
    imul eax, eax, PC_SIZE
    lea r11, [rip + par_chunks]
    add r11, rax
.endm

# k_par_rows_flush(): posts the queued matvecs (k_par_rows_queue) as one job and returns
#   when every row of every one is written; nothing queued: returns at once. Chunks: rows of
#   one matvec each, cut by par_cut (guided, from both ends; each starts at a multiple of
#   its matvec's grain: PAR_GRAIN-row blocks, whole groups of a grouped weight; a matvec's
#   last chunk may have fewer rows), at most PAR_MAX_CHUNKS. One chunk in all: one body
#   call here. Clobbers what a body may (rax, rcx, rdx, r8-r11, xmm0-xmm5).
k_par_rows_flush:
    mov r8d, [rip + par_nparts]
    test r8d, r8d
    jz .Lnothing
    mov dword ptr [rip + par_nparts], 0
    lea r9, [rip + par_parts]
    sub rsp, 8                        # (the entry rsp: aligned for the call)
    call par_cut
    add rsp, 8
    cmp eax, 2
    jb .Lone
    lea rcx, [rip + par_run_parts]
    mov [rip + par_job_run], rcx
    jmp par_post
.Lone:                                # one matvec, one chunk: body(out, W, x, n, d) here
    lea r9, [rip + par_parts]
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

# par_run_parts(ecx = chunk): the chunk's matvec (par_chunks' entry) on its rows:
#   body(out + i0*4, W + i0*row_bytes, x, n, rows)
par_run_parts:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    PAR_CUT_ENTRY
    mov ebx, [r11 + PC_I0]
    mov esi, [r11 + PC_ROWS]
    mov rdi, [r11 + PC_PART]
    call par_run_part_rows
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# k_par_rows_flush_glu(rcx = glu body, rdx = a f32[n], r8 = b f32[n], r9d = n)
#   k_par_rows_flush, then a = glu(a, b) over the n elements (rcx: k_swiglu's contract,
#   body(rcx = a, rdx = b, r8d = n), elementwise on whole 8-element vectors: a sub-range
#   that starts at a multiple of 8 (PAR_GRAIN) and ends at a multiple of 8 or at n gives the
#   bits the whole call gives for it, as swiglu_<path> and swiglu_ggml_<path> do). When the queued job is exactly two matvecs of n
#   rows writing a and b (the FFN's gate and up, queued in that order), each chunk does rows
#   i0..i0+rows-1 of both products, then glu on those elements (guided cut as
#   k_par_rows_flush, over both matrices' bytes a row, at multiples of the larger of their
#   grains, both powers of two): nobody does glu alone after the job.
#   Else (no workers: the products already ran; another queue; one chunk) the flush, then
#   one glu(a, b, n) call here. Clobbers what a body may.
k_par_rows_flush_glu:
    mov [rip + par_glu_body], rcx
    mov [rip + par_glu_a], rdx
    mov [rip + par_glu_b], r8
    mov [rip + par_glu_n], r9d
    cmp dword ptr [rip + par_nparts], 2
    jne .Lapart
    lea r11, [rip + par_parts]
    cmp [r11 + PP_OUT], rdx
    jne .Lapart
    cmp [r11 + PP_D], r9d
    jne .Lapart
    add r11, PP_SIZE
    cmp [r11 + PP_OUT], r8
    jne .Lapart
    cmp [r11 + PP_D], r9d
    jne .Lapart
    lea r10, [rip + par_pair]         # both products' rows as one record: n rows of
    mov [r10 + PP_D], r9d             #  both's bytes, at multiples of the larger grain
    mov rcx, [r11 + PP_ROW_BYTES]
    lea rax, [rip + par_parts]
    add rcx, [rax + PP_ROW_BYTES]
    mov [r10 + PP_ROW_BYTES], rcx
    mov ecx, [r11 + PP_GRAIN]
    cmp ecx, [rax + PP_GRAIN]
    cmovb ecx, [rax + PP_GRAIN]
    mov [r10 + PP_GRAIN], ecx
    mov r9, r10
    mov r8d, 1
    sub rsp, 8                        # (the entry rsp: aligned for the call)
    call par_cut
    add rsp, 8
    cmp eax, 2
    jb .Lapart
    mov dword ptr [rip + par_nparts], 0
    lea rcx, [rip + par_run_glu]
    mov [rip + par_job_run], rcx
    jmp par_post
.Lapart:
    sub rsp, 40
    call k_par_rows_flush
    mov rcx, [rip + par_glu_a]
    mov rdx, [rip + par_glu_b]
    mov r8d, [rip + par_glu_n]
    call qword ptr [rip + par_glu_body]
    add rsp, 40
    ret

# par_run_glu(ecx = chunk): rows i0..i0+rows-1 (par_chunks' entry) of both queued matvecs,
#   then glu(a + i0*4, b + i0*4, rows)
par_run_glu:
    push rbx
    push rsi
    push rdi
    sub rsp, 48
    PAR_CUT_ENTRY
    mov ebx, [r11 + PC_I0]
    mov esi, [r11 + PC_ROWS]
    lea rdi, [rip + par_parts]
    call par_run_part_rows
    add rdi, PP_SIZE
    call par_run_part_rows
    mov rcx, [rip + par_glu_a]
    lea rcx, [rcx + rbx * 4]
    mov rdx, [rip + par_glu_b]
    lea rdx, [rdx + rbx * 4]
    mov r8d, esi
    call qword ptr [rip + par_glu_body]
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
    ret

# par_run_part_rows(rdi = PP_* record, ebx = i0, esi = rows): body(out + i0*4,
#   W + i0*row_bytes, x, n, rows). Keeps rbx, rsi, rdi.
par_run_part_rows:
    sub rsp, 40
    mov dword ptr [rsp + 32], esi
    mov rcx, [rdi + PP_OUT]
    lea rcx, [rcx + rbx * 4]
    mov rdx, [rdi + PP_ROW_BYTES]
    imul rdx, rbx
    add rdx, [rdi + PP_W]
    mov r8, [rdi + PP_X]
    mov r9d, [rdi + PP_N]
    call qword ptr [rdi + PP_BODY]
    add rsp, 40
    ret
