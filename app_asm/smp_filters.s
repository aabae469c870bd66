# The sampler's filters on the probabilities (sampler.s's sampler_sample calls them in the
# order sampler.inc states): the temperature divide with its clamp (smp_scale_clamp), top-k
# (smp_topk, a radix select), min-p (smp_minp), the renormalisation (smp_renormalise) and the
# top-p candidates' sort (smp_sort, an LSD radix sort: linear and stable, so equal
# probabilities keep id order as tests/reference/sampler.py's stable sort does). Pure: no
# UEFI, no printing.
#
# These are sampler.s's helpers, global only to be called from there: each states its own
# register convention (not all are the ABI's) and what it clobbers; all are entered with the
# ABI's stack alignment and call nothing.
.include "sampler.inc"

.section .rdata
.balign 16, 0                   # zero fill: keystone and gas pad .rdata differently
smp_neg_max4:   .long 0xFF7FFFFF, 0xFF7FFFFF, 0xFF7FFFFF, 0xFF7FFFFF   # -FLT_MAX
smp_pos_max4:   .long 0x7F7FFFFF, 0x7F7FFFFF, 0x7F7FFFFF, 0x7F7FFFFF   # +FLT_MAX

.section .text
.global smp_scale_clamp, smp_topk, smp_minp, smp_renormalise, smp_sort, smp_pos_max4

# smp_scale_clamp(rcx = x, edx = n >= 1, xmm0 = divisor): x[i] = clamp(x[i] / divisor) into
# [-FLT_MAX, FLT_MAX], NaN -> -FLT_MAX. divps rounds each lane exactly as divss would. A
# divisor of exactly 1 (greedy decoding, temperature 1) skips the divides: x / 1 is x for
# every finite and infinite x (MXCSR's default: no flush to zero, no denormals as zero), and a
# NaN lane is -FLT_MAX after the clamp either way (maxps takes the second operand). (49152
# logits, natively on the development host: 11.8 us with the divides, 3.9 us without.)
# Clobbers rax, rcx, rdx, r8, xmm0-xmm3.
smp_scale_clamp:
    shufps xmm0, xmm0, 0
    movups xmm1, [rip + smp_neg_max4]
    movups xmm2, [rip + smp_pos_max4]
    mov eax, edx
    shr eax, 2
    jz .Ltail
    movd r8d, xmm0
    cmp r8d, 0x3F800000               # 1.0f
    je .Lfour_clamp
.Lfour:
    movups xmm3, [rcx]
    divps xmm3, xmm0
    maxps xmm3, xmm1                  # a NaN lane takes the second operand: -FLT_MAX
    minps xmm3, xmm2
    movups [rcx], xmm3
    add rcx, 16
    dec eax
    jnz .Lfour
    jmp .Ltail
.Lfour_clamp:                         # divisor 1: the clamp alone
    movups xmm3, [rcx]
    maxps xmm3, xmm1
    minps xmm3, xmm2
    movups [rcx], xmm3
    add rcx, 16
    dec eax
    jnz .Lfour_clamp
.Ltail:
    and edx, 3
    jz .Lscaled
.Lone:
    movss xmm3, dword ptr [rcx]
    divss xmm3, xmm0
    maxss xmm3, xmm1
    minss xmm3, xmm2
    movss dword ptr [rcx], xmm3
    add rcx, 4
    dec edx
    jnz .Lone
.Lscaled:
    ret

# smp_topk(rcx = p, edx = n, r8d = k with 0 < k < n, r9 = 256 dword counters) -> eax = 1 if
# a nonzero p was zeroed. Keeps the k largest p (equal ones: lower ids first), zeroes the
# rest. p >= 0, so the float bits order like the values: a most-significant-byte-first radix
# select finds the k-th largest bit pattern T and how many copies of T to keep, in 4 passes.
# Clobbers rax, rcx, rdx, r8-r11.
smp_topk:
    push rbx
    push rsi
    push rdi
    mov rsi, rcx
    mov edi, edx
    xor r10d, r10d                    # prefix of T found so far
    xor r11d, r11d                    # mask of the bits found so far
    mov ecx, 24                       # shift of the byte this pass decides
.Llevel:
    xor eax, eax
    xor edx, edx
.Lzero_hist:
    mov qword ptr [r9 + rdx * 8], rax
    inc edx
    cmp edx, 128
    jb .Lzero_hist
    xor edx, edx
.Lcount:
    mov eax, dword ptr [rsi + rdx * 4]
    mov ebx, eax
    and ebx, r11d
    cmp ebx, r10d
    jne .Lcount_skip                  # not under the prefix: already decided
    shr eax, cl
    movzx eax, al
    inc dword ptr [r9 + rax * 4]
.Lcount_skip:
    inc edx
    cmp edx, edi
    jb .Lcount
    mov edx, 255                      # from the largest byte down: the bucket holding the k-th
.Lbucket:
    mov eax, dword ptr [r9 + rdx * 4]
    cmp eax, r8d
    jae .Lfound
    sub r8d, eax
    dec edx
    jns .Lbucket
    xor edx, edx                      # unreachable (the prefix always holds >= r8d values)
.Lfound:
    shl edx, cl
    or r10d, edx
    mov eax, 255
    shl eax, cl
    or r11d, eax
    sub ecx, 8
    jns .Llevel
    xor eax, eax                      # r10d = T, r8d = copies of T still to keep
    xor edx, edx
