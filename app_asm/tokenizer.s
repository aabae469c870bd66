# The tokenizer: load and validate llama2.c's tokenizer.bin, encode text exactly as llama2.c's
# run.c does, decode one token. Contracts, struct layout and status codes: tokenizer.inc.
#
# How it works. tok_load copies every piece (NUL-terminated) into the workspace, records its
# C-string length and score, and heap-sorts an index of ids by (piece bytes, id): heap sort
# because it needs no extra memory and is O(n log n) whatever the order (the 32000-piece
# vocab is mostly pieces starting with the same 3-byte U+2581, so comparisons are many and
# short). Lookups are a binary search for the first entry not below the key, so duplicate
# pieces answer with their lowest id. tok_encode does not rescan every pair after every
# merge as llama2.c does (O(n^2) lookups: seconds for a long paste): the tokens form a linked
# list, the mergeable pairs sit in a max-heap ordered by (score, then leftmost), and after a
# merge only the two pairs touching the merged token are new. The heap's order is llama2.c's
# rule (highest score strictly above -1e10, the leftmost on ties), so the ids are identical.
#
# Private helpers (file-local names) use their own register conventions, stated with each;
# they never call out, so stack alignment inside them does not matter.
.include "tokenizer.inc"

.equ NO_MERGE, 0xD01502F9           # -1e10 as f32: llama2.c's starting best score
.equ SCRATCH_BYTES, TOK_SCRATCH_SLOTS * 4          # one encode scratch array (16-multiple)
.equ HEAP_BYTES, TOK_SCRATCH_SLOTS * 48            # 3 entries of 16 bytes per token
.equ CONCAT_BYTES, TOK_MAX_TOKEN_LEN * 2 + 16      # the pair-concatenation buffer
# tok_encode's negated codes (keystone takes no "-SYMBOL" operand, an .equ it does)
.equ NEG_CAPACITY, -TOK_E_CAPACITY
.equ NEG_TEXT_TOO_LONG, -TOK_E_TEXT_TOO_LONG
.equ NEG_NO_SPACE, -TOK_E_NO_SPACE
.equ NEG_BAD_ID, -TOK_E_BAD_ID
.equ NEG_NOT_LOADED, -TOK_E_NOT_LOADED

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
# tok_error_text's messages, in code order (TOK_OK .. TOK_E_LAST), then the generic one.
messages:
    .asciz "tokenizer: ok"
    .asciz "tokenizer: file too short to hold max_token_length"
    .asciz "tokenizer: max_token_length out of range (1..%u)"
    .asciz "tokenizer: vocab_size out of range (1..%u)"
    .asciz "tokenizer: file ends before vocab_size entries (truncated, or vocab_size too large)"
    .asciz "tokenizer: an entry has a negative length"
    .asciz "tokenizer: an entry is longer than max_token_length"
    .asciz "tokenizer: workspace too small"
    .asciz "tokenizer: file too large (over %u MiB)"
    .asciz "tokenizer: too many tokens for the output buffer"
    .asciz "tokenizer: text too long (over %u bytes)"
    .asciz "tokenizer: the vocab has no space piece for the dummy prefix"
    .asciz "tokenizer: vocab too small for the BOS, EOS or byte-fallback ids"
    .asciz "tokenizer: not loaded"
    .asciz "tokenizer: unknown error"
.balign 8
message_limits:                       # the value each message's %u stands for, in code order
    .quad 0, 0, TOK_MAX_TOKEN_LEN, TOK_MAX_VOCAB, 0, 0, 0, 0, TOK_MAX_FILE >> 20, 0
    .quad TOK_MAX_TEXT, 0, 0, 0, 0

.section .text
.global tok_workspace_bytes, tok_load, tok_encode, tok_decode, tok_piece_id, tok_error_text
.global tok_carve, tok_finish

