# Byte-level BPE (tokenizer.ggml.model = gpt2): the merge table, the GPT-2 byte alphabet, the
# encoder of one text fragment and the decoded pieces (pure core: no UEFI, no printing).
#
# Algorithm (GPT-2's byte-level BPE as OpenAI's encoder.py, HF tokenizers' BPE model and
# llama.cpp's llm_tokenizer_bpe define it): the fragment is split into words by the
# pre-tokenizer (pretok.s); each word's bytes become the tokens of their GPT-2 characters
# (bpe_byte_utf8: every byte stands for one code point); then, over and over, the adjacent
# pair with the lowest merge rank (the merge's index in tokenizer.ggml.merges; the leftmost
# on ties) is replaced by the token of its concatenation, until no pair has a rank. With
# IGNORE_MERGES (llama3) a word that is a whole token is that token. A byte whose character
# is not a token is dropped (as llama.cpp does). Merges sit in a hash table keyed by the
# pair of token ids, so a lookup never scans; pairs wait in a min-heap keyed by
# (rank << 32 | left node), stale entries are recognised by per-node stamps.
#
# Private helpers state their own register conventions; they never call out.
.include "tokenizer_layouts.inc"

.equ HEAP_ENTRY, 16                   # u64 key (rank << 32 | left node), u32 stamp l, u32 stamp r

.section .text
.global bpe_build, bpe_encode, bpe_merge_find

# merge_hash(ecx = left id, edx = right id) -> eax = 32-bit hash. Clobbers rax only.
merge_hash:
    imul eax, ecx, 0x9E3779B1
    xor eax, edx
    imul eax, eax, 0x85EBCA6B
    push rdx
    mov edx, eax
    shr edx, 15
    xor eax, edx
    pop rdx
    ret

# bpe_merge_find(rcx = VOCAB*, edx = left id, r8d = right id) -> eax = rank or -1,
#   edx = the merged token's id (when found). Microsoft x64 ABI (edx an extra result).
#   merge_find is the same for this file's callers (no alignment needs; clobbers rax, rcx,
#   rdx, r8-r11).
bpe_merge_find:
    jmp merge_find
merge_find:
    mov r9, rcx
    mov ecx, edx
    mov edx, r8d
    mov r10, [r9 + VOCAB_MERGE_HASH]
    mov r11d, [r9 + VOCAB_MERGE_HASH_MASK]
    call merge_hash
.Lprobe:
    and eax, r11d
    mov r8, rax
    shl r8, 4
    cmp dword ptr [r10 + r8 + MERGE_SLOT_RANK], NO_ID
    je .Lmissing
    cmp [r10 + r8 + MERGE_SLOT_LEFT], ecx
    jne .Lnext
    cmp [r10 + r8 + MERGE_SLOT_RIGHT], edx
    jne .Lnext
    mov edx, [r10 + r8 + MERGE_SLOT_RESULT]
    mov eax, [r10 + r8 + MERGE_SLOT_RANK]
    ret
.Lnext:
    inc eax
    jmp .Lprobe
.Lmissing:
    mov eax, -1
    ret

# bpe_build(rcx = VOCAB*, rdx = VOCAB_SOURCE*) -> eax = VOCAB_OK or a VOCAB_E_* code
#   Called by vocab_build once the token texts, types and the token hash exist and the
#   workspace regions DEC, DEC_LEN, DEC_COPIES, MERGE_HASH, BYTE_TOKEN are carved. Fills: the decoded piece
#   of every token (control and user-defined tokens: their text; others: each GPT-2
#   character back to its byte, anything else kept as is), BYTE_TOKEN, and the merge table
#   (a merge is "left right", split at its first space after the first byte: none is
#   VOCAB_E_MERGE_SPACE; a merge whose parts or concatenation are not tokens can never apply
#   and is left out; of two equal pairs the first rank counts). Microsoft x64 ABI.
bpe_build:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 56
    mov rbx, rcx
    mov r15, rdx
    # decoded pieces
    mov rdi, [rbx + VOCAB_DEC_COPIES] # where the copies go
    xor r12d, r12d                    # token id
