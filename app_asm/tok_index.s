# The SentencePiece core's piece index (llama2.c's tokenizer, for tokenizer.bin and GGUF
# `llama` vocabularies alike): sorting the pieces (tok_finish), finding a piece's id
# (tok_lookup, tok_piece_id) and decoding one token (tok_decode). The encoder that uses the
# lookups: tok_encode.s; the loaders that fill the pieces: tokenizer.s (tokenizer.bin),
# spm.s (GGUF). Contracts and struct layout: tokenizer.inc. Pure core: no UEFI, no printing.
#
# How it works. tok_finish heap-sorts an index of ids by (piece bytes, id): heap sort
# because it needs no extra memory and is O(n log n) whatever the order (the 32000-piece
# vocab is mostly pieces starting with the same 3-byte U+2581, so comparisons are many and
# short). Lookups are a binary search for the first entry not below the key, so duplicate
# pieces answer with their lowest id.
#
# Private helpers (file-local names, and tok_lookup, global for tok_encode.s) use their own
# register conventions, stated with each; they never call out, so stack alignment inside
# them does not matter.
.include "tokenizer.inc"

.section .rdata
# byte_table[b] = b: tok_decode's answer for a <0xXX> piece is a pointer into it.
byte_table:
    .byte 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f
    .byte 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f
    .byte 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f
    .byte 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f
    .byte 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f
    .byte 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f
    .byte 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f
    .byte 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f
    .byte 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f
    .byte 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f
    .byte 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf
    .byte 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf
    .byte 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf
    .byte 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf
    .byte 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef
    .byte 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff
empty_piece:
    .byte 0
.section .text
.global tok_finish, tok_lookup, tok_piece_id, tok_decode

# tok_finish(rcx = Tokenizer*) -> eax = TOK_OK (contract in tokenizer.inc)
tok_finish:
    push rbx
    push rdi
    push r14
    sub rsp, 48
    mov rbx, rcx
    mov r14d, [rbx + TOK_VOCAB_SIZE]
    mov rdi, [rbx + TOK_SORTED]
    xor eax, eax
.Liota:
    mov [rdi + rax * 4], eax
    inc rax
    cmp rax, r14
    jb .Liota
    call sort_index
    mov byte ptr [rsp + 32], 0x20
    lea r8, [rsp + 32]
    mov r9d, 1
    call tok_lookup
    mov [rbx + TOK_SPACE_ID], eax
    mov dword ptr [rbx + TOK_MAGIC], TOK_MAGIC_VALUE
    xor eax, eax
    add rsp, 48
    pop r14
    pop rdi
    pop rbx
    ret

# cmp_bytes(r8 = a, r9 = a's length, r10 = b, r11 = b's length) -> eax < 0, 0 or > 0 as a
#   sorts before, equal to or after b: unsigned bytes, a proper prefix first. Lengths are
#   below 2^31. Reads min(lengths) bytes of each at most. Clobbers rax, rcx, rdx only.
cmp_bytes:
    mov rcx, r9
    cmp rcx, r11
    cmova rcx, r11                    # the common length
    xor edx, edx
.Lloop:
    cmp rdx, rcx
    jae .Lprefix
    movzx eax, byte ptr [r8 + rdx]
    cmp al, byte ptr [r10 + rdx]
    jne .Ldiffer
    inc rdx
    jmp .Lloop
.Ldiffer:
    movzx ecx, byte ptr [r10 + rdx]
    sub eax, ecx
    ret
.Lprefix:
    mov eax, r9d
    sub eax, r11d
    ret

# cmp_ids(ecx = id a, edx = id b, both zero-extended; rdi = piece pointers, rbp = piece
#   lengths) -> eax: the sign of (piece a, a) - (piece b, b), never 0 for a != b.
#   Clobbers rax, rcx, rdx, r8-r11.
cmp_ids:
    mov r8, [rdi + rcx * 8]
    mov r9d, [rbp + rcx * 4]
    mov r10, [rdi + rdx * 8]
    mov r11d, [rbp + rdx * 4]
    sub ecx, edx                      # the tie-break: ids are below 2^20, no overflow
    push rcx
    call cmp_bytes
    pop rcx
    test eax, eax
    cmovz eax, ecx
    ret

# sort_index(rbx = Tokenizer* with pieces, lengths, vocab_size and the identity index):
#   heap-sorts TOK_SORTED ascending by cmp_ids. Clobbers rax, rcx, rdx, r8-r11.
sort_index:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    mov rsi, [rbx + TOK_SORTED]       # the array A being sorted
    mov rdi, [rbx + TOK_PIECES]
    mov rbp, [rbx + TOK_LENS]
    mov r12d, [rbx + TOK_VOCAB_SIZE]  # n >= 1
    mov rbx, r12
    shr rbx, 1                        # heapify: sift every parent, the last one first
.Lheapify:
    test rbx, rbx
    jz .Lextract_all
    dec rbx
    mov r13, rbx
    mov r14, r12
    call .Lsift
    jmp .Lheapify
.Lextract_all:
    mov rbx, r12
.Lextract:                            # move the max to the end, shrink the heap by one
    dec rbx
    jz .Lsorted
    mov eax, [rsi]
    mov ecx, [rsi + rbx * 4]
    mov [rsi], ecx
    mov [rsi + rbx * 4], eax
    xor r13d, r13d
    mov r14, rbx
    call .Lsift
    jmp .Lextract