# carve(r8 = workspace base, 16-aligned; r9 = vocab_size; r10 = file size; r11 = Tokenizer*)
#   -> rax = end of the part of the workspace used. Stores each region's address in the
#   struct. The one place the workspace layout is decided (tok_workspace_bytes runs it from
#   base 0 on a throwaway struct). Every region starts 16-aligned. Clobbers rax only.
carve:
    mov rax, r8
    mov [r11 + TOK_PIECES], rax
    lea rax, [rax + r9 * 8 + 15]
    and rax, -16
    mov [r11 + TOK_LENS], rax
    lea rax, [rax + r9 * 4 + 15]
    and rax, -16
    mov [r11 + TOK_SCORES], rax
    lea rax, [rax + r9 * 4 + 15]
    and rax, -16
    mov [r11 + TOK_SORTED], rax
    lea rax, [rax + r9 * 4 + 15]
    and rax, -16
    mov [r11 + TOK_SEQ], rax
    add rax, SCRATCH_BYTES
    mov [r11 + TOK_NEXT], rax
    add rax, SCRATCH_BYTES
    mov [r11 + TOK_PREV], rax
    add rax, SCRATCH_BYTES
    mov [r11 + TOK_STAMP], rax
    add rax, SCRATCH_BYTES
    mov [r11 + TOK_HEAP], rax
    add rax, HEAP_BYTES
    mov [r11 + TOK_CONCAT], rax
    add rax, CONCAT_BYTES
    mov [r11 + TOK_COPIES], rax
    # copies: each piece + NUL. Entry i takes 8 + len bytes of the file and len + 1 here,
    # and the file's 4-byte header comes first, so the file size always suffices.
    lea rax, [rax + r10 + 15]
    and rax, -16
    ret

# tok_workspace_bytes(rcx = file size, edx = vocab_size) -> rax (contract in tokenizer.inc)
tok_workspace_bytes:
    mov r9d, edx
    lea rax, [r9 - 1]                 # vocab_size 0 wraps to a huge value: refused too
    cmp rax, TOK_MAX_VOCAB - 1
    ja .Lrefuse
    cmp rcx, TOK_MAX_FILE
    ja .Lrefuse
    mov r10, rcx
    sub rsp, TOK_SIZE + 8             # a throwaway struct for carve's stores
    mov r11, rsp
    xor r8d, r8d
    call carve
    add rsp, TOK_SIZE + 8
    add rax, 16                       # room to align an unaligned workspace up to 16
    ret
.Lrefuse:
    xor eax, eax
    ret

# tok_load(rcx = Tokenizer*, rdx = file, r8 = file size, r9d = vocab_size,
#          [rsp+40] = workspace, [rsp+48] = workspace size) -> eax (contract in tokenizer.inc)
.equ LOAD_WS, 144                     # the stack arguments after the 8 pushes and the frame
.equ LOAD_WS_SIZE, 152
.equ LOAD_KEY, 32                     # a byte of scratch in our own frame
tok_load:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov rbx, rcx                      # Tokenizer*
    mov r12, rdx                      # file bytes
    mov r13, r8                       # file size
    mov r14d, r9d                     # vocab_size, zero-extended
    mov dword ptr [rbx + TOK_MAGIC], 0    # not loaded until everything checks out

    mov eax, TOK_E_VOCAB_SIZE
    lea rcx, [r14 - 1]
    cmp rcx, TOK_MAX_VOCAB - 1
    ja .Lout
    mov eax, TOK_E_FILE_SIZE
    cmp r13, TOK_MAX_FILE
    ja .Lout
    mov eax, TOK_E_HEADER
    cmp r13, 4
    jb .Lout
    mov eax, TOK_E_MAX_LEN
    mov ecx, [r12]                    # max_token_length, an int32
    lea edx, [rcx - 1]                # 1..max maps to 0..max-1; 0 and negatives wrap high
    cmp edx, TOK_MAX_TOKEN_LEN - 1
    ja .Lout
    mov r15d, ecx                     # max_token_length

    mov rsi, [rsp + LOAD_WS]
    mov rdi, [rsp + LOAD_WS_SIZE]
    mov eax, TOK_E_WORKSPACE
    test rsi, rsi
    jz .Lout
    lea r8, [rsi + 15]
    and r8, -16
    mov r9, r14
    mov r10, r13
    mov r11, rbx
    call carve
    sub rax, r8                       # bytes from the aligned base
    add rax, 16                       # = tok_workspace_bytes for these arguments
    cmp rdi, rax
    mov eax, TOK_E_WORKSPACE
    jb .Lout
    mov [rbx + TOK_VOCAB_SIZE], r14d
    mov [rbx + TOK_MAX_LEN], r15d
    mov dword ptr [rbx + TOK_BOS_ID], TOK_BOS
    mov dword ptr [rbx + TOK_EOS_ID], TOK_EOS
    mov dword ptr [rbx + TOK_BYTE_ID], TOK_BYTE_BASE
    mov dword ptr [rbx + TOK_UNK_ID], 0
    mov dword ptr [rbx + TOK_ADD_PREFIX], 1
    mov qword ptr [rbx + TOK_TYPES], 0

    # The entries. rsi = file offset (always <= file size), rbp = entry index,
    # rdi = where the next piece copy goes.
    mov rdi, [rbx + TOK_COPIES]
    mov esi, 4
    xor ebp, ebp
