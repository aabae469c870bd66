# The sampler: logits -> next token, llama2.c-compatible for the same seed, with the extra
# knobs of the original llm-baremetal. sampler.inc holds the contract of every routine and
# the order in which the knobs apply; tests/reference/sampler.py is the executable spec.
#
# Memory: the caller's workspace (sampler_workspace_bytes), laid out for `cap` = the vocab
# size given to sampler_init:
#   cand    cap x 8 bytes   top-p candidates, (f32 p bits, u32 id) pairs
#   aux     cap x 8 bytes   the radix sort's second buffer
#   hist    4096 bytes      4 x 256 dword counters (radix sort; top-k uses the first 256)
#   bitmap  cap/64 qwords   one bit per id: "already penalised" / "banned"
# The probabilities live in the caller's logits buffer (overwritten in place).
#
# Speed: everything is O(vocab) per token except the top-p sort, which only sees the
# candidates above llama2.c's cutoff (as llama2.c's qsort does). The sort is an LSD radix
# sort on the probability bits: linear, and stable, so equal probabilities keep id order
# exactly as the reference's stable sort does (glibc's qsort promises no order for ties).
# The filters sampler_sample applies to the probabilities (clamp, top-k, min-p, renormalise,
# the top-p sort) are smp_filters.s.
.include "sampler.inc"

.section .rdata
.balign 16, 0                   # zero fill: keystone and gas pad .rdata differently
smp_xorshift_mult: .quad 0x2545F4914F6CDD1D
smp_seed_zero:  .quad SMP_SEED_ZERO_STATE
smp_one:        .long 0x3F800000      # 1.0f
smp_inv_2p24:   .long 0x33800000      # 2^-24 (exact: (u32 >> 8) * 2^-24 = (u32 >> 8) / 16777216)
smp_neg_inf:    .long 0xFF800000      # -inf
smp_msg_ok:      .asciz "sampler: ok"
smp_msg_vocab:   .asciz "sampler: the vocabulary size must be between 1 and 16777216"
smp_msg_null:    .asciz "sampler: no sampler or no workspace memory was given"
smp_msg_unknown: .asciz "sampler: unknown status code"

.section .text
.global sampler_workspace_bytes, sampler_init, sampler_seed, sampler_sample
.global sampler_rng_u32, sampler_rng_f32, sampler_strerror
.extern k_softmax, k_argmax
.extern smp_scale_clamp, smp_topk, smp_minp, smp_renormalise, smp_sort, smp_pos_max4

# One xorshift64* step on the qword state at [\state]: eax = the u32 (rax zero-extended).
# Clobbers rdx.
.macro SMP_XORSHIFT state
    mov rax, qword ptr [\state]
    mov rdx, rax
    shr rdx, 12
    xor rax, rdx
    mov rdx, rax
    shl rdx, 25
    xor rax, rdx
    mov rdx, rax
    shr rdx, 27
    xor rax, rdx
    mov qword ptr [\state], rax
    imul rax, qword ptr [rip + smp_xorshift_mult]
    shr rax, 32
.endm

# sampler_workspace_bytes(ecx = vocab_size) -> rax = bytes (0: vocab_size out of range)
sampler_workspace_bytes:
    mov eax, ecx
    test eax, eax
    jz .Lbad
    cmp eax, SMP_MAX_VOCAB
    ja .Lbad
    lea rdx, [rax + 63]
    shr rdx, 6                        # bitmap qwords
    shl rax, 4                        # cand + aux
    lea rax, [rax + rdx * 8 + 4096]   # + hist + bitmap
    ret
.Lbad:
    xor eax, eax
    ret

# sampler_seed(rcx = Sampler*, rdx = seed): state = seed, 0 replaced (see sampler.inc)
sampler_seed:
    test rcx, rcx
    jz .Ldone
    test rdx, rdx
    jnz .Lstore
    mov rdx, qword ptr [rip + smp_seed_zero]
.Lstore:
    mov qword ptr [rcx + SMP_RNG_STATE], rdx
.Ldone:
    ret