.Ldecode:
    cmp r12d, [rbx + VOCAB_N_VOCAB]
    jae .Lbytes
    mov rax, [rbx + VOCAB_DEC]
    mov [rax + r12 * 8], rdi
    mov rax, [rbx + VOCAB_TEXT]
    mov rsi, [rax + r12 * 8]
    mov rax, [rbx + VOCAB_TEXT_LEN]
    mov r13d, [rax + r12 * 4]
    add r13, rsi                      # end of the text
    mov rax, [rbx + VOCAB_TYPES]
    movzx r14d, byte ptr [rax + r12]
    mov rbp, rdi
.Lchar:
    cmp rsi, r13
    jae .Ldecoded
    movzx eax, byte ptr [rsi]
    cmp r14d, TT_CONTROL
    je .Lkeep
    cmp r14d, TT_USER_DEFINED
    je .Lkeep
    mov ecx, eax                      # the code point of a 1- or 2-byte character
    mov edx, 1
    cmp eax, 0x80
    jb .Llookup
    mov ecx, eax
    and ecx, 0xE0
    cmp ecx, 0xC0
    jne .Lkeep
    lea rcx, [rsi + 1]
    cmp rcx, r13
    jae .Lkeep
    movzx ecx, byte ptr [rsi + 1]
    mov edx, ecx
    and edx, 0xC0
    cmp edx, 0x80
    jne .Lkeep
    and ecx, 0x3F
    and eax, 0x1F
    shl eax, 6
    or ecx, eax
    mov edx, 2
.Llookup:
    cmp ecx, BPE_UNBYTE_COUNT
    jae .Lkeep_first
    lea rax, [rip + bpe_unbyte]
    movzx eax, word ptr [rax + rcx * 2]
    cmp eax, 0xFFFF
    je .Lkeep_first
    mov [rdi], al
    inc rdi
    add rsi, rdx
    jmp .Lchar
.Lkeep_first:
    movzx eax, byte ptr [rsi]
.Lkeep:                               # one byte as it is
    mov [rdi], al
    inc rdi
    inc rsi
    jmp .Lchar
.Ldecoded:
    mov rax, rdi
    sub rax, rbp
    mov rcx, [rbx + VOCAB_DEC_LEN]
    mov [rcx + r12 * 4], eax
    mov byte ptr [rdi], 0
    inc rdi
    inc r12d
    jmp .Ldecode

.Lbytes:                              # BYTE_TOKEN[b] = the token of byte b's character
    xor r12d, r12d
.Lbyte:
    lea rdx, [rip + bpe_byte_utf8]
    movzx r8d, byte ptr [rdx + r12 * 4]
    lea rdx, [rdx + r12 * 4 + 1]
    mov rcx, rbx
    call vocab_find
    mov rcx, [rbx + VOCAB_BYTE_TOKEN]
    mov [rcx + r12 * 4], eax
    inc r12d
    cmp r12d, 256
    jb .Lbyte

    # merges: rsi walks the string array, r12 = rank
    mov rdi, [rbx + VOCAB_MERGE_HASH]
    mov ecx, [rbx + VOCAB_MERGE_HASH_MASK]
    lea rcx, [rcx + 1]
    shl rcx, 4
.Lclear:                              # every slot empty (RANK = NO_ID)
    sub rcx, 16
    mov dword ptr [rdi + rcx + MERGE_SLOT_RANK], NO_ID
    jnz .Lclear
    mov rsi, [r15 + VOCAB_SOURCE_MERGES]
    xor r12d, r12d
.Lmerge:
    cmp r12, [r15 + VOCAB_SOURCE_N_MERGES]
    jae .Lok
    mov r13, [rsi]                    # length
    lea r14, [rsi + 8]                # bytes
    lea rsi, [r14 + r13]              # the next string
    mov ecx, 1
.Lspace:
    cmp rcx, r13
    jae .Lno_space
    cmp byte ptr [r14 + rcx], 0x20
    je .Lsplit
    inc rcx
    jmp .Lspace
.Lsplit:
    mov [rsp + 32], rcx               # left length
    mov rdx, r14
    mov r8, rcx
    mov rcx, rbx
    call vocab_find
    test eax, eax
    js .Lnext_merge
    mov [rsp + 40], eax               # left id
    mov rax, [rsp + 32]
    lea rdx, [r14 + rax + 1]
    mov r8, r13
    sub r8, rax
    dec r8
    mov rcx, rbx
    call vocab_find
    test eax, eax
    js .Lnext_merge
    mov [rsp + 44], eax               # right id
    mov rax, [rsp + 32]               # the concatenation: the merge without its space
    mov rdx, r14
    mov r8, rax
    lea r9, [r14 + rax + 1]
    mov r10, r13
    sub r10, rax
    dec r10
    mov [rsp + 32], r10
    mov rcx, rbx
    call vocab_find2
    test eax, eax
    js .Lnext_merge
    mov [rsp + 48], eax               # result id
    mov ecx, [rsp + 40]
    mov edx, [rsp + 44]
    call merge_hash
    mov r10, [rbx + VOCAB_MERGE_HASH]
    mov r11d, [rbx + VOCAB_MERGE_HASH_MASK]