.Lentry:
    cmp rbp, r14
    jae .Lentries_done
    mov rax, r13
    sub rax, rsi                      # bytes left in the file
    cmp rax, 8
    jb .Ltruncated
    mov eax, [r12 + rsi]              # score (the f32's bits)
    mov rcx, [rbx + TOK_SCORES]
    mov [rcx + rbp * 4], eax
    movsxd rcx, dword ptr [r12 + rsi + 4]   # length, signed
    add rsi, 8
    test rcx, rcx
    js .Lnegative
    cmp rcx, r15
    ja .Llong
    mov rax, r13
    sub rax, rsi
    cmp rcx, rax
    ja .Ltruncated
    mov rax, [rbx + TOK_PIECES]
    mov [rax + rbp * 8], rdi
    # copy the piece; r9 ends as the index of its first NUL (its C-string length)
    mov r8, rcx
    mov r9, rcx
    xor edx, edx
.Lcopy:
    cmp rdx, r8
    jae .Lcopied
    movzx eax, byte ptr [r12 + rsi]
    mov [rdi + rdx], al
    inc rsi
    test eax, eax
    jnz .Lcopy_next
    cmp rdx, r9
    cmovb r9, rdx
.Lcopy_next:
    inc rdx
    jmp .Lcopy
.Lcopied:
    mov byte ptr [rdi + r8], 0
    lea rdi, [rdi + r8 + 1]
    mov rax, [rbx + TOK_LENS]
    mov [rax + rbp * 4], r9d
    inc rbp
    jmp .Lentry

.Lentries_done:
    mov rcx, rbx
    call tok_finish
    jmp .Lout
.Ltruncated:
    mov eax, TOK_E_TRUNCATED
    jmp .Lout
.Lnegative:
    mov eax, TOK_E_NEGATIVE_LEN
    jmp .Lout
.Llong:
    mov eax, TOK_E_LONG_PIECE
.Lout:
    add rsp, 40
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

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
    call lookup
    mov [rbx + TOK_SPACE_ID], eax
    mov dword ptr [rbx + TOK_MAGIC], TOK_MAGIC_VALUE
    xor eax, eax
    add rsp, 48
    pop r14
    pop rdi
    pop rbx
    ret

# tok_carve(rcx = Tokenizer*, rdx = workspace, r8 = copies bytes, r9d = vocab_size) -> rax
#   (contract in tokenizer.inc)
tok_carve:
    mov r11, rcx
    mov r10, r8
    mov r9d, r9d
    lea r8, [rdx + 15]
    and r8, -16
    call carve
    sub rax, rdx
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

