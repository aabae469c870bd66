# The GGUF tokenizer's encoder and decoder, the interface the chat uses: special tokens cut
# out of the text first (llama.cpp's partition: the longest special text first, each
# occurrence left to right), the text between them through the vocabulary's encoder
# (bpe.s, or tok_encode.s's SentencePiece core); decoding by id. Pure core: no UEFI, no
# printing. Contracts: vocab.inc.
.include "tokenizer_layouts.inc"
.include "tokenizer.inc"

.equ TOK_NEG_CAPACITY, -TOK_E_CAPACITY

.section .rdata
empty_piece:
    .byte 0

.section .text
.global vocab_encode, vocab_decode, vocab_wrap_tok

# vocab_encode(rcx = VOCAB*, rdx = text, r8 = length, r9d = flags, [rsp+40] = out i32*,
#              [rsp+48] = capacity) -> eax = tokens written, or a negated VOCAB_E_* code
#   (contract in vocab.inc)
.equ E_FRAME, 104                     # outgoing arguments (56 bytes), then our slots
.equ E_OUT, 208                       # stack arguments after 8 pushes and the frame
.equ E_CAP, 216
.equ E_FLAGS, 56
.equ E_COUNT, 64
.equ E_PREV_SPECIAL, 72
.equ E_FRAG, 80                       # the one fragment of a text without specials (a FRAG)
vocab_encode:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, E_FRAME
    mov rbx, rcx
    mov r12, rdx                      # text
    mov r13, r8                       # length
    mov [rsp + E_FLAGS], r9d
    mov qword ptr [rsp + E_COUNT], 0
    mov eax, VNEG_NOT_LOADED
    cmp dword ptr [rbx + VOCAB_MAGIC], VOCAB_MAGIC_VALUE
    jne .Lout
    mov eax, VNEG_TEXT_TOO_LONG
    cmp r13, VOCAB_MAX_TEXT
    ja .Lout
    test byte ptr [rsp + E_FLAGS], VOCAB_ENCODE_BOS
    jz .Lpartition
    mov eax, [rbx + VOCAB_BOS_ID]
    cmp eax, NO_ID
    je .Lpartition
    call put
    js .Lout

.Lpartition:                          # FRAG_A: [0, length) raw (the PROTECT ranges marked
    lea rsi, [rsp + E_FRAG]           # FRAG_PROTECTED); then split at each special. No
    cmp dword ptr [rbx + VOCAB_N_SPECIALS], 0      # specials: the one fragment lives in our
    je .Lwhole                                     # frame
    mov rsi, [rbx + VOCAB_FRAG_A]
    test byte ptr [rsp + E_FLAGS], VOCAB_ENCODE_PROTECT
    jz .Lwhole
    test r13, r13
    jz .Lwhole
    call protect_fragments
    jmp .Lpresent
.Lwhole:
    mov dword ptr [rsi + FRAG_START], 0
    mov [rsi + FRAG_END], r13d
    mov dword ptr [rsi + FRAG_ID], NO_ID
    mov r14d, 1                       # fragments
    test r13, r13
    jnz .Lpresent
    xor r14d, r14d
.Lpresent:                            # MAPBUF[b] = 1 for each byte value b in the text: a
    cmp dword ptr [rbx + VOCAB_N_SPECIALS], 0      # special whose first byte is absent
    je .Lencode                       # cannot occur (Qwen2 has 290 user-defined ones)
    mov rdi, [rbx + VOCAB_MAPBUF]
    xor eax, eax
.Lclear:
    mov qword ptr [rdi + rax], 0
    add eax, 8
    cmp eax, 256
    jb .Lclear
    xor eax, eax
.Lmark:
    cmp rax, r13
    jae .Lspecials
    movzx ecx, byte ptr [r12 + rax]
    mov byte ptr [rdi + rcx], 1
    inc rax
    jmp .Lmark