# sampler_init(rcx = Sampler*, edx = vocab_size, r8 = workspace, r9 = seed) -> eax = SMP_*
# Every field is written even on failure (vocab_size 0 then), so a failed init leaves a
# sampler that sampler_sample refuses to touch memory with.
sampler_init:
    mov eax, SMP_E_NULL
    test rcx, rcx
    jz .Lout
    mov dword ptr [rcx + SMP_VOCAB_SIZE], 0
    mov dword ptr [rcx + SMP_CAPACITY], 0
    mov dword ptr [rcx + SMP_TEMPERATURE], 0x3F800000      # 1.0f
    mov dword ptr [rcx + SMP_TOPP], 0x3F666666             # 0.9f
    mov dword ptr [rcx + SMP_TOPK], 0
    mov dword ptr [rcx + SMP_MINP], 0
    mov dword ptr [rcx + SMP_REPEAT_PENALTY], 0x3F800000   # 1.0f
    mov dword ptr [rcx + SMP_REPEAT_WINDOW], SMP_DEFAULT_REPEAT_WINDOW
    mov dword ptr [rcx + SMP_NO_REPEAT_NGRAM], 0
    mov qword ptr [rcx + SMP_WORKSPACE], r8
    test r9, r9
    jnz .Lseeded
    mov r9, qword ptr [rip + smp_seed_zero]
.Lseeded:
    mov qword ptr [rcx + SMP_RNG_STATE], r9
    test r8, r8
    jz .Lout                          # eax = SMP_E_NULL
    mov eax, SMP_E_VOCAB
    test edx, edx
    jz .Lout
    cmp edx, SMP_MAX_VOCAB
    ja .Lout
    mov dword ptr [rcx + SMP_VOCAB_SIZE], edx
    mov dword ptr [rcx + SMP_CAPACITY], edx
    xor eax, eax
.Lout:
    ret

# sampler_rng_u32(rcx = Sampler*) -> eax: llama2.c random_u32
sampler_rng_u32:
    SMP_XORSHIFT rcx + SMP_RNG_STATE
    ret

# sampler_rng_f32(rcx = Sampler*) -> xmm0: llama2.c random_f32, (u32 >> 8) / 16777216
sampler_rng_f32:
    SMP_XORSHIFT rcx + SMP_RNG_STATE
    shr eax, 8
    cvtsi2ss xmm0, eax                # < 2^24: exact
    mulss xmm0, dword ptr [rip + smp_inv_2p24]
    ret

# sampler_strerror(ecx = status) -> rax = NUL-terminated UTF-8 message
sampler_strerror:
    lea rax, [rip + smp_msg_ok]
    cmp ecx, SMP_OK
    je .Lmsg
    lea rax, [rip + smp_msg_vocab]
    cmp ecx, SMP_E_VOCAB
    je .Lmsg
    lea rax, [rip + smp_msg_null]
    cmp ecx, SMP_E_NULL
    je .Lmsg
    lea rax, [rip + smp_msg_unknown]
.Lmsg:
    ret

# ------------------------------------------------------------------------------------------
# sampler_sample(rcx = Sampler*, rdx = logits, r8 = history, r9d = history length) -> eax
#
# Registers throughout: rbx = Sampler, rsi = logits (later the probabilities), rdi = history,
# r12 = history length, r13 = n (vocab_size), r14 = workspace (= cand), r15d = "top-k or
# min-p zeroed something". Locals above the shadow space:
.equ SS_COIN, 32                      # f32: the coin
.equ SS_AUX, 40                       # qword: aux buffer
.equ SS_HIST, 48                      # qword: hist counters
.equ SS_BITMAP, 56                    # qword: id bitmap
.equ SS_BITMAP_QWORDS, 64             # qword: its size in qwords (for cap ids)
.equ SS_FRAME, 72                     # 8 pushes + 72: rsp 16-aligned for the calls
.equ SS_BITMAP_FROM_HELPER, SS_BITMAP + 8               # the two above as seen from a
.equ SS_BITMAP_QWORDS_FROM_HELPER, SS_BITMAP_QWORDS + 8 # helper it calls (+8: the return address)

sampler_sample:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, SS_FRAME
    mov rbx, rcx
    mov rsi, rdx
    mov rdi, r8
    mov r12d, r9d                     # zero-extends: r12 is the length as a qword too
    test rdi, rdi
    jnz .Lhave_history
    xor r12d, r12d                    # null history: treated as empty