# lookup(rbx = Tokenizer*, r8 = bytes, r9 = length) -> eax = the lowest id whose piece equals
#   the bytes, or -1. Binary search for the first index entry not below the key.
#   Clobbers rax, rcx, rdx, r10, r11 (r8, r9 unchanged).
lookup:
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
    call lookup
.Lout:
    pop rbx
    ret

# pair_lookup(rbx = Tokenizer*, ecx = left token, edx = right token) -> eax = the id of the
#   concatenation of their pieces, or -1; xmm0 = its score when found.
#   Clobbers rax, rcx, rdx, r8-r11, xmm0.
pair_lookup:
    mov r8, [rbx + TOK_CONCAT]
    xor r9d, r9d
    push rdx
    call .Lappend
    pop rcx
    call .Lappend
    call lookup
    test eax, eax
    js .Lnot_found
    mov rcx, [rbx + TOK_SCORES]
    movss xmm0, dword ptr [rcx + rax * 4]
.Lnot_found:
    ret
# .Lappend: append the piece of id ecx (zero-extended) at r8 + r9; r9 += its length.
#   The buffer holds 2 * TOK_MAX_TOKEN_LEN bytes and no piece is longer than half that.
.Lappend:
    mov r10, [rbx + TOK_PIECES]
    mov r10, [r10 + rcx * 8]
    mov r11, [rbx + TOK_LENS]
    mov r11d, [r11 + rcx * 4]
    xor edx, edx
.Lappend_byte:
    cmp rdx, r11
    jae .Lappended
    movzx eax, byte ptr [r10 + rdx]
    mov [r8 + r9], al
    inc r9
    inc rdx
    jmp .Lappend_byte
.Lappended:
    ret

# The merge heap. An entry is 16 bytes: f32 score, dword left node, dword stamp of the left
# node, dword stamp of the right node, when pushed. Entry A comes before entry B when
#   A.score > B.score, or the scores are equal and A.node < B.node,
# which is llama2.c's choice (highest score, leftmost on ties) since nodes keep their text
# order. Only scores above -1e10 are pushed, so no NaN is ever compared. Entries are never
# removed when their pair disappears: a popped entry whose stamps no longer match its nodes
# is stale and skipped (every merge restamps both nodes).

# push_pair(rbx = Tokenizer*, r12 = node p that has a right neighbour, r13 = heap entries):
#   pushes the pair (p, next[p]) if its concatenation is a piece scoring above -1e10;
#   r13 += 1 then. Clobbers rax, rcx, rdx, r8-r11, xmm0-xmm2.
push_pair:
    mov rax, [rbx + TOK_SEQ]
    mov rcx, [rbx + TOK_NEXT]
    movsxd rdx, dword ptr [rcx + r12 * 4]
    mov ecx, [rax + r12 * 4]
    mov edx, [rax + rdx * 4]
    call pair_lookup
    test eax, eax
    js .Lnone
    mov eax, NO_MERGE
    movd xmm1, eax
    comiss xmm0, xmm1
    jbe .Lnone                        # not above -1e10 (or NaN): llama2.c never merges it
    mov rcx, [rbx + TOK_STAMP]
    mov rax, [rbx + TOK_NEXT]
    movsxd rdx, dword ptr [rax + r12 * 4]
    mov r10d, [rcx + rdx * 4]         # stamp of the right node
    mov r9d, [rcx + r12 * 4]          # stamp of the left node
    mov r11, [rbx + TOK_HEAP]
    mov rax, r13                      # the new slot, sifted up
    inc r13
.Lup:
    test rax, rax
    jz .Lplace
    lea rcx, [rax - 1]
    shr rcx, 1                        # parent
    mov rdx, rcx
    shl rdx, 4
    comiss xmm0, dword ptr [r11 + rdx]
    jb .Lplace
    ja .Lparent_down
    cmp r12d, [r11 + rdx + 4]
    jae .Lplace