.Lspecials:
    xor ebp, ebp                      # special index
.Lnext_special:
    cmp ebp, [rbx + VOCAB_N_SPECIALS]
    jae .Lencode
    mov rax, [rbx + VOCAB_SPECIALS]
    mov r15d, [rax + rbp * 4]         # its id
    inc ebp
    mov rax, [rbx + VOCAB_TYPES]
    cmp byte ptr [rax + r15], TT_CONTROL
    jne .Lsplit
    test byte ptr [rsp + E_FLAGS], VOCAB_PARSE_SPECIAL
    jz .Lnext_special                 # control tokens only when asked
.Lsplit:
    mov rax, [rbx + VOCAB_TEXT]
    mov rax, [rax + r15 * 8]
    movzx eax, byte ptr [rax]         # (texts are never empty)
    mov rcx, [rbx + VOCAB_MAPBUF]
    cmp byte ptr [rcx + rax], 0
    je .Lnext_special
    call split_at
    jmp .Lnext_special

.Lencode:                             # each fragment: its special id, or its text encoded
    cmp dword ptr [rbx + VOCAB_N_SPECIALS], 0
    je .Lfragments                    # (rsi is still the frame's fragment)
    call join_text_fragments          # (raw and protected text side by side: one fragment)
    mov rsi, [rbx + VOCAB_FRAG_A]
.Lfragments:
    xor ebp, ebp
    mov dword ptr [rsp + E_PREV_SPECIAL], 1
.Lfragment:
    cmp rbp, r14
    jae .Ldone
    lea rdi, [rbp + rbp * 2]
    lea rdi, [rsi + rdi * 4]          # the FRAG
    inc rbp
    mov eax, [rdi + FRAG_ID]
    cmp eax, NO_ID
    je .Ltext
    call put
    js .Lout
    mov dword ptr [rsp + E_PREV_SPECIAL], 1
    jmp .Lfragment
.Ltext:
    cmp dword ptr [rbx + VOCAB_KIND], VOCAB_KIND_BPE
    jne .Lspm_text
    mov rax, [rsp + E_COUNT]
    mov [rsp + 48], rax
    mov rax, [rsp + E_CAP]
    mov [rsp + 40], rax
    mov rax, [rsp + E_OUT]
    mov [rsp + 32], rax
    mov rcx, rbx
    mov rdx, r12
    mov r8d, [rdi + FRAG_START]
    mov r9d, [rdi + FRAG_END]
    call bpe_encode
    test rax, rax
    js .Lout
    mov [rsp + E_COUNT], rax
    jmp .Lfragment
.Lspm_text:                           # the SentencePiece core: a space prefix when the
    mov r9d, TOK_NO_PREFIX            # vocab asks and the fragment starts the text or
    cmp dword ptr [rbx + VOCAB_ADD_SPACE_PREFIX], 0    # follows a special token
    je .Lspm_flags
    cmp dword ptr [rsp + E_PREV_SPECIAL], 0
    je .Lspm_flags
    xor r9d, r9d
.Lspm_flags:
    mov dword ptr [rsp + E_PREV_SPECIAL], 0
    mov rax, [rsp + E_CAP]
    sub rax, [rsp + E_COUNT]
    mov [rsp + 40], rax
    mov rax, [rsp + E_COUNT]
    mov rcx, [rsp + E_OUT]
    lea rax, [rcx + rax * 4]
    mov [rsp + 32], rax
    lea rcx, [rbx + VOCAB_SPM]
    mov edx, [rdi + FRAG_START]
    add rdx, r12
    mov r8d, [rdi + FRAG_END]
    sub r8d, [rdi + FRAG_START]
    call tok_encode
    test eax, eax
    js .Lspm_error
    add [rsp + E_COUNT], rax
    jmp .Lfragment
.Lspm_error:
    cmp eax, TOK_NEG_CAPACITY
    mov eax, VNEG_CAPACITY
    je .Lout
    mov eax, VNEG_SPM
    jmp .Lout