.Lhave_history:
    xor eax, eax                      # token 0 for a sampler that is not usable
    test rbx, rbx
    jz .Lreturn
    test rsi, rsi
    jz .Lreturn
    mov r13d, dword ptr [rbx + SMP_VOCAB_SIZE]
    test r13d, r13d
    jz .Lreturn
    mov ecx, dword ptr [rbx + SMP_CAPACITY]
    cmp r13d, ecx
    ja .Lreturn                       # vocab_size bigger than the workspace was sized for
    mov r14, qword ptr [rbx + SMP_WORKSPACE]
    test r14, r14
    jz .Lreturn
    lea rax, [r14 + rcx * 8]
    mov qword ptr [rsp + SS_AUX], rax
    lea rax, [rax + rcx * 8]
    mov qword ptr [rsp + SS_HIST], rax
    add rax, 4096
    mov qword ptr [rsp + SS_BITMAP], rax
    add rcx, 63
    shr rcx, 6
    mov qword ptr [rsp + SS_BITMAP_QWORDS], rcx

    # -- 1. repetition penalty over the distinct in-range ids of the recent history -------
    movss xmm0, dword ptr [rbx + SMP_REPEAT_PENALTY]
    xorps xmm1, xmm1
    comiss xmm0, xmm1
    jbe .Lno_penalty                  # <= 0 or NaN: off
    comiss xmm0, dword ptr [rip + smp_pos_max4]
    ja .Lno_penalty                   # +inf: off
    ucomiss xmm0, dword ptr [rip + smp_one]
    je .Lno_penalty                   # exactly 1: the neutral value
    test r12, r12
    jz .Lno_penalty
    mov eax, dword ptr [rbx + SMP_REPEAT_WINDOW]
    xor r8d, r8d                      # first history index in the window
    test eax, eax
    jz .Lwindow_set                   # 0: all of history
    cmp rax, r12
    jae .Lwindow_set
    mov r8, r12
    sub r8, rax
.Lwindow_set:
    call smp_clear_bitmap
    mov r9, qword ptr [rsp + SS_BITMAP]
    xorps xmm2, xmm2
.Lpenalty_next:
    cmp r8, r12
    jae .Lno_penalty
    mov eax, dword ptr [rdi + r8 * 4]
    inc r8
    cmp eax, r13d
    jae .Lpenalty_next                # outside [0, n) (negative ids too): ignored
    bts qword ptr [r9], rax
    jc .Lpenalty_next                 # this id was penalised already
    movss xmm1, dword ptr [rsi + rax * 4]
    comiss xmm1, xmm2
    jbe .Lpenalty_mul
    divss xmm1, xmm0                  # positive logit: divided
    jmp .Lpenalty_store
.Lpenalty_mul:
    mulss xmm1, xmm0                  # zero or negative: multiplied
.Lpenalty_store:
    movss dword ptr [rsi + rax * 4], xmm1
    jmp .Lpenalty_next
.Lno_penalty:

    # -- 2. no-repeat n-gram: ban the ids that would complete an n-gram seen before -------
    mov ecx, dword ptr [rbx + SMP_NO_REPEAT_NGRAM]
    test ecx, ecx
    jz .Lno_ngram
    lea rbp, [rcx - 1]                # m = n - 1: the prefix length
    cmp rbp, r12
    ja .Lno_ngram                     # fewer than m tokens of history
    call smp_clear_bitmap
    mov r9, qword ptr [rsp + SS_BITMAP]
    xor r15d, r15d                    # distinct in-range ids banned
    test rbp, rbp
    jnz .Lngram_general
    xor r8d, r8d                      # n = 1: every id of history
.Lunigram_next:
    cmp r8, r12
    jae .Lngram_ban
    mov eax, dword ptr [rdi + r8 * 4]
    inc r8
    cmp eax, r13d
    jae .Lunigram_next
    bts qword ptr [r9], rax
    jc .Lunigram_next                 # seen before: counted already
    inc r15
    jmp .Lunigram_next
