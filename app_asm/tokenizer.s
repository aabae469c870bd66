# llama2.c's tokenizer.bin: load and validate the file into a Tokenizer (tok_load), the one
# workspace layout (carve, for tok_workspace_bytes, tok_load and tok_carve) and the status
# messages (tok_error_text). What serves the loaded pieces is the SentencePiece core, shared
# with GGUF vocabularies (spm.s): the sorted index, lookups and decode (tok_index.s) and
# llama2.c's encoder (tok_encode.s). Contracts, struct layout and status codes: tokenizer.inc.
#
# How it works. tok_load copies every piece (NUL-terminated) into the workspace, records its
# C-string length and score, then tok_finish (tok_index.s) sorts the index and marks the
# struct loaded. Pure core: no UEFI, no printing.
#
# Private helpers (file-local names) use their own register conventions, stated with each;
# they never call out, so stack alignment inside them does not matter.
.include "tokenizer.inc"

.equ SCRATCH_BYTES, TOK_SCRATCH_SLOTS * 4          # one encode scratch array (16-multiple)
.equ HEAP_BYTES, TOK_SCRATCH_SLOTS * 48            # 3 entries of 16 bytes per token
.equ CONCAT_BYTES, TOK_MAX_TOKEN_LEN * 2 + 16      # the pair-concatenation buffer

.section .rdata
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
.global tok_workspace_bytes, tok_load, tok_error_text, tok_carve

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