.Ldone:
    mov rax, [rsp + E_COUNT]
.Lout:
    add rsp, E_FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# protect_fragments(rbx = VOCAB*, rsi = FRAG_A, r13 = text length) -> r14 = fragments: the
#   text [0, length) as raw fragments (NO_ID) and FRAG_PROTECTED ones for the PROTECT
#   ranges (clipped to the text; a range out of order or overlapping the one before is
#   taken from where the last one ended). Clobbers rax, rcx, rdx, r8-r11.
protect_fragments:
    xor r14d, r14d
    xor r8d, r8d                      # position so far
    mov r9, [rbx + VOCAB_PROTECT]
    mov r10d, [rbx + VOCAB_N_PROTECT]
    test r9, r9
    jz .Lrest
.Lrange:
    test r10d, r10d
    jz .Lrest
    dec r10d
    mov ecx, [r9]                     # [start, end) clipped to [position, length)
    mov edx, [r9 + 4]
    add r9, 8
    cmp ecx, r8d
    cmovb ecx, r8d
    cmp edx, r13d
    cmova edx, r13d
    cmp ecx, edx
    jae .Lrange                       # empty once clipped
    cmp ecx, r8d
    je .Lprotected
    mov r11d, NO_ID                   # raw text before the range
    mov eax, ecx
    mov ecx, r8d
    push rdx
    mov edx, eax
    call frag_put
    mov ecx, edx
    pop rdx
.Lprotected:
    mov r11d, FRAG_PROTECTED
    call frag_put
    mov r8d, edx
    jmp .Lrange
.Lrest:
    cmp r8d, r13d
    jae .Ldone
    mov ecx, r8d
    mov edx, r13d
    mov r11d, NO_ID
    call frag_put
.Ldone:
    ret
# frag_put(ecx = start, edx = end, r11d = id; rsi = FRAG_A, r14 = count) -> r14 + 1.
# Clobbers rax.
frag_put:
    lea rax, [r14 + r14 * 2]
    lea rax, [rsi + rax * 4]
    mov [rax + FRAG_START], ecx
    mov [rax + FRAG_END], edx
    mov [rax + FRAG_ID], r11d
    inc r14
    ret

# join_text_fragments(rbx = VOCAB*, r14 = fragments in FRAG_A) -> FRAG_A with every run of
#   adjacent text fragments (raw or protected) joined into one raw fragment, r14 = the new
#   count: the text between two specials is encoded as one piece, as if nothing had been
#   protected. Clobbers rax, rcx, rdx, r8, r9.
join_text_fragments:
    mov r8, [rbx + VOCAB_FRAG_A]
    xor ecx, ecx                      # in
    xor edx, edx                      # out
.Lnext:
    cmp rcx, r14
    jae .Lend
    lea rax, [rcx + rcx * 2]
    lea rax, [r8 + rax * 4]
    inc rcx
    mov r9d, [rax + FRAG_ID]
    cmp r9d, FRAG_PROTECTED
    jne .Lnot_protected
    mov r9d, NO_ID
    mov [rax + FRAG_ID], r9d
.Lnot_protected:
    test rdx, rdx
    jz .Lcopy
    cmp r9d, NO_ID
    jne .Lcopy
    lea r9, [rdx + rdx * 2 - 3]       # the fragment out before: raw text ending here?
    lea r9, [r8 + r9 * 4]
    cmp dword ptr [r9 + FRAG_ID], NO_ID
    jne .Lcopy_id
    push rcx
    mov ecx, [rax + FRAG_END]
    cmp ecx, [r9 + FRAG_END]
    jb .Lno_join                      # (never: fragments are in text order)
    mov [r9 + FRAG_END], ecx
    pop rcx
    jmp .Lnext
.Lno_join:
    pop rcx
.Lcopy_id:
    mov r9d, NO_ID