.Lngram_general:
    mov r10, r12
    sub r10, rbp
    lea r10, [rdi + r10 * 4]          # the prefix: the last m tokens
    mov r11, r12
    sub r11, rbp                      # windows start at i = 0 .. len - n, i.e. i < len - m
    xor r8d, r8d                      # i
.Lngram_window:
    cmp r8, r11
    jae .Lngram_ban
    lea rdx, [rdi + r8 * 4]           # the window h[i .. i+m], compared with the prefix
    xor ecx, ecx
.Lngram_cmp:
    mov eax, dword ptr [rdx + rcx * 4]
    cmp eax, dword ptr [r10 + rcx * 4]
    jne .Lngram_miss
    inc rcx
    cmp rcx, rbp
    jb .Lngram_cmp
    mov eax, dword ptr [rdx + rbp * 4]   # the token that followed this occurrence
    cmp eax, r13d
    jae .Lngram_miss
    bts qword ptr [r9], rax
    jc .Lngram_miss
    inc r15
.Lngram_miss:
    inc r8
    jmp .Lngram_window
.Lngram_ban:
    test r15, r15
    jz .Lno_ngram
    cmp r15, r13
    jae .Lno_ngram                    # every id banned: ban none
    mov r9, qword ptr [rsp + SS_BITMAP]
    mov r10, qword ptr [rsp + SS_BITMAP_QWORDS]
    mov eax, dword ptr [rip + smp_neg_inf]
    xor r8d, r8d                      # qword index
.Lban_qword:
    cmp r8, r10
    jae .Lno_ngram
    mov rdx, qword ptr [r9 + r8 * 8]
.Lban_bit:
    test rdx, rdx
    jz .Lban_qword_done
    bsf rcx, rdx
    lea r11, [rdx - 1]
    and rdx, r11                      # clear the lowest set bit
    mov r11, r8
    shl r11, 6
    add rcx, r11                      # the id (< n: only in-range ids were set)
    mov dword ptr [rsi + rcx * 4], eax
    jmp .Lban_bit
.Lban_qword_done:
    inc r8
    jmp .Lban_qword
.Lno_ngram:

    # -- 3. temperature: divide (as llama2.c), clamp; greedy when temperature <= 0 --------
    movss xmm0, dword ptr [rbx + SMP_TEMPERATURE]
    xorps xmm1, xmm1
    comiss xmm0, xmm1
    ja .Lstochastic
    movss xmm0, dword ptr [rip + smp_one]  # greedy: x / 1 = x, only the clamp acts
    mov rcx, rsi
    mov edx, r13d
    call smp_scale_clamp
    mov rcx, rsi
    mov edx, r13d
    call qword ptr [rip + k_argmax]   # the first maximum; the clamp removed every NaN
    jmp .Lreturn
.Lstochastic:
    mov rcx, rsi
    mov edx, r13d
    call smp_scale_clamp

    # -- 4. softmax, through the kernels' table ------------------------------------------
    mov rcx, rsi
    mov edx, r13d
    call qword ptr [rip + k_softmax]

    # -- 5. top-k ---------------------------------------------------------------------------
    xor r15d, r15d
    mov r8d, dword ptr [rbx + SMP_TOPK]
    test r8d, r8d
    jz .Lno_topk
    cmp r8d, r13d
    jae .Lno_topk
    mov rcx, rsi
    mov edx, r13d
    mov r9, qword ptr [rsp + SS_HIST]
    call smp_topk
    or r15d, eax
.Lno_topk:

    # -- 6. min-p -----------------------------------------------------------------------------
    movss xmm0, dword ptr [rbx + SMP_MINP]
    xorps xmm1, xmm1
    comiss xmm0, xmm1
    jbe .Lno_minp                     # <= 0 or NaN: off
    minss xmm0, dword ptr [rip + smp_one]
    mov rcx, rsi
    mov edx, r13d
    call smp_minp
    or r15d, eax
.Lno_minp:

    # -- 7. renormalise when a filter removed probability mass --------------------------------
    test r15d, r15d
    jz .Lnormalised
    mov rcx, rsi
    mov edx, r13d
    call smp_renormalise
