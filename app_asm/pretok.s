# Pre-tokenizers of byte-level BPE vocabularies: split decoded text into words, exactly as the
# regular expression each vocabulary was trained with (pure core: no UEFI, no printing).
#
# The expressions, by tokenizer.ggml.pre (llama.cpp's llama-vocab pre-tokenizer lists; the
# `tokenizers` Split/ByteLevel documentation for the splitting behaviour), applied in stages:
# each stage splits every word of the previous stage into matches and the gaps between them
# (the "isolated" behaviour), a match's look-ahead never seeing past its word:
#   PRE_GPT2     'GPT2'  = 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
#   PRE_LLAMA3   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
#                 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
#   PRE_QWEN2    the same with \p{N} (one digit) for \p{N}{1,3}
#   PRE_SMOLLM   \p{N} (each digit alone), then GPT2
#   PRE_DEFAULT  [\p{P}\$\+<=>\^~\|]+, then GPT2, then \p{N}+, then [0-9][0-9][0-9]
# Each regex is a hand-written matcher: m(i, end) -> the end of the match that the regex's
# leftmost-first alternation finds at code point i (every position matches something, so
# matches tile the word), or for the split-by-class stages the end of the match or gap.
.include "tokenizer_layouts.inc"

.section .text
.global pretok_split

# pretok_split(rcx = VOCAB*, edx = n code points) -> rax = word count k, rdx = u32
#   boundaries[k + 1] (code point indices: word w is [b[w], b[w+1]), b[0] = 0, b[k] = n).
#   Reads VOCAB_PRE and the CPS/CPF scratch uni_decode filled; writes BND_A/BND_B. n = 0
#   gives k = 0. Microsoft x64 ABI (rdx is an extra result).
pretok_split:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    mov rbx, rcx
    mov rsi, [rbx + VOCAB_CPS]
    mov rdi, [rbx + VOCAB_CPF]
    mov r12, [rbx + VOCAB_BND_A]      # current boundaries
    mov r13, [rbx + VOCAB_BND_B]      # the next stage's
    xor r14d, r14d                    # word count
    mov dword ptr [r12], 0
    test edx, edx
    jz .Lout
    mov [r12 + 4], edx
    mov r14d, 1
    mov eax, [rbx + VOCAB_PRE]
    cmp eax, PRE_LLAMA3
    je .Lllama3
    cmp eax, PRE_QWEN2
    je .Lqwen2
    cmp eax, PRE_SMOLLM
    je .Lsmollm
    cmp eax, PRE_DEFAULT
    je .Ldefault
    lea r15, [rip + m_gpt2]
    call stage
    jmp .Lout
.Lllama3:
    lea r15, [rip + m_llama3]
    call stage
    jmp .Lout
.Lqwen2:
    lea r15, [rip + m_qwen2]
    call stage
    jmp .Lout
.Lsmollm:
    lea r15, [rip + m_digit1]
    call stage
    lea r15, [rip + m_gpt2]
    call stage
    jmp .Lout
.Ldefault:
    lea r15, [rip + m_punct]
    call stage
    lea r15, [rip + m_gpt2]
    call stage
    lea r15, [rip + m_nrun]
    call stage
    lea r15, [rip + m_digit3]
    call stage
.Lout:
    mov rax, r14
    mov rdx, r12
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# stage(r12 = boundaries in, r13 = out, r14 = word count, r15 = matcher, rsi = CPS, rdi = CPF)
#   -> r12/r13 swapped, r14 = the new word count. Clobbers rax, rcx, rdx, r8-r11, rbx is
#   preserved.
stage:
    push rbx
    push rbp
    xor ebx, ebx                      # word index in
    xor ebp, ebp                      # words out
    mov dword ptr [r13], 0
.Lword:
    cmp rbx, r14
    jae .Lstaged
    mov ecx, [r12 + rbx * 4]          # i
    mov edx, [r12 + rbx * 4 + 4]      # end
    inc rbx
.Lmatch:
    cmp ecx, edx
    jae .Lword
    push rdx
    call r15
    pop rdx
    inc ebp
    mov [r13 + rbp * 4], eax
    mov ecx, eax
    jmp .Lmatch
.Lstaged:
    mov r14, rbp
    xchg r12, r13
    pop rbp
    pop rbx
    ret

# Matchers: (rsi = CPS, rdi = CPF, ecx = i < edx = end) -> eax = match end (> i).
# Clobber rax, rcx, r8-r11 (edx preserved).

# run(eax = i, r8d = flag mask, r9d = 0 to take code points with a flag in the mask, or the
#   mask to take those with none) -> eax = end of the run from i (< edx). Clobbers r10.
run:
.Lrun:
    cmp eax, edx
    jae .Lran
    movzx r10d, byte ptr [rdi + rax]
    and r10d, r8d
    cmp r10d, r9d
    je .Lran
    inc eax
    jmp .Lrun