.Lparent_down:
    movups xmm2, [r11 + rdx]
    mov r8, rax
    shl r8, 4
    movups [r11 + r8], xmm2
    mov rax, rcx
    jmp .Lup
.Lplace:
    shl rax, 4
    movss dword ptr [r11 + rax], xmm0
    mov [r11 + rax + 4], r12d
    mov [r11 + rax + 8], r9d
    mov [r11 + rax + 12], r10d
.Lnone:
    ret

# sift_down(rbx = Tokenizer*, r13 = entries left after taking the top): moves the entry at
#   heap[r13] (the old last) down from the root to its place. Clobbers rax, rcx, rdx,
#   r8-r11, xmm0-xmm2.
sift_down:
    test r13, r13
    jz .Ldone
    mov r11, [rbx + TOK_HEAP]
    mov rax, r13
    shl rax, 4
    movups xmm1, [r11 + rax]          # the entry E being placed
    movss xmm0, dword ptr [r11 + rax]
    mov r8d, [r11 + rax + 4]
    xor eax, eax                      # its slot so far
.Ldown:
    lea rcx, [rax + rax + 1]          # left child
    cmp rcx, r13
    jae .Lput
    lea rdx, [rcx + 1]
    cmp rdx, r13
    jae .Lchild
    mov r9, rcx
    shl r9, 4
    movss xmm2, dword ptr [r11 + r9 + 16]
    comiss xmm2, dword ptr [r11 + r9]
    jb .Lchild
    ja .Lright_child
    mov r10d, [r11 + r9 + 20]
    cmp r10d, [r11 + r9 + 4]
    jae .Lchild
.Lright_child:
    inc rcx
.Lchild:                              # rcx = the child that comes first; before E?
    mov r9, rcx
    shl r9, 4
    comiss xmm0, dword ptr [r11 + r9]
    ja .Lput
    jb .Lchild_up
    cmp r8d, [r11 + r9 + 4]
    jbe .Lput
.Lchild_up:
    movups xmm2, [r11 + r9]
    mov rdx, rax
    shl rdx, 4
    movups [r11 + rdx], xmm2
    mov rax, rcx
    jmp .Ldown
.Lput:
    shl rax, 4
    movups [r11 + rax], xmm1
.Ldone:
    ret

# tok_encode(rcx = Tokenizer*, rdx = text, r8 = length, r9d = flags, [rsp+40] = out int32*,
#            [rsp+48] = capacity) -> eax (contract in tokenizer.inc)
.equ ENC_FLAGS, 32                    # our frame
.equ ENC_OUT, 144                     # the stack arguments after the 8 pushes and the frame
.equ ENC_CAPACITY, 152
tok_encode:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov rbx, rcx                      # Tokenizer*
    mov r12, rdx                      # text
    mov [rsp + ENC_FLAGS], r9d
    mov eax, NEG_NOT_LOADED
    cmp dword ptr [rbx + TOK_MAGIC], TOK_MAGIC_VALUE
    jne .Lout

    # The text is a C string: its length is up to the first NUL. Look at no more than
    # TOK_MAX_TEXT + 1 bytes, enough to tell a text that is too long.
    mov rcx, r8
    mov eax, TOK_MAX_TEXT + 1
    cmp rcx, rax
    cmova rcx, rax
    xor r13d, r13d
.Lstrlen:
    cmp r13, rcx
    jae .Lhave_length
    cmp byte ptr [r12 + r13], 0
    je .Lhave_length
    inc r13
    jmp .Lstrlen
.Lhave_length:
    mov eax, NEG_TEXT_TOO_LONG
    cmp r13, TOK_MAX_TEXT
    ja .Lout

    # r14 = the token sequence (scratch), r15 = its length. At most 2 + TOK_MAX_TEXT.
    mov r14, [rbx + TOK_SEQ]
    xor r15d, r15d
    test byte ptr [rsp + ENC_FLAGS], TOK_ADD_BOS
    jz .Lprefix
    mov ecx, [rbx + TOK_BOS_ID]
    mov eax, NEG_BAD_ID
    cmp ecx, [rbx + TOK_VOCAB_SIZE]
    jae .Lout
    mov [r14], ecx
    inc r15
