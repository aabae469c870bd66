# SentencePiece (`llama`) vocabularies from GGUF arrays: tok_build fills tokenizer.s's
# Tokenizer from a VOCAB that vocab_build has validated, so the llama2.c-exact encoder and
# decoder (tok_encode.s, tok_index.s) serve GGUF models too. Pure core: no UEFI, no printing.
# Contract: tokenizer.inc (tok_build).
.include "tokenizer_layouts.inc"
.include "tokenizer.inc"

.section .text
.global tok_build

# tok_build(rcx = Tokenizer*, rdx = VOCAB*, r8 = VOCAB_SOURCE*, r9 = workspace,
#           [rsp+40] = workspace size) -> eax = VOCAB_OK or a VOCAB_E_* code
.equ TB_WS_SIZE, 144                  # the stack argument after 8 pushes and the frame
.equ TB_KEY, 32                       # frame: "<0xXX>" being looked for
tok_build:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov rbx, rcx
    mov r12, rdx                      # VOCAB*
    mov r13, r8                       # VOCAB_SOURCE*
    mov dword ptr [rbx + TOK_MAGIC], 0
    mov r14d, [r12 + VOCAB_N_VOCAB]
    # copies bytes = sum of text lengths + one NUL each
    mov rax, [r12 + VOCAB_TEXT_LEN]
    xor r8d, r8d
    xor ecx, ecx
.Lsum:
    mov edx, [rax + rcx * 4]
    lea r8, [r8 + rdx + 1]
    inc rcx
    cmp rcx, r14
    jb .Lsum
    mov rcx, rbx
    mov rdx, r9
    mov r9d, r14d
    call tok_carve
    cmp rax, [rsp + TB_WS_SIZE]
    mov eax, VOCAB_E_WORKSPACE
    ja .Lout
    mov [rbx + TOK_VOCAB_SIZE], r14d
    mov eax, [r12 + VOCAB_BOS_ID]
    mov [rbx + TOK_BOS_ID], eax
    mov eax, [r12 + VOCAB_EOS_ID]
    mov [rbx + TOK_EOS_ID], eax
    mov eax, [r12 + VOCAB_UNK_ID]
    mov [rbx + TOK_UNK_ID], eax
    mov eax, [r12 + VOCAB_ADD_SPACE_PREFIX]
    mov [rbx + TOK_ADD_PREFIX], eax
    mov rax, [r12 + VOCAB_TYPES]
    mov [rbx + TOK_TYPES], rax

    # pieces: U+2581 (E2 96 81) -> " "; C-string length up to the first NUL; scores
    mov rdi, [rbx + TOK_COPIES]
    xor ebp, ebp                      # id
    mov r15d, 1                       # the longest piece
.Lpiece:
    cmp rbp, r14
    jae .Lbytes
    mov rax, [r13 + VOCAB_SOURCE_SCORES]
    mov eax, [rax + rbp * 4]
    mov rcx, [rbx + TOK_SCORES]
    mov [rcx + rbp * 4], eax
    mov rax, [rbx + TOK_PIECES]
    mov [rax + rbp * 8], rdi
    mov rax, [r12 + VOCAB_TEXT]
    mov rsi, [rax + rbp * 8]
    mov rax, [r12 + VOCAB_TEXT_LEN]
    mov r8d, [rax + rbp * 4]
    add r8, rsi                       # end of the text
    mov r9, rdi                       # start of the copy
    mov r10, -1                       # the copy's first NUL, when any
.Lbyte:
    cmp rsi, r8
    jae .Lcopied
    movzx eax, byte ptr [rsi]
    cmp eax, 0xE2
    jne .Lplain
    lea rcx, [rsi + 3]
    cmp rcx, r8
    ja .Lplain
    cmp word ptr [rsi + 1], 0x8196
    jne .Lplain
    mov byte ptr [rdi], 0x20
    inc rdi
    add rsi, 3
    jmp .Lbyte
.Lplain:
    test eax, eax
    jnz .Lstore
    cmp r10, -1
    jne .Lstore
    mov r10, rdi
.Lstore:
    mov [rdi], al
    inc rdi
    inc rsi
    jmp .Lbyte
.Lcopied:
    mov byte ptr [rdi], 0
    cmp r10, -1
    cmove r10, rdi
    sub r10, r9                       # the C-string length
    mov rax, [rbx + TOK_LENS]
    mov [rax + rbp * 4], r10d
    cmp r10, r15
    cmova r15, r10
    inc rdi
    inc rbp
    jmp .Lpiece

.Lbytes:                              # <0x00>..<0xFF>: absent, or consecutive ids
    mov [rbx + TOK_MAX_LEN], r15d
    mov dword ptr [rbx + TOK_BYTE_ID], -1
    mov dword ptr [rsp + TB_KEY], 0x78303C    # "<0x"
    xor esi, esi                      # byte
.Lbyte_piece:
    mov eax, esi
    shr eax, 4
    call hex
    mov [rsp + TB_KEY + 3], al
    mov eax, esi
    and eax, 15
    call hex
    mov [rsp + TB_KEY + 4], al
    mov byte ptr [rsp + TB_KEY + 5], 0x3E     # ">"
    mov rcx, r12
    lea rdx, [rsp + TB_KEY]
    mov r8d, 6
    call vocab_find
    test esi, esi
    jnz .Lnext_byte
    test eax, eax
    js .Lfinish                       # no <0x00>: no byte pieces
    mov [rbx + TOK_BYTE_ID], eax
    jmp .Lcount
.Lnext_byte:
    mov ecx, [rbx + TOK_BYTE_ID]
    add ecx, esi
    cmp eax, ecx
    mov eax, VOCAB_E_BYTE_TOKENS
    jne .Lout
.Lcount:
    inc esi
    cmp esi, 256
    jb .Lbyte_piece
.Lfinish:
    mov rcx, rbx
    call tok_finish
    xor eax, eax
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

# hex(eax = 0..15) -> al = its upper-case hex digit (llama.cpp's "<0x0A>" spelling).
hex:
    add eax, 0x30
    cmp eax, 0x39
    jbe .Ldone
    add eax, 7
.Ldone:
    ret