.Lcopy:
    lea r9, [rdx + rdx * 2]
    lea r9, [r8 + r9 * 4]
    push rcx
    mov ecx, [rax + FRAG_START]
    mov [r9 + FRAG_START], ecx
    mov ecx, [rax + FRAG_END]
    mov [r9 + FRAG_END], ecx
    mov ecx, [rax + FRAG_ID]
    mov [r9 + FRAG_ID], ecx
    pop rcx
    inc rdx
    jmp .Lnext
.Lend:
    mov r14, rdx
    ret

# put(eax = token; inside vocab_encode's frame, one call deeper) -> the count + 1, or
#   eax = VNEG_CAPACITY with the sign flag set. Clobbers rcx, rdx.
put:
    mov rcx, [rsp + 8 + E_COUNT]
    cmp rcx, [rsp + 8 + E_CAP]
    jae .Lfull
    mov rdx, [rsp + 8 + E_OUT]
    mov [rdx + rcx * 4], eax
    inc rcx
    mov [rsp + 8 + E_COUNT], rcx
    test ecx, ecx                     # clears the sign flag (counts are small)
    ret
.Lfull:
    mov eax, VNEG_CAPACITY
    test eax, eax
    ret

# split_at(rbx = VOCAB*, r12 = text, r14 = fragments in FRAG_A, r15d = special id)
#   -> FRAG_A holds the fragments with every occurrence of the special's text inside a raw
#   fragment cut out as its own fragment (left to right, not overlapping); r14 = the new
#   count. Clobbers rax, rcx, rdx, rsi, rdi, r8-r11.
split_at:
    push rbp
    push r13
    mov rsi, [rbx + VOCAB_FRAG_A]
    mov rdi, [rbx + VOCAB_FRAG_B]
    mov rax, [rbx + VOCAB_TEXT]
    mov r8, [rax + r15 * 8]           # the special's text
    mov rax, [rbx + VOCAB_TEXT_LEN]
    mov r9d, [rax + r15 * 4]          # its length (>= 1)
    xor r10d, r10d                    # fragment in
    xor r11d, r11d                    # fragments out
.Lfrag:
    cmp r10, r14
    jae .Lswap
    lea rax, [r10 + r10 * 2]
    lea rax, [rsi + rax * 4]
    inc r10
    mov ecx, [rax + FRAG_START]
    mov edx, [rax + FRAG_END]
    cmp dword ptr [rax + FRAG_ID], NO_ID
    je .Lscan
    mov ebp, [rax + FRAG_ID]
    call append
    jmp .Lfrag
.Lscan:                               # ecx = the raw part's start, r13d = the position
    mov r13d, ecx
.Lat:
    lea eax, [r13 + r9]
    cmp eax, edx
    ja .Lrest
    xor eax, eax
.Lmatch:
    lea ebp, [r13 + rax]
    movzx ebp, byte ptr [r12 + rbp]
    cmp bpl, [r8 + rax]
    jne .Lmiss
    inc eax
    cmp eax, r9d
    jb .Lmatch
    cmp ecx, r13d                     # a match: the raw text before it, then the special
    je .Lno_text
    push rdx
    mov edx, r13d
    mov ebp, NO_ID
    call append
    pop rdx
.Lno_text:
    push rdx
    mov ecx, r13d
    lea edx, [r13 + r9]
    mov ebp, r15d
    call append
    pop rdx
    add r13d, r9d
    mov ecx, r13d
    jmp .Lat
.Lmiss:
    inc r13d
    jmp .Lat
.Lrest:
    cmp ecx, edx
    je .Lfrag
    mov ebp, NO_ID
    call append
    jmp .Lfrag
.Lswap:
    mov [rbx + VOCAB_FRAG_A], rdi
    mov [rbx + VOCAB_FRAG_B], rsi
    mov r14, r11
    pop r13
    pop rbp
    ret