.Lprefix:
    test r13, r13
    jz .Lmerge
    test byte ptr [rsp + ENC_FLAGS], TOK_NO_PREFIX
    jnz .Lgroups
    cmp dword ptr [rbx + TOK_ADD_PREFIX], 0
    je .Lgroups
    mov eax, NEG_NO_SPACE
    mov ecx, [rbx + TOK_SPACE_ID]
    test ecx, ecx
    js .Lout
    mov [r14 + r15 * 4], ecx          # the dummy prefix
    inc r15
.Lgroups:

    # Groups: a byte and the continuation bytes after it, up to 4 bytes in all.
    xor esi, esi
.Lgroup:
    cmp rsi, r13
    jae .Lmerge
    mov rdi, rsi                      # the group's first byte
    inc rsi
.Lcontinuation:
    cmp rsi, r13
    jae .Lgroup_end
    mov rax, rsi
    sub rax, rdi
    cmp rax, 4
    jae .Lgroup_end
    movzx eax, byte ptr [r12 + rsi]
    and eax, 0xC0
    cmp eax, 0x80
    jne .Lgroup_end
    inc rsi
    jmp .Lcontinuation
.Lgroup_end:
    lea r8, [r12 + rdi]
    mov r9, rsi
    sub r9, rdi
    call lookup
    test eax, eax
    js .Lfallback
    mov [r14 + r15 * 4], eax
    inc r15
    jmp .Lgroup
.Lfallback:                           # not a piece: one <0xXX> token per byte
    movzx eax, byte ptr [r12 + rdi]
    add eax, [rbx + TOK_BYTE_ID]
    cmp dword ptr [rbx + TOK_BYTE_ID], -1
    cmove eax, [rbx + TOK_UNK_ID]     # no byte pieces: UNK
    cmp eax, [rbx + TOK_VOCAB_SIZE]
    jae .Lbad_id
    mov [r14 + r15 * 4], eax
    inc r15
    inc rdi
    cmp rdi, rsi
    jb .Lfallback
    jmp .Lgroup
.Lbad_id:
    mov eax, NEG_BAD_ID
    jmp .Lout

    # Merges. The tokens become a linked list of nodes (their indices in TOK_SEQ, which
    # keep the text order); every pair goes on the heap; the best pair merges into its left
    # node, the right node leaves the list, and the two pairs around the merged node are
    # pushed. rbp = the next fresh stamp, r13 = heap entries, r15 = live tokens.
.Lmerge:
    test r15, r15
    jz .Lmerged
    mov rax, [rbx + TOK_NEXT]
    mov rcx, [rbx + TOK_PREV]
    mov rdx, [rbx + TOK_STAMP]
    xor r8d, r8d
.Llink:
    lea r9d, [r8 + 1]
    mov [rax + r8 * 4], r9d
    lea r9d, [r8 - 1]                 # node 0 gets -1: no previous
    mov [rcx + r8 * 4], r9d
    mov [rdx + r8 * 4], r8d           # stamps start as the node numbers: all distinct
    inc r8
    cmp r8, r15
    jb .Llink
    mov dword ptr [rax + r15 * 4 - 4], -1    # the last node has no next
    mov rbp, r15
    xor r13d, r13d
    xor r12d, r12d
.Linitial_pairs:
    lea rax, [r12 + 1]
    cmp rax, r15
    jae .Lpop
    call push_pair
    inc r12
    jmp .Linitial_pairs