.Linsert:
    and eax, r11d
    mov r8, rax
    shl r8, 4
    cmp dword ptr [r10 + r8 + MERGE_SLOT_RANK], NO_ID
    je .Lput
    cmp [r10 + r8 + MERGE_SLOT_LEFT], ecx
    jne .Lprobe_on
    cmp [r10 + r8 + MERGE_SLOT_RIGHT], edx
    je .Lnext_merge                   # the same pair again: the first rank stays
.Lprobe_on:
    inc eax
    jmp .Linsert
.Lput:
    mov [r10 + r8 + MERGE_SLOT_LEFT], ecx
    mov [r10 + r8 + MERGE_SLOT_RIGHT], edx
    mov [r10 + r8 + MERGE_SLOT_RANK], r12d
    mov eax, [rsp + 48]
    mov [r10 + r8 + MERGE_SLOT_RESULT], eax
    inc dword ptr [rbx + VOCAB_N_MERGES]
.Lnext_merge:
    inc r12
    jmp .Lmerge
.Lno_space:
    mov eax, VOCAB_E_MERGE_SPACE
    jmp .Lout
.Lok:
    xor eax, eax
.Lout:
    add rsp, 56
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# bpe_encode(rcx = VOCAB*, rdx = text, r8 = start, r9 = end, [rsp+40] = out i32*,
#            [rsp+48] = capacity, [rsp+56] = tokens already in out)
#   -> rax = the new token count, or VNEG_CAPACITY (out never written past capacity).
#   Encodes text[start, end) (end - start < VOCAB_SLOTS): code points, words, merges.
#   Microsoft x64 ABI.
.equ CTX_OUT, 0                       # the output context encode_word and emit share (r12 points at it)
.equ CTX_CAP, 8
.equ CTX_COUNT, 16
.equ CTX_TEXT, 24
.equ ENC_OUT, 176                     # stack arguments after 8 pushes and the 72-byte frame
.equ ENC_CAP, 184
.equ ENC_COUNT, 192
bpe_encode:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 72
    mov rbx, rcx
    lea r12, [rsp + 32]               # the context
    mov [r12 + CTX_TEXT], rdx
    mov rax, [rsp + ENC_OUT]
    mov [r12 + CTX_OUT], rax
    mov rax, [rsp + ENC_CAP]
    mov [r12 + CTX_CAP], rax
    mov rax, [rsp + ENC_COUNT]
    mov [r12 + CTX_COUNT], rax
    mov rcx, rbx
    call uni_decode                   # (rdx, r8, r9 still the text, start, end)
    mov rcx, rbx
    mov edx, eax
    call pretok_split
    mov r14, rax                      # words
    mov r15, rdx                      # boundaries (code point indices)
    xor ebp, ebp                      # word index
.Lword:
    cmp rbp, r14
    jae .Ldone
    mov rax, [rbx + VOCAB_OFFS]
    mov ecx, [r15 + rbp * 4]
    mov esi, [rax + rcx * 4]          # the word's first byte
    mov ecx, [r15 + rbp * 4 + 4]
    mov edi, [rax + rcx * 4]          # its end
    inc rbp
    push rbp
    push r14
    push r15
    sub rsp, 8
    call encode_word
    add rsp, 8
    pop r15
    pop r14
    pop rbp
    test rax, rax
    jns .Lword
    jmp .Lout
.Ldone:
    mov rax, [r12 + CTX_COUNT]
.Lout:
    add rsp, 72
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

# emit(eax = token, r12 = context) -> rax = the count, or VNEG_CAPACITY (sign set).
#   Clobbers rcx, rdx.
emit:
    mov rcx, [r12 + CTX_COUNT]
    cmp rcx, [r12 + CTX_CAP]
    jae .Lfull
    mov rdx, [r12 + CTX_OUT]
    mov [rdx + rcx * 4], eax
    inc rcx
    mov [r12 + CTX_COUNT], rcx
    mov rax, rcx
    ret