.Lfilter:
    mov ebx, dword ptr [rsi + rdx * 4]
    cmp ebx, r10d
    ja .Lkeep
    jb .Ldrop
    test r8d, r8d
    jz .Ldrop
    dec r8d
    jmp .Lkeep
.Ldrop:
    test ebx, ebx
    jz .Lkeep                         # already 0: nothing changes
    mov dword ptr [rsi + rdx * 4], 0
    mov eax, 1
.Lkeep:
    inc edx
    cmp edx, edi
    jb .Lfilter
    pop rdi
    pop rsi
    pop rbx
    ret

# smp_minp(rcx = p, edx = n >= 1, xmm0 = min_p in (0, 1]) -> eax = 1 if a nonzero p was
# zeroed: zeroes every p < min_p * max(p). Clobbers rax, rcx, rdx, r8, xmm0-xmm3.
smp_minp:
    mov r8, rcx
    mov eax, edx
    xorps xmm1, xmm1                  # the max (p >= 0)
.Lmax:
    maxss xmm1, dword ptr [r8]
    add r8, 4
    dec eax
    jnz .Lmax
    mulss xmm0, xmm1                  # threshold, float32 as the reference
    xorps xmm2, xmm2
    xor eax, eax
.Lminp_next:
    movss xmm1, dword ptr [rcx]
    comiss xmm1, xmm0
    jae .Lminp_keep
    comiss xmm1, xmm2
    je .Lminp_keep                    # already 0
    movss dword ptr [rcx], xmm2
    mov eax, 1
.Lminp_keep:
    add rcx, 4
    dec edx
    jnz .Lminp_next
    ret

# smp_renormalise(rcx = p, edx = n >= 1): p /= sum(p), the sum in float32 from index 0 up
# (the reference's sequential sum; > 0 here since the largest p always survives).
# Clobbers rax, rcx, rdx, r8, xmm0-xmm2.
smp_renormalise:
    mov r8, rcx
    mov eax, edx
    xorps xmm0, xmm0
.Lsum:
    addss xmm0, dword ptr [r8]
    add r8, 4
    dec eax
    jnz .Lsum
    shufps xmm0, xmm0, 0
    mov eax, edx
    shr eax, 2
    jz .Lnorm_tail
.Lnorm_four:
    movups xmm1, [rcx]
    divps xmm1, xmm0
    movups [rcx], xmm1
    add rcx, 16
    dec eax
    jnz .Lnorm_four
.Lnorm_tail:
    and edx, 3
    jz .Lnorm_done
.Lnorm_one:
    movss xmm1, dword ptr [rcx]
    divss xmm1, xmm0
    movss dword ptr [rcx], xmm1
    add rcx, 4
    dec edx
    jnz .Lnorm_one
.Lnorm_done:
    ret

# smp_sort(rcx = src, rdx = count >= 1, r8 = aux, r9 = 1024 dword counters) -> rax = the
# array (src or aux) holding the count (p bits, id) pairs sorted by p descending, equal p in
# their incoming (id) order. LSD radix sort on key = NOT p bits (ascending key = descending
# p, for p >= 0), 4 byte-passes; one counting pass fills the 4 histograms, and a pass whose
# byte is the same for every element is skipped. Clobbers rcx, rdx, r8-r11.
smp_sort:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    mov rsi, rcx                      # src
    mov rdi, r8                       # dst
    mov r12, rdx                      # count
    mov r13, r9                       # counters
    xor eax, eax
    xor ecx, ecx
.Lsort_zero:
    mov qword ptr [r13 + rcx * 8], rax
    inc ecx
    cmp ecx, 512
    jb .Lsort_zero
    xor ecx, ecx
.Lsort_count:
    mov eax, dword ptr [rsi + rcx * 8]
    not eax
    movzx edx, al
    inc dword ptr [r13 + rdx * 4]
    movzx edx, ah
    inc dword ptr [r13 + rdx * 4 + 1024]
    shr eax, 16
    movzx edx, al
    inc dword ptr [r13 + rdx * 4 + 2048]
    movzx edx, ah
    inc dword ptr [r13 + rdx * 4 + 3072]
    inc rcx
    cmp rcx, r12
    jb .Lsort_count
    xor ecx, ecx                      # cl = shift of this pass's byte; r13 = its counters
.Lsort_pass:
    mov eax, dword ptr [rsi]          # the first element's digit: all equal -> nothing to do
    not eax
    shr eax, cl
    movzx eax, al
    cmp dword ptr [r13 + rax * 4], r12d
    je .Lsort_next_pass
    xor eax, eax                      # counts -> starting offsets (exclusive prefix sums)
    xor edx, edx
.Lsort_prefix:
    mov r8d, dword ptr [r13 + rdx * 4]
    mov dword ptr [r13 + rdx * 4], eax
    add eax, r8d
    inc edx
    cmp edx, 256
    jb .Lsort_prefix
    xor r9d, r9d
.Lsort_scatter:
    mov r10, qword ptr [rsi + r9 * 8]
    mov eax, r10d
    not eax
    shr eax, cl
    movzx eax, al
    mov r11d, dword ptr [r13 + rax * 4]
    inc dword ptr [r13 + rax * 4]
    mov qword ptr [rdi + r11 * 8], r10
    inc r9
    cmp r9, r12
    jb .Lsort_scatter
    xchg rsi, rdi
.Lsort_next_pass:
    add r13, 1024
    add ecx, 8
    cmp ecx, 32
    jb .Lsort_pass
    mov rax, rsi
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
