# The SentencePiece core's encoder: tok_encode, llama2.c's encode exactly (run.c), for
# tokenizer.bin and GGUF `llama` vocabularies alike. Piece lookups: tok_index.s's tok_lookup.
# Contracts and struct layout: tokenizer.inc. Pure core: no UEFI, no printing.
#
# How it works. tok_encode does not rescan every pair after every merge as llama2.c does
# (O(n^2) lookups: seconds for a long paste): the tokens form a linked list, the mergeable
# pairs sit in a max-heap ordered by (score, then leftmost), and after a merge only the two
# pairs touching the merged token are new. The heap's order is llama2.c's rule (highest
# score strictly above -1e10, the leftmost on ties), so the ids are identical.
#
# Private helpers (file-local names) use their own register conventions, stated with each;
# they never call out, so stack alignment inside them does not matter.
.include "tokenizer.inc"

.equ NO_MERGE, 0xD01502F9           # -1e10 as f32: llama2.c's starting best score
# tok_encode's negated codes (keystone takes no "-SYMBOL" operand, an .equ it does)
.equ NEG_CAPACITY, -TOK_E_CAPACITY
.equ NEG_TEXT_TOO_LONG, -TOK_E_TEXT_TOO_LONG
.equ NEG_NO_SPACE, -TOK_E_NO_SPACE
.equ NEG_BAD_ID, -TOK_E_BAD_ID
.equ NEG_NOT_LOADED, -TOK_E_NOT_LOADED

.section .text
.global tok_encode

# pair_lookup(rbx = Tokenizer*, ecx = left token, edx = right token) -> eax = the id of the
#   concatenation of their pieces, or -1; xmm0 = its score when found. Entered with rsp a
#   multiple of 16 (8 below the ABI's entry alignment; both callers see to it), so that its
#   call of tok_lookup (global, tok_index.s) meets the ABI's. Clobbers rax, rcx, rdx, r8-r11,
#   xmm0.
pair_lookup:
    mov r8, [rbx + TOK_CONCAT]
    xor r9d, r9d
    push rdx
    call .Lappend
    pop rcx
    call .Lappend
    call tok_lookup
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
    call tok_lookup
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
    sub rsp, 8                        # pair_lookup's entry alignment (see there)
    call pair_lookup
    add rsp, 8
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