.Lran:
    ret

# contraction(ecx = i, r11d = 0x20 to ignore ASCII case, else 0) -> eax = i + 2 or i + 3 for
#   's 't 'm 'd / 're 've 'll at i, else 0. Clobbers r8, r9.
contraction:
    xor eax, eax
    cmp dword ptr [rsi + rcx * 4], 0x27
    jne .Lno
    lea r8d, [rcx + 1]
    cmp r8d, edx
    jae .Lno
    mov r8d, [rsi + r8 * 4]
    cmp r8d, 0x80
    jae .Lno
    or r8d, r11d
    cmp r8d, 0x73                     # s
    je .Ltwo
    cmp r8d, 0x74                     # t
    je .Ltwo
    cmp r8d, 0x6D                     # m
    je .Ltwo
    cmp r8d, 0x64                     # d
    je .Ltwo
    lea r9d, [rcx + 2]
    cmp r9d, edx
    jae .Lno
    mov r9d, [rsi + r9 * 4]
    cmp r9d, 0x80
    jae .Lno
    or r9d, r11d
    shl r8d, 8
    or r8d, r9d
    cmp r8d, 0x7265                   # re
    je .Lthree
    cmp r8d, 0x7665                   # ve
    je .Lthree
    cmp r8d, 0x6C6C                   # ll
    jne .Lno
.Lthree:
    lea eax, [rcx + 3]
    ret
.Ltwo:
    lea eax, [rcx + 2]
.Lno:
    ret

# ws_tail(ecx = i, a White_Space code point) -> eax: \s+(?!\S)|\s+ at i. Clobbers r8-r10.
ws_tail:
    mov eax, ecx
    mov r8d, UC_WS
    xor r9d, r9d
    call run                          # eax = end of the White_Space run
    cmp eax, edx
    je .Lall
    lea r8d, [rax - 1]
    cmp r8d, ecx
    jbe .Lall                         # a single space before non-space: \s+
    mov eax, r8d                      # leave the last one to the next word
.Lall:
    ret

# ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+ (the GPT-2 middle) or \s... at i.
m_gpt2:
    xor r11d, r11d
    call contraction
    test eax, eax
    jnz .Ldone
    mov eax, ecx
    cmp dword ptr [rsi + rcx * 4], 0x20
    jne .Lclass
    lea r8d, [rcx + 1]
    cmp r8d, edx
    jae .Lclass
    test byte ptr [rdi + r8], UC_WS
    jnz .Lclass
    mov eax, r8d                      # " X": the class of the code point after the space
.Lclass:
    movzx r8d, byte ptr [rdi + rax]
    test r8d, UC_WS
    jz .Lnot_ws
    cmp eax, ecx
    je ws_tail                        # (tail call) whitespace at i
.Lnot_ws:
    test r8d, UC_L
    jnz .Lletters
    test r8d, UC_N
    jnz .Lnumbers
    mov r8d, UC_L | UC_N | UC_WS      # others: a run of code points with none of L, N, WS
    jmp .Lnone_run
.Lletters:
    mov r8d, UC_L
    xor r9d, r9d
    jmp run
.Lnumbers:
    mov r8d, UC_N
    xor r9d, r9d
    jmp run
.Lnone_run:                           # take code points with none of r8d's flags
    cmp eax, edx
    jae .Ldone
    test byte ptr [rdi + rax], r8b
    jnz .Ldone
    inc eax
    jmp .Lnone_run
.Ldone:
    ret

# m_qwen2 / m_llama3: the llama3 expression, digit runs of at most 1 / 3.
m_qwen2:
    mov eax, 1
    jmp llama3_body
m_llama3:
    mov eax, 3
llama3_body:
    push rbx
    mov ebx, eax                      # the digit-run limit
    mov r11d, 0x20
    call contraction
    test eax, eax
    jnz .Lout
    movzx r8d, byte ptr [rdi + rcx]
    mov r9d, [rsi + rcx * 4]
    # [^\r\n\p{L}\p{N}]?\p{L}+
    test r8d, UC_L
    jnz .Lletters_at_i
    test r8d, UC_N
    jnz .Ldigits
    cmp r9d, 0x0A
    je .Lpunct
    cmp r9d, 0x0D
    je .Lpunct
    lea eax, [rcx + 1]
    cmp eax, edx
    jae .Lpunct
    test byte ptr [rdi + rax], UC_L
    jz .Lpunct
    mov r8d, UC_L
    xor r9d, r9d
    call run
    jmp .Lout
.Lletters_at_i:
    mov eax, ecx
    mov r8d, UC_L
    xor r9d, r9d
    call run
    jmp .Lout
.Ldigits:                             # \p{N}{1,limit}
    mov eax, ecx