# append(ecx = start, edx = end, ebp = id; rdi = FRAG_B, r11 = count) -> r11 += 1. Clobbers rax.
append:
    lea rax, [r11 + r11 * 2]
    lea rax, [rdi + rax * 4]
    mov [rax + FRAG_START], ecx
    mov [rax + FRAG_END], edx
    mov [rax + FRAG_ID], ebp
    inc r11
    ret

# vocab_decode(rcx = VOCAB*, edx = previous token, r8d = token, r9 = u64* length or 0)
#   -> rax = the piece's bytes (contract in vocab.inc)
vocab_decode:
    cmp dword ptr [rcx + VOCAB_MAGIC], VOCAB_MAGIC_VALUE
    jne .Lempty
    cmp r8d, [rcx + VOCAB_N_VOCAB]
    jae .Lempty
    mov r8d, r8d
    mov rax, [rcx + VOCAB_TYPES]
    test rax, rax
    jz .Lkind                         # (a tokenizer.bin vocab: no types)
    cmp byte ptr [rax + r8], TT_CONTROL
    je .Lempty
.Lkind:
    cmp dword ptr [rcx + VOCAB_KIND], VOCAB_KIND_BPE
    jne .Lspm
    mov rax, [rcx + VOCAB_DEC_LEN]
    mov r10d, [rax + r8 * 4]
    mov rax, [rcx + VOCAB_DEC]
    mov rax, [rax + r8 * 8]
    jmp .Lout
.Lspm:
    add rcx, VOCAB_SPM
    jmp tok_decode                    # (tail call, same arguments)
.Lempty:
    lea rax, [rip + empty_piece]
    xor r10d, r10d
.Lout:
    test r9, r9
    jz .Lreturn
    mov [r9], r10
.Lreturn:
    ret

# vocab_wrap_tok(rcx = VOCAB*) -> eax = VOCAB_OK, or VOCAB_E_NOT_LOADED when the Tokenizer at
#   VOCAB_SPM is not loaded. Makes a VOCAB of the tokenizer.bin that tok_load put in its
#   VOCAB_SPM struct (the workspace is tok_load's): SentencePiece, its BOS/EOS/UNK ids, BOS
#   and the space prefix wanted, no token types and no special tokens, so vocab_encode and
#   vocab_decode serve both formats (vocab_find answers through tok_piece_id).
vocab_wrap_tok:
    mov dword ptr [rcx + VOCAB_MAGIC], 0
    mov eax, VOCAB_E_NOT_LOADED
    cmp dword ptr [rcx + VOCAB_SPM + TOK_MAGIC], TOK_MAGIC_VALUE
    jne .Lout
    mov dword ptr [rcx + VOCAB_KIND], VOCAB_KIND_SPM
    mov eax, [rcx + VOCAB_SPM + TOK_VOCAB_SIZE]
    mov [rcx + VOCAB_N_VOCAB], eax
    mov eax, [rcx + VOCAB_SPM + TOK_BOS_ID]
    mov [rcx + VOCAB_BOS_ID], eax
    mov eax, [rcx + VOCAB_SPM + TOK_EOS_ID]
    mov [rcx + VOCAB_EOS_ID], eax
    mov eax, [rcx + VOCAB_SPM + TOK_UNK_ID]
    mov [rcx + VOCAB_UNK_ID], eax
    mov dword ptr [rcx + VOCAB_ADD_BOS], 1
    mov dword ptr [rcx + VOCAB_ADD_SPACE_PREFIX], 1
    mov dword ptr [rcx + VOCAB_N_SPECIALS], 0
    mov qword ptr [rcx + VOCAB_TYPES], 0
    mov qword ptr [rcx + VOCAB_TOK_HASH], 0
    mov dword ptr [rcx + VOCAB_MAGIC], VOCAB_MAGIC_VALUE
    xor eax, eax
.Lout:
    ret
