# UTF-8 decoding and Unicode classes for the pre-tokenizers (pure core: no UEFI, no printing).
#
# The classes (UC_L letter, UC_N number, UC_WS White_Space, UC_P punctuation, UC_S symbol)
# come from unicode_table.inc, generated at build time from Python's unicodedata by
# peasm/unicode_table.py: a 256-byte table for U+0000..U+00FF and sorted disjoint ranges
# above. UTF-8 as RFC 3629 defines it: shortest form only, no surrogates, at most U+10FFFF.
.include "tokenizer_layouts.inc"
.include "unicode_table.inc"

.section .text
.global uni_flags, uni_decode

# uni_flags(ecx = code point) -> eax = its UC_* flags (0 for none, and above U+10FFFF).
#   Binary search over unicode_ranges. Clobbers rax, rcx, rdx, r8-r11 only (no stack use
#   beyond the return address, so private callers may rely on that).
uni_flags:
    cmp ecx, 256
    jae .Lsearch
    lea rax, [rip + unicode_latin1_flags]
    movzx eax, byte ptr [rax + rcx]
    ret
.Lsearch:
    lea r8, [rip + unicode_ranges]
    xor r9d, r9d                      # lo
    mov r10d, UNICODE_RANGE_COUNT     # hi: first range whose start > cp is found in [lo, hi)
.Lbisect:
    cmp r9d, r10d
    jae .Lfound
    lea r11d, [r9 + r10]
    shr r11d, 1
    cmp ecx, [r8 + r11 * 8]
    jb .Lleft
    lea r9d, [r11 + 1]
    jmp .Lbisect
.Lleft:
    mov r10d, r11d
    jmp .Lbisect
.Lfound:                              # r9 = ranges starting at or below cp; the last is r9 - 1
    xor eax, eax
    test r9d, r9d
    jz .Lout
    dec r9d
    cmp ecx, [r8 + r9 * 8 + 4]
    ja .Lout
    lea rax, [rip + unicode_range_flags]
    movzx eax, byte ptr [rax + r9]
.Lout:
    ret

# uni_decode(rcx = VOCAB*, rdx = text, r8 = start offset, r9 = end offset) -> rax = n
#   Decodes text[start, end) into the VOCAB's scratch: CPS[i] = code point i, CPF[i] = its
#   UC_* flags, OFFS[i] = its first byte's offset in text (OFFS[n] = end). A byte that does
#   not begin a valid UTF-8 sequence is one code point U+FFFD (flags UC_S) of one byte, so
#   offsets always cover every byte. end - start must be at most VOCAB_SLOTS - 1.
#   Microsoft x64 ABI; preserves everything it must.
uni_decode:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    mov r12, [rcx + VOCAB_CPS]
    mov r13, [rcx + VOCAB_CPF]
    mov r14, [rcx + VOCAB_OFFS]
    mov rsi, rdx                      # text
    mov rdi, r8                       # offset
    mov r15, r9                       # end
    xor ebx, ebx                      # n
.Lnext:
    cmp rdi, r15
    jae .Ldone
    mov [r14 + rbx * 4], edi
    movzx eax, byte ptr [rsi + rdi]
    cmp eax, 0x80
    jb .Lone                          # ASCII
    # lead byte -> (continuation count in edx, lowest code point in r10d, bits in eax)
    cmp eax, 0xC2
    jb .Linvalid
    cmp eax, 0xE0
    jae .Lthree
    mov edx, 1
    and eax, 0x1F
    mov r10d, 0x80
    jmp .Lconts
.Lthree:
    cmp eax, 0xF0
    jae .Lfour
    mov edx, 2
    and eax, 0x0F
    mov r10d, 0x800
    jmp .Lconts
.Lfour:
    cmp eax, 0xF5
    jae .Linvalid
    mov edx, 3
    and eax, 0x07
    mov r10d, 0x10000
.Lconts:
    mov rcx, r15
    sub rcx, rdi
    dec rcx                           # bytes after the lead
    cmp rcx, rdx
    jb .Linvalid
    mov r11d, 1
    lea r9, [rsi + rdi]               # the lead byte's address
.Lcont:
    movzx ecx, byte ptr [r9 + r11]
    mov r8d, ecx
    and r8d, 0xC0
    cmp r8d, 0x80
    jne .Linvalid
    shl eax, 6
    and ecx, 0x3F
    or eax, ecx
    inc r11d
    cmp r11d, edx
    jbe .Lcont
    cmp eax, r10d
    jb .Linvalid                      # overlong
    cmp eax, 0x10FFFF
    ja .Linvalid
    mov ecx, eax
    and ecx, 0xFFFFF800
    cmp ecx, 0xD800
    je .Linvalid                      # a surrogate
    mov [r12 + rbx * 4], eax
    lea rdi, [rdi + rdx + 1]
    mov ecx, eax
    call uni_flags
    mov [r13 + rbx], al
    inc rbx
    jmp .Lnext
.Lone:
    mov [r12 + rbx * 4], eax
    lea rcx, [rip + unicode_latin1_flags]
    movzx eax, byte ptr [rcx + rax]
    mov [r13 + rbx], al
    inc rdi
    inc rbx
    jmp .Lnext
.Linvalid:
    mov dword ptr [r12 + rbx * 4], 0xFFFD
    mov byte ptr [r13 + rbx], UC_S
    inc rdi
    inc rbx
    jmp .Lnext
.Ldone:
    mov [r14 + rbx * 4], r15d
    mov rax, rbx
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