.Lfull:
    mov rax, VNEG_CAPACITY
    ret

# encode_word(rbx = VOCAB*, r12 = context, esi = first byte, edi = end; the stack 16-aligned at the
#   call) -> rax = the count so far or VNEG_CAPACITY. Clobbers rax, rcx, rdx, rsi, rdi, rbp,
#   r8-r11, r13-r15.
encode_word:
    sub rsp, 40                       # shadow space for vocab_find; aligned again
    mov r15d, edi
    sub r15d, esi                     # n bytes = n symbols
    jz .Lempty
    cmp dword ptr [rbx + VOCAB_IGNORE_MERGES], 0
    je .Lsymbols
    # the whole word in GPT-2 characters: a token?
    mov r8, [rbx + VOCAB_MAPBUF]
    mov r13, [r12 + CTX_TEXT]
    xor r9d, r9d
    mov ecx, esi
    lea r11, [rip + bpe_byte_utf8]
.Lmap:
    movzx eax, byte ptr [r13 + rcx]
    mov edx, [r11 + rax * 4]
    movzx r10d, dl
    shr edx, 8
    mov [r8 + r9], dx
    add r9, r10
    inc ecx
    cmp ecx, edi
    jb .Lmap
    mov rcx, rbx
    mov rdx, r8
    mov r8, r9
    call vocab_find
    test eax, eax
    js .Lsymbols
    call emit
    jmp .Lreturn
.Lsymbols:
    # SYM[k] = BYTE_TOKEN[byte k]; nodes linked in order
    mov r13, [r12 + CTX_TEXT]
    mov r8, [rbx + VOCAB_SYM]
    mov r9, [rbx + VOCAB_NEXT]
    mov r10, [rbx + VOCAB_PREV]
    mov r11, [rbx + VOCAB_STAMP]
    mov rdx, [rbx + VOCAB_BYTE_TOKEN]
    xor ecx, ecx
.Lsym:
    lea eax, [rsi + rcx]
    movzx eax, byte ptr [r13 + rax]
    mov eax, [rdx + rax * 4]
    mov [r8 + rcx * 4], eax
    lea eax, [rcx + 1]
    mov [r9 + rcx * 4], eax
    lea eax, [rcx - 1]
    mov [r10 + rcx * 4], eax
    mov [r11 + rcx * 4], ecx
    inc ecx
    cmp ecx, r15d
    jb .Lsym
    mov dword ptr [r9 + r15 * 4 - 4], -1
    mov ebp, r15d                     # the next fresh stamp
    xor r13d, r13d                    # heap entries
    xor r14d, r14d
.Lpairs:
    lea eax, [r14 + 1]
    cmp eax, r15d
    jae .Lpop
    call push_pair
    inc r14d
    jmp .Lpairs
.Lpop:
    test r13, r13
    jz .Lwrite
    mov r11, [rbx + VOCAB_HEAP]
    mov r14d, [r11]                   # the best pair's left node
    mov esi, [r11 + 8]                # its stamps
    mov edi, [r11 + 12]
    dec r13
    call sift_down
    mov rax, [rbx + VOCAB_STAMP]
    cmp esi, [rax + r14 * 4]
    jne .Lpop                         # stale: the left node changed since
    mov rcx, [rbx + VOCAB_NEXT]
    movsxd r15, dword ptr [rcx + r14 * 4]
    test r15, r15
    js .Lpop
    cmp edi, [rax + r15 * 4]
    jne .Lpop                         # stale: the right node changed since
    mov rax, [rbx + VOCAB_SYM]
    mov edx, [rax + r14 * 4]
    mov r8d, [rax + r15 * 4]
    mov rcx, rbx
    call merge_find
    mov rax, [rbx + VOCAB_SYM]
    mov [rax + r14 * 4], edx          # the left node becomes the merged token
    mov rax, [rbx + VOCAB_STAMP]
    mov [rax + r14 * 4], ebp
    inc ebp
    mov [rax + r15 * 4], ebp          # the right node leaves
    inc ebp
    mov rcx, [rbx + VOCAB_NEXT]
    movsxd rdx, dword ptr [rcx + r15 * 4]
    mov [rcx + r14 * 4], edx
    test rdx, rdx
    js .Lunlinked
    mov rcx, [rbx + VOCAB_PREV]
    mov [rcx + rdx * 4], r14d
