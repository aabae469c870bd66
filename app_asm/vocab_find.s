# The GGUF tokenizer's token hash (find a token by its text) and its messages (the static
# lines, and vocab_build's error text with the offending value). The hash is
# FNV-1a (32 bits, Fowler/Noll/Vo) over the text, open addressing with linear probing, at
# most half full; vocab_build fills it. Pure core: no UEFI, no printing. Contracts: vocab.inc.
.include "tokenizer_layouts.inc"
.include "tokenizer.inc"

.equ FNV_PRIME, 0x01000193

.section .text
.global vocab_find, vocab_find2, vocab_message, vocab_error_text, vocab_fnv, vocab_set_error

# vocab_fnv(rdx = bytes, r8 = length, eax = hash so far; eax = VOCAB_FNV_BASIS to start) -> eax.
#   Clobbers rcx, r11 only (rdx, r8 kept); no stack use, so any caller alignment works.
vocab_fnv:
    jmp fnv
fnv:                                  # (this file's callers: no alignment needs)
    xor ecx, ecx
.Lbyte:
    cmp rcx, r8
    jae .Ldone
    movzx r11d, byte ptr [rdx + rcx]
    xor eax, r11d
    imul eax, eax, FNV_PRIME
    inc rcx
    jmp .Lbyte
.Ldone:
    ret

# vocab_find(rcx = VOCAB*, rdx = bytes, r8 = length) -> eax = the token whose text is those
#   bytes, or -1 (contract in vocab.inc). Works during vocab_build once the hash is filled.
vocab_find:
    cmp qword ptr [rcx + VOCAB_TOK_HASH], 0
    je .Lwrapped
    xor r9d, r9d
    xor r10d, r10d
# vocab_find2(rcx = VOCAB*, rdx = bytes, r8 = length, r9 = more bytes, [r10 = their length;
#   from Microsoft x64 callers: [rsp+40]]) -> eax: the token whose text is the concatenation.
#   Clobbers rax, rcx, rdx, r8-r11 only (bpe.s relies on that).
    jmp find2
.Lwrapped:                            # a tokenizer.bin vocab (vocab_wrap_tok): its own lookup
    mov eax, -1
    cmp dword ptr [rcx + VOCAB_MAGIC], VOCAB_MAGIC_VALUE
    jne .Lnone
    add rcx, VOCAB_SPM
    jmp tok_piece_id
.Lnone:
    ret
vocab_find2:
    mov r10, [rsp + 40]
find2:
    mov eax, -1                       # only a built VOCAB (or one being built) has a hash
    cmp dword ptr [rcx + VOCAB_MAGIC], VOCAB_MAGIC_VALUE
    je .Lhashed
    cmp dword ptr [rcx + VOCAB_MAGIC], VOCAB_MAGIC_BUILDING
    jne .Lrefused
.Lhashed:
    cmp qword ptr [rcx + VOCAB_TOK_HASH], 0
    jne .Lsearch
.Lrefused:
    ret
.Lsearch:
    push rbx
    push rsi
    push rdi
    push r12
    mov rbx, rcx
    mov rsi, rdx                      # part 1
    mov rdi, r9                       # part 2
    mov r12, r8                       # part 1's length; r10 = part 2's
    mov eax, VOCAB_FNV_BASIS
    call fnv
    mov rdx, rdi
    mov r8, r10
    call fnv
    mov rdx, [rbx + VOCAB_TOK_HASH]
    mov r9d, [rbx + VOCAB_TOK_HASH_MASK]
.Lprobe:
    and eax, r9d
    mov ecx, [rdx + rax * 4]
    test ecx, ecx
    jz .Lmissing
    dec ecx                           # the id in this slot
    mov r8, [rbx + VOCAB_TEXT_LEN]
    mov r8d, [r8 + rcx * 4]
    mov r11, r12
    add r11, r10
    cmp r8, r11
    jne .Lnext
    push rax
    push rdx
    mov r8, [rbx + VOCAB_TEXT]
    mov r8, [r8 + rcx * 8]            # the token's text
    xor r11d, r11d
.Lcmp1:
    cmp r11, r12
    jae .Lpart2
    movzx eax, byte ptr [rsi + r11]
    cmp al, [r8 + r11]
    jne .Ldiffer
    inc r11
    jmp .Lcmp1
.Lpart2:
    add r8, r12
    xor r11d, r11d
.Lcmp2:
    cmp r11, r10
    jae .Lsame
    movzx eax, byte ptr [rdi + r11]
    cmp al, [r8 + r11]
    jne .Ldiffer
    inc r11
    jmp .Lcmp2
.Ldiffer:
    pop rdx
    pop rax
.Lnext:
    inc eax
    jmp .Lprobe
.Lsame:
    pop rdx
    pop rax
    mov eax, ecx
    jmp .Lout
.Lmissing:
    mov eax, -1
.Lout:
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# vocab_message(ecx = code or its negation) -> rax = the static one-line message.
vocab_message:
    mov eax, ecx
    neg eax
    cmovs eax, ecx
    cmp eax, VOCAB_E_LAST
    jbe .Lfind
    mov eax, VOCAB_E_SPM              # (any unknown code: the generic failure)
.Lfind:
    lea rdx, [rip + vocab_messages]
.Lskip:
    test eax, eax
    jz .Lfound
.Lskip_byte:
    movzx ecx, byte ptr [rdx]
    inc rdx
    test ecx, ecx
    jnz .Lskip_byte
    dec eax
    jmp .Lskip
.Lfound:
    mov rax, rdx
    ret

# vocab_error_text(rcx = VOCAB*) -> rax = vocab_build's last one-line message.
vocab_error_text:
    lea rax, [rcx + VOCAB_ERROR_TEXT]
    ret

# vocab_set_error(rbx = VOCAB*, eax = code, rsi = value bytes or 0, rdi = value length)
#   -> eax = the code. ERROR_TEXT = the message, then " 'value'" when a value is given
#   (at most 64 bytes of it, bytes outside 0x20..0x7E as '?'). Clobbers rcx, rdx, r8-r11.
#   vocab_build's helper (its own register convention), entered with the ABI's alignment.
vocab_set_error:
    push rax
    mov ecx, eax
    sub rsp, 32
    call vocab_message
    add rsp, 32
    lea rdx, [rbx + VOCAB_ERROR_TEXT]
    xor ecx, ecx
.Lcopy:
    movzx r8d, byte ptr [rax + rcx]
    test r8d, r8d
    jz .Lvalue
    mov [rdx + rcx], r8b
    inc ecx
    jmp .Lcopy
.Lvalue:
    test rsi, rsi
    jz .Lend
    mov dword ptr [rdx + rcx], 0x00272720   # " ''" start: space, quote
    add ecx, 2
    xor r9d, r9d
.Lvbyte:
    cmp r9, rdi
    jae .Lclose
    cmp r9, 64
    jae .Lclose
    movzx r8d, byte ptr [rsi + r9]
    lea r10d, [r8 - 0x20]
    cmp r10d, 0x5E
    jbe .Lprintable
    mov r8d, 0x3F
.Lprintable:
    mov [rdx + rcx], r8b
    inc ecx
    inc r9
    jmp .Lvbyte
.Lclose:
    mov byte ptr [rdx + rcx], 0x27
    inc ecx
.Lend:
    mov byte ptr [rdx + rcx], 0
    pop rax
    ret