.Lnormalised:

    # -- 8. the coin ----------------------------------------------------------------------------
    SMP_XORSHIFT rbx + SMP_RNG_STATE
    shr eax, 8
    cvtsi2ss xmm5, eax
    mulss xmm5, dword ptr [rip + smp_inv_2p24]
    movss dword ptr [rsp + SS_COIN], xmm5

    # -- 9. top-p, or multinomial -----------------------------------------------------------
    movss xmm0, dword ptr [rbx + SMP_TOPP]
    xorps xmm1, xmm1
    comiss xmm0, xmm1
    jbe .Lmultinomial                 # <= 0 or NaN
    comiss xmm0, dword ptr [rip + smp_one]
    jae .Lmultinomial                 # >= 1

    # cutoff = (1 - topp) / (n - 1), in float32 as llama2.c (n = 1: +inf, no candidate)
    movss xmm2, dword ptr [rip + smp_one]
    subss xmm2, xmm0
    lea eax, [r13 - 1]
    cvtsi2ss xmm3, eax
    divss xmm2, xmm3
    xor ecx, ecx                      # id
    xor edx, edx                      # candidates
.Lgather:
    movss xmm1, dword ptr [rsi + rcx * 4]
    comiss xmm1, xmm2
    jb .Lgather_skip                  # p < cutoff
    movd eax, xmm1
    mov dword ptr [r14 + rdx * 8], eax
    mov dword ptr [r14 + rdx * 8 + 4], ecx
    inc rdx
.Lgather_skip:
    inc rcx
    cmp rcx, r13
    jb .Lgather
    test rdx, rdx
    jnz .Lhave_candidates
    mov rcx, rsi                      # no candidate: the most probable id
    mov edx, r13d
    call qword ptr [rip + k_argmax]
    jmp .Lreturn
.Lhave_candidates:
    mov rbp, rdx                      # candidates
    mov rcx, r14
    mov r8, qword ptr [rsp + SS_AUX]
    mov r9, qword ptr [rsp + SS_HIST]
    call smp_sort                     # rax = the sorted array (cand or aux)
    movss xmm0, dword ptr [rbx + SMP_TOPP]
    xorps xmm1, xmm1                  # cumulative probability
    xor ecx, ecx
.Lcumulate:
    addss xmm1, dword ptr [rax + rcx * 8]
    comiss xmm1, xmm0
    ja .Lcut                          # first index where the sum exceeds topp: the last kept
    inc rcx
    cmp rcx, rbp
    jb .Lcumulate
    dec rcx                           # never exceeded: all kept
.Lcut:
    mulss xmm1, dword ptr [rsp + SS_COIN]  # r = coin * cumulative (xmm1 is the cumulative)
    xorps xmm2, xmm2
    xor edx, edx
.Lpick:
    addss xmm2, dword ptr [rax + rdx * 8]
    comiss xmm1, xmm2
    jb .Lpicked                       # r < cdf
    inc rdx
    cmp rdx, rcx
    jbe .Lpick
    mov rdx, rcx                      # rounding left r above the last cdf: the last kept
.Lpicked:
    mov eax, dword ptr [rax + rdx * 8 + 4]
    jmp .Lreturn

.Lmultinomial:
    movss xmm0, dword ptr [rsp + SS_COIN]
    xorps xmm1, xmm1
    xor eax, eax
.Lmult_next:
    addss xmm1, dword ptr [rsi + rax * 4]
    comiss xmm0, xmm1
    jb .Lreturn                       # coin < cdf: this id
    inc eax
    cmp eax, r13d
    jb .Lmult_next
    lea eax, [r13 - 1]                # rounding: the last id

.Lreturn:
    add rsp, SS_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# ------------------------------------------------------------------------------------------
# Private helper (not exported; states what it takes and clobbers).

# smp_clear_bitmap: zeroes sampler_sample's bitmap. Called from sampler_sample's frame
# (reads its locals one return address above): clobbers rax, rcx, rdx.
smp_clear_bitmap:
    mov rdx, qword ptr [rsp + SS_BITMAP_FROM_HELPER]
    mov rcx, qword ptr [rsp + SS_BITMAP_QWORDS_FROM_HELPER]
    xor eax, eax
.Lclear:
    mov qword ptr [rdx], rax
    add rdx, 8
    dec rcx
    jnz .Lclear                       # at least one qword: cap >= 1
    ret
