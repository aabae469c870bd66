# The REPL's tokenizer commands (commands.s's table): /tokenize TEXT prints token ids,
# /detokenize ID... prints their text, both with the session's tokenizer (sess_tokens.s).
# Handlers: rcx = arguments, rdx = length, r8 = table entry (commands.s).
.include "runtime.inc"
.include "tokenizer.inc"

.section .rdata
s_no_tok:      .asciz "no tokenizer loaded\n"
s_bad_ids:     .asciz "usage: /detokenize ID... (decimal token ids)\n"
s_space:       .asciz " "
s_nl:          .asciz "\n"

.section .text
.global cmd_tokenize, cmd_detokenize
.extern rt_printf, rt_print_cstr, rt_print_utf8, rt_print_u64, parse_uint
.extern sess_prompt_buf, sess_encode, sess_encode_error, sess_decode, sess_tok_ready, set_parse_special

# /tokenize TEXT: token ids of TEXT without BOS, space-separated
cmd_tokenize:
    push rbx
    push rsi
    push rdi
    sub rsp, 48
    mov rsi, rcx
    mov rdi, rdx
    call sess_tok_ready
    test eax, eax
    jz .Lno_tok
    mov rax, [rip + sess_prompt_buf]
    mov [rsp + 32], rax
    mov qword ptr [rsp + 40], TOK_SCRATCH_SLOTS
    mov rdx, rsi
    mov r8, rdi
    xor r9d, r9d                      # typed text: special tokens are plain text,
    cmp dword ptr [rip + set_parse_special], 0
    je .Lplain
    mov r9d, 8                        # unless parse_special is on (SESS_PARSE_SPECIAL)
.Lplain:
    call sess_encode
    test eax, eax
    js .Lerror
    mov edi, eax
    xor ebx, ebx
.Lid:
    cmp ebx, edi
    jae .Lend
    test ebx, ebx
    jz .Lfirst
    lea rcx, [rip + s_space]
    call rt_print_cstr
.Lfirst:
    mov rax, [rip + sess_prompt_buf]
    mov ecx, [rax + rbx * 4]
    call rt_print_u64
    inc ebx
    jmp .Lid
.Lend:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lout
.Lerror:
    mov ecx, eax
    call sess_encode_error            # a format whose %u is rdx
    mov rcx, rax
    call rt_printf
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lout
.Lno_tok:
    lea rcx, [rip + s_no_tok]
    call rt_print_cstr
.Lout:
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
    ret


# /detokenize ID...: the pieces of the ids, each decoded after the one before it (the first
# after none), printed as generation prints them, then a newline. Every word must be a
# decimal below 2^32 (else one usage line, nothing decoded); ids past the vocab print nothing.
cmd_detokenize:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    sub rsp, 56                       # shadow space, [rsp+32] word end, [rsp+40] a u64 out
    mov rsi, rcx
    mov rdi, rdx
    call sess_tok_ready
    test eax, eax
    jz .Lno_tok
    xor r13d, r13d                    # pass 0 checks every word, pass 1 prints
.Lpass:
    mov r12d, -1                      # the previous token: none
    xor ebx, ebx                      # offset in the arguments
    xor r14d, r14d                    # words seen
.Lword:
    cmp rbx, rdi
    jae .Lpass_done
    movzx eax, byte ptr [rsi + rbx]
    cmp eax, 0x20
    je .Lblank
    cmp eax, 0x09
    jne .Lstart
.Lblank:
    inc rbx
    jmp .Lword
.Lstart:
    mov rdx, rbx                      # find the word's end
.Lend_word:
    cmp rdx, rdi
    jae .Lhave_word
    movzx eax, byte ptr [rsi + rdx]
    cmp eax, 0x20
    je .Lhave_word
    cmp eax, 0x09
    je .Lhave_word
    inc rdx
    jmp .Lend_word
.Lhave_word:
    mov [rsp + 32], rdx
    lea rcx, [rsi + rbx]
    sub rdx, rbx
    lea r8, [rsp + 40]
    call parse_uint
    mov rbx, [rsp + 32]
    test eax, eax
    jz .Lbad
    mov r8, [rsp + 40]
    mov rax, 0xFFFFFFFF
    cmp r8, rax
    ja .Lbad
    inc r14d
    test r13d, r13d
    jz .Lword
    mov edx, r12d
    mov r12d, r8d                     # this id is the next one's previous
    lea r9, [rsp + 40]
    call sess_decode
    mov rcx, rax
    mov rdx, [rsp + 40]
    call rt_print_utf8
    jmp .Lword
.Lpass_done:
    test r13d, r13d
    jnz .Lprinted
    test r14d, r14d
    jz .Lbad
    mov r13d, 1
    jmp .Lpass
.Lprinted:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lout
.Lbad:
    lea rcx, [rip + s_bad_ids]
    call rt_print_cstr
    jmp .Lout
.Lno_tok:
    lea rcx, [rip + s_no_tok]
    call rt_print_cstr
.Lout:
    add rsp, 56
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