.Lpop:
    test r13, r13
    jz .Lmerged
    mov r11, [rbx + TOK_HEAP]
    mov esi, [r11 + 4]                # the best entry: left node, stamps
    mov r8d, [r11 + 8]
    mov r9d, [r11 + 12]
    dec r13
    push r8
    push r9
    call sift_down
    pop r9
    pop r8
    mov rax, [rbx + TOK_STAMP]
    cmp r8d, [rax + rsi * 4]
    jne .Lpop                         # stale: the left node changed since
    mov rcx, [rbx + TOK_NEXT]
    movsxd rdi, dword ptr [rcx + rsi * 4]    # right node
    test rdi, rdi
    js .Lpop
    cmp r9d, [rax + rdi * 4]
    jne .Lpop                         # stale: the right node changed since
    mov ecx, [r14 + rsi * 4]
    mov edx, [r14 + rdi * 4]
    call pair_lookup
    test eax, eax
    js .Lpop                          # cannot happen (same tokens as when pushed)
    mov [r14 + rsi * 4], eax          # the left node becomes the merged piece
    mov rax, [rbx + TOK_STAMP]
    mov [rax + rsi * 4], ebp
    inc ebp
    mov [rax + rdi * 4], ebp          # the right node leaves: no entry may match it again
    inc ebp
    mov rcx, [rbx + TOK_NEXT]
    movsxd rdx, dword ptr [rcx + rdi * 4]
    mov [rcx + rsi * 4], edx
    test rdx, rdx
    js .Lunlinked
    mov rcx, [rbx + TOK_PREV]
    mov [rcx + rdx * 4], esi
.Lunlinked:
    dec r15
    mov rcx, [rbx + TOK_PREV]         # the pair on the merged node's left
    movsxd r12, dword ptr [rcx + rsi * 4]
    test r12, r12
    js .Lright_pair
    call push_pair
.Lright_pair:                         # and the one on its right
    mov rcx, [rbx + TOK_NEXT]
    cmp dword ptr [rcx + rsi * 4], 0
    jl .Lpop
    mov r12, rsi
    call push_pair
    jmp .Lpop

.Lmerged:
    mov rdx, r15                      # tokens to write
    test byte ptr [rsp + ENC_FLAGS], TOK_ADD_EOS
    jz .Lcheck_capacity
    mov eax, NEG_BAD_ID
    mov ecx, [rbx + TOK_EOS_ID]
    cmp ecx, [rbx + TOK_VOCAB_SIZE]
    jae .Lout
    inc rdx
.Lcheck_capacity:
    mov eax, NEG_CAPACITY
    cmp rdx, [rsp + ENC_CAPACITY]
    ja .Lout
    mov rdi, [rsp + ENC_OUT]
    mov rcx, [rbx + TOK_NEXT]
    xor eax, eax                      # node 0 is never merged away: the list's head
    mov r8, r15
.Lwrite:
    test r8, r8
    jz .Lwritten_list
    mov r9d, [r14 + rax * 4]
    mov [rdi], r9d
    add rdi, 4
    movsxd rax, dword ptr [rcx + rax * 4]
    dec r8
    jmp .Lwrite
.Lwritten_list:
    cmp rdx, r15
    je .Lwritten
    mov ecx, [rbx + TOK_EOS_ID]
    mov [rdi], ecx
.Lwritten:
    mov eax, edx
.Lout:
    add rsp, 40
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
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

# tok_error_text(ecx = code) -> rax (contract in tokenizer.inc)
tok_error_text:
    mov eax, ecx
    neg eax
    cmovs eax, ecx                    # |code| (INT_MIN stays negative: unknown)
    cmp eax, TOK_E_LAST
    jbe .Lfind
    mov eax, TOK_E_LAST + 1           # the generic message
.Lfind:
    lea rdx, [rip + message_limits]
    mov r8, [rdx + rax * 8]
    lea rdx, [rip + messages]
.Lskip_message:
    test eax, eax
    jz .Lfound
.Lskip_byte:
    movzx ecx, byte ptr [rdx]
    inc rdx
    test ecx, ecx
    jnz .Lskip_byte
    dec eax
    jmp .Lskip_message
.Lfound:
    mov rax, rdx
    mov rdx, r8
    ret