.Lunlinked:
    mov rcx, [rbx + VOCAB_PREV]
    movsxd r15, dword ptr [rcx + r14 * 4]    # the left neighbour, for the second pair
    mov rcx, [rbx + VOCAB_NEXT]
    cmp dword ptr [rcx + r14 * 4], 0
    jl .Lleft_pair
    call push_pair
.Lleft_pair:
    test r15, r15
    js .Lpop
    mov r14, r15
    call push_pair
    jmp .Lpop
.Lwrite:                              # the live nodes from node 0, dropped bytes skipped
    xor r14d, r14d
.Lwalk:
    mov rax, [rbx + VOCAB_SYM]
    mov eax, [rax + r14 * 4]
    test eax, eax
    js .Lskip
    call emit
    test rax, rax
    js .Lreturn
.Lskip:
    mov rcx, [rbx + VOCAB_NEXT]
    movsxd r14, dword ptr [rcx + r14 * 4]
    test r14, r14
    jns .Lwalk
.Lempty:
    mov rax, [r12 + CTX_COUNT]
.Lreturn:
    add rsp, 40
    ret

# push_pair(rbx = VOCAB*, r14 = node with a right neighbour, r13 = heap entries): pushes the
#   pair (r14, NEXT[r14]) when both are tokens and it is a merge. Clobbers rax, rcx, rdx,
#   r8-r11; r13 += 1 then.
push_pair:
    mov rax, [rbx + VOCAB_SYM]
    mov rcx, [rbx + VOCAB_NEXT]
    movsxd r9, dword ptr [rcx + r14 * 4]
    mov edx, [rax + r14 * 4]
    mov r8d, [rax + r9 * 4]
    test edx, edx
    js .Lnone
    test r8d, r8d
    js .Lnone
    mov rcx, rbx
    push r9
    call merge_find
    pop r9
    test eax, eax
    js .Lnone
    shl rax, 32
    or rax, r14                       # the key: rank, then the leftmost
    mov rcx, [rbx + VOCAB_STAMP]
    mov r10d, [rcx + r9 * 4]
    shl r10, 32
    mov ecx, [rcx + r14 * 4]
    or r10, rcx                       # stamps: left | right << 32
    mov r8, [rbx + VOCAB_HEAP]
    mov rcx, r13
    shl rcx, 4                        # the new slot's offset, sifted up
    inc r13
.Lup:
    test rcx, rcx
    jz .Lplace
    lea rdx, [rcx - 16]
    shr rdx, 5
    shl rdx, 4                        # the parent's offset
    cmp rax, [r8 + rdx]
    jae .Lplace
    mov r11, [r8 + rdx]
    mov [r8 + rcx], r11
    mov r11, [r8 + rdx + 8]
    mov [r8 + rcx + 8], r11
    mov rcx, rdx
    jmp .Lup
.Lplace:
    mov [r8 + rcx], rax
    mov [r8 + rcx + 8], r10
.Lnone:
    ret

# sift_down(rbx = VOCAB*, r13 = entries left after taking the top): moves the old last
#   entry (heap[r13]) down from the root. Clobbers rax, rcx, rdx, r8-r11.
sift_down:
    test r13, r13
    jz .Ldone
    mov r8, [rbx + VOCAB_HEAP]
    mov r9, r13
    shl r9, 4                         # the end offset
    mov r10, [r8 + r9]                # the entry's key
    mov r11, [r8 + r9 + 8]            # its stamps
    xor eax, eax                      # its slot's offset so far
.Ldown:
    lea rcx, [rax + rax + 16]         # the left child
    cmp rcx, r9
    jae .Lput
    lea rdx, [rcx + 16]
    cmp rdx, r9
    jae .Lchild
    mov rdx, [r8 + rcx + 16]
    cmp rdx, [r8 + rcx]
    jae .Lchild
    add rcx, 16
.Lchild:                              # rcx = the smaller child
    cmp r10, [r8 + rcx]
    jbe .Lput
    mov rdx, [r8 + rcx]
    mov [r8 + rax], rdx
    mov rdx, [r8 + rcx + 8]
    mov [r8 + rax + 8], rdx
    mov rax, rcx
    jmp .Ldown
.Lput:
    mov [r8 + rax], r10
    mov [r8 + rax + 8], r11
.Ldone:
    ret