.Lsorted:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret
# .Lsift: sift A[r13] down within the heap A[0 .. r14). Clobbers r13, r15, rax, rcx, rdx, r8-r11.
.Lsift:
    lea r15, [r13 + r13 + 1]          # left child
    cmp r15, r14
    jae .Lsift_done
    lea rax, [r15 + 1]
    cmp rax, r14
    jae .Lbigger_child
    mov ecx, [rsi + r15 * 4]
    mov edx, [rsi + r15 * 4 + 4]
    call cmp_ids
    test eax, eax
    jns .Lbigger_child
    inc r15                           # the right child is the bigger one
.Lbigger_child:
    mov ecx, [rsi + r13 * 4]
    mov edx, [rsi + r15 * 4]
    call cmp_ids
    test eax, eax
    jns .Lsift_done                   # the parent is already the bigger
    mov eax, [rsi + r13 * 4]
    mov ecx, [rsi + r15 * 4]
    mov [rsi + r13 * 4], ecx
    mov [rsi + r15 * 4], eax
    mov r13, r15
    jmp .Lsift
.Lsift_done:
    ret

# tok_lookup(rbx = Tokenizer*, r8 = bytes, r9 = length) -> eax = the lowest id whose piece
#   equals the bytes, or -1 (a private convention: also tok_encode.s's, hence global). Binary search for the first index entry not below the key.
#   Clobbers rax, rcx, rdx, r10, r11 (r8, r9 unchanged).
tok_lookup:
    push rsi
    push rdi
    push rbp
    push r12
    push r13
    push r14
    mov rsi, [rbx + TOK_SORTED]
    mov rdi, [rbx + TOK_PIECES]
    mov rbp, [rbx + TOK_LENS]
    xor r12d, r12d                    # lo
    mov r13d, [rbx + TOK_VOCAB_SIZE]  # hi
.Lsearch:
    cmp r12, r13
    jae .Lslot
    lea r14, [r12 + r13]
    shr r14, 1                        # mid
    mov ecx, [rsi + r14 * 4]
    mov r10, [rdi + rcx * 8]
    mov r11d, [rbp + rcx * 4]
    call cmp_bytes                    # key vs piece
    test eax, eax
    jle .Lgo_left
    lea r12, [r14 + 1]
    jmp .Lsearch
.Lgo_left:
    mov r13, r14
    jmp .Lsearch
.Lslot:
    mov eax, -1
    cmp r12d, [rbx + TOK_VOCAB_SIZE]
    jae .Ldone
    mov r14d, [rsi + r12 * 4]
    mov r10, [rdi + r14 * 8]
    mov r11d, [rbp + r14 * 4]
    call cmp_bytes
    test eax, eax
    mov eax, -1
    jnz .Ldone
    mov eax, r14d
.Ldone:
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rdi
    pop rsi
    ret

# tok_piece_id(rcx = Tokenizer*, rdx = bytes, r8 = length) -> eax (contract in tokenizer.inc)
tok_piece_id:
    push rbx
    mov rbx, rcx
    mov eax, -1
    cmp dword ptr [rbx + TOK_MAGIC], TOK_MAGIC_VALUE
    jne .Lout
    mov r9, r8
    mov r8, rdx
    call tok_lookup
.Lout:
    pop rbx
    ret

# tok_decode(rcx = Tokenizer*, edx = previous token, r8d = token, r9 = u64* length or 0)
#   -> rax = the piece's bytes (contract in tokenizer.inc)
tok_decode:
    lea rax, [rip + empty_piece]
    xor r10d, r10d                    # length
    cmp dword ptr [rcx + TOK_MAGIC], TOK_MAGIC_VALUE
    jne .Ldone
    cmp r8d, [rcx + TOK_VOCAB_SIZE]
    jae .Ldone                        # out of range (negative ids too, as unsigned)
    mov r8d, r8d                      # the id's upper half may hold anything
    mov rax, [rcx + TOK_PIECES]
    mov rax, [rax + r8 * 8]
    mov r11, [rcx + TOK_LENS]
    mov r10d, [r11 + r8 * 4]
    cmp edx, [rcx + TOK_BOS_ID]       # after BOS a leading space goes
    jne .Lbyte_piece
    test r10, r10
    jz .Lbyte_piece
    cmp byte ptr [rax], 0x20
    jne .Lbyte_piece
    inc rax
    dec r10
.Lbyte_piece:                         # exactly "<0x" hex hex ">" -> the raw byte
    cmp r10, 6
    jne .Ldone
    cmp byte ptr [rax], 0x3C          # <
    jne .Ldone
    cmp byte ptr [rax + 1], 0x30      # 0
    jne .Ldone
    cmp byte ptr [rax + 2], 0x78      # x
    jne .Ldone
    cmp byte ptr [rax + 5], 0x3E      # >
    jne .Ldone
    movzx ecx, byte ptr [rax + 3]
    call .Lhex
    test ecx, ecx
    js .Ldone
    mov edx, ecx
    shl edx, 4
    movzx ecx, byte ptr [rax + 4]
    call .Lhex
    test ecx, ecx
    js .Ldone
    or edx, ecx
    lea rax, [rip + byte_table]
    add rax, rdx
    mov r10d, 1
.Ldone:
    test r9, r9
    jz .Lreturn
    mov [r9], r10
.Lreturn:
    ret
# .Lhex: ecx = a byte -> ecx = its value as a hex digit (either case), or -1. Clobbers r11.
.Lhex:
    lea r11d, [rcx - 0x30]
    cmp r11d, 9
    jbe .Lhex_value
    or ecx, 0x20                      # A-F -> a-f; nothing else lands in a-f
    lea r11d, [rcx - 0x61]
    cmp r11d, 5
    ja .Lnot_hex
    add r11d, 10
.Lhex_value:
    mov ecx, r11d
    ret
.Lnot_hex:
    mov ecx, -1
    ret