.Ldigit:
    inc eax
    cmp eax, edx
    jae .Lout
    mov r10d, eax
    sub r10d, ecx
    cmp r10d, ebx
    jae .Lout
    test byte ptr [rdi + rax], UC_N
    jnz .Ldigit
    jmp .Lout
.Lpunct:                              # ?[^\s\p{L}\p{N}]+[\r\n]*
    mov eax, ecx
    cmp r9d, 0x20
    jne .Lpunct_at
    lea r10d, [rcx + 1]
    cmp r10d, edx
    jae .Lpunct_at
    test byte ptr [rdi + r10], UC_L | UC_N | UC_WS
    jnz .Lpunct_at
    mov eax, r10d
.Lpunct_at:
    test byte ptr [rdi + rax], UC_L | UC_N | UC_WS
    jnz .Lspace
.Lpunct_run:
    inc eax
    cmp eax, edx
    jae .Lout
    test byte ptr [rdi + rax], UC_L | UC_N | UC_WS
    jz .Lpunct_run
.Lnewlines:
    cmp eax, edx
    jae .Lout
    cmp dword ptr [rsi + rax * 4], 0x0A
    je .Lnewline
    cmp dword ptr [rsi + rax * 4], 0x0D
    jne .Lout
.Lnewline:
    inc eax
    jmp .Lnewlines
.Lspace:                              # \s*[\r\n]+ (up to the run's last newline), else the tail
    mov eax, ecx
    mov r8d, UC_WS
    xor r9d, r9d
    call run
    mov r10d, eax
.Llast_newline:
    dec r10d
    cmp r10d, ecx
    jl .Lno_newline
    cmp dword ptr [rsi + r10 * 4], 0x0A
    je .Lafter_newline
    cmp dword ptr [rsi + r10 * 4], 0x0D
    jne .Llast_newline
.Lafter_newline:
    lea eax, [r10 + 1]
    jmp .Lout
.Lno_newline:
    call ws_tail
.Lout:
    pop rbx
    ret

# \p{N} isolated: one number code point, or the run of non-numbers up to the next.
m_digit1:
    lea eax, [rcx + 1]
    test byte ptr [rdi + rcx], UC_N
    jnz .Ldone
    mov r8d, UC_N
    mov r9d, UC_N
    jmp run
.Ldone:
    ret

# \p{N}+ isolated: a run of numbers or of non-numbers.
m_nrun:
    mov eax, ecx
    mov r8d, UC_N
    xor r9d, r9d
    test byte ptr [rdi + rcx], UC_N
    jnz run
    mov r9d, UC_N
    jmp run

# [\p{P}\$\+<=>\^~\|]+ isolated: a run of such code points, or of others.
m_punct:
    mov eax, ecx
    call is_punct
    mov r11d, r8d                     # the class of the first
.Lsame:
    inc eax
    cmp eax, edx
    jae .Ldone
    call is_punct
    cmp r8d, r11d
    je .Lsame
.Ldone:
    ret
# is_punct(eax = index) -> r8d = 1 if CPS[eax] is \p{P} or one of $+<=>^~|, else 0. Clobbers r9.
is_punct:
    mov r8d, 1
    test byte ptr [rdi + rax], UC_P
    jnz .Lyes
    mov r9d, [rsi + rax * 4]
    cmp r9d, 0x24                     # $
    je .Lyes
    cmp r9d, 0x2B                     # +
    je .Lyes
    cmp r9d, 0x3C                     # < = >
    jb .Lno
    cmp r9d, 0x3E
    jbe .Lyes
    cmp r9d, 0x5E                     # ^
    je .Lyes
    cmp r9d, 0x7C                     # |
    je .Lyes
    cmp r9d, 0x7E                     # ~
    je .Lyes
.Lno:
    xor r8d, r8d
.Lyes:
    ret

# [0-9][0-9][0-9] isolated: three ASCII digits, or the gap up to the next three.
m_digit3:
    mov eax, ecx
    call three_digits
    test r8d, r8d
    jz .Lgap
    lea eax, [rcx + 3]
    ret
.Lgap:
    inc eax
    cmp eax, edx
    jae .Ldone
    call three_digits
    test r8d, r8d
    jz .Lgap
.Ldone:
    ret
# three_digits(eax = index) -> r8d = 1 if CPS[eax..eax+2] are ASCII digits before edx. Clobbers r9, r10.
three_digits:
    xor r8d, r8d
    lea r9d, [rax + 3]
    cmp r9d, edx
    ja .Lnot
    xor r9d, r9d
.Ldigit:
    lea r10d, [rax + r9]
    mov r10d, [rsi + r10 * 4]
    sub r10d, 0x30
    cmp r10d, 9
    ja .Lnot
    inc r9d
    cmp r9d, 3
    jb .Ldigit
    mov r8d, 1
.Lnot:
    ret
