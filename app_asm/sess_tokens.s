# The session's tokenizer, whichever kind the model has: the vocabulary embedded in a GGUF
# (vocab.s: SentencePiece or byte-level BPE, special tokens), or a llama2.c tokenizer.bin
# (tokenizer.s). Everything that encodes or decodes for the chat goes through here, so no
# caller needs to know which one is loaded.
#
#   sess_vocab_load() -> eax = 1 loaded, 0 refused (one line said why), -1 the model's file
#       carries no vocabulary (the caller looks for a tokenizer file). Only for a GGUF model
#       (the GGUF still open in sess_gguf). Allocates the workspace (freed by sess_vocab_free).
#   sess_vocab_free(): frees it; the session has no GGUF vocabulary afterwards.
#   sess_tok_load() -> eax = 1 when the loaded model (sess_model) has its tokenizer: a GGUF's
#       own vocabulary (sess_vocab_load) when its file has one, else a tokenizer file:
#       set_tokenizer, else (or when that one fails to load, after the line saying why)
#       tok<vocab>.bin, else tokenizer.bin. One line names the tokenizer loaded, or says why
#       none was. A file's workspace goes to sess_tok_ws / sess_tok_ws_size (the session
#       frees it with the model).
#   sess_encode(rcx = ignored, rdx = UTF-8 text, r8 = length, r9d = flags, [rsp+40] = out
#       int32*, [rsp+48] = capacity) -> eax = tokens or a negated error code. flags:
#       TOK_ADD_BOS (1: a GGUF vocabulary adds it only when its add_bos_token says so), SESS_PARSE_SPECIAL (8: control tokens' texts become their ids; only
#       for a GGUF vocabulary, for text the program builds itself, e.g. chat templates) and
#       SESS_PROTECT (16: ... except inside the ranges template.s recorded for the text it
#       rendered last, the conversation's own words; the parse_special setting turns this
#       off, so typed special-token texts become ids too).
#   sess_decode(rcx = ignored, edx = previous token, r8d = token, r9 = u64* length or 0) ->
#       rax = the piece's bytes (control tokens decode to nothing).
#   sess_token_id(rcx = text, rdx = length) -> eax = the id of the token whose text that is,
#       or -1 (a GGUF vocabulary: any token; tokenizer.bin: tok_piece_id).
#   sess_tok_ready() -> eax = 1 when a tokenizer is loaded.
#   sess_encode_error(ecx = the code sess_encode returned, negated or not) -> rax = its line
#       as a format for rt_printf, rdx = the number its %u stands for (tok_error_text's).
.include "uefi.inc"
.include "tokenizer.inc"
.include "tokenizer_layouts.inc"
.include "session.inc"
.include "model.inc"

.equ SESS_PARSE_SPECIAL, 8
.equ SESS_PROTECT, 16

.section .bss
.balign 16
.global sess_vocab, sess_vocab_loaded, vocab_ws_size
sess_vocab:        .skip VOCAB_SIZE
sess_vocab_source: .skip VOCAB_SOURCE_SIZE
.balign 8
sess_vocab_loaded: .skip 4
.balign 8
vocab_ws:          .skip 8
vocab_ws_size:     .skip 8
tok_file_size:     .skip 8
tok_name:          .skip SESSION_NAME_MAX   # "tok<vocab>.bin"

.section .rdata
s_tok_embedded:   .asciz "tokenizer: the model's own ("
s_bpe:            .asciz "byte-level BPE, "
s_spm:            .asciz "SentencePiece, "
s_tokens:         .asciz " tokens)\n"
s_nl:             .asciz "\n"
s_no_room:        .asciz "tokenizer: not enough memory for the vocabulary\n"
s_vocab_big:      .asciz "tokenizer: the vocabulary has more tokens than the model's embeddings\n"
s_cannot_open:    .asciz "cannot open the file"
s_colon:          .asciz ": "
s_tok_none:       .asciz "no tokenizer found: put tokenizer.bin (or tok<vocab>.bin) beside the model\n"
s_tok_fallback:   .asciz "trying the tokenizer found by name instead (tok<vocab>.bin, tokenizer.bin)\n"
s_tok_ok:         .asciz "tokenizer: "
s_tok_prefix:     .asciz "tokenizer "
s_tokenizer_bin:  .asciz "tokenizer.bin"

.section .text
.global sess_vocab_load, sess_vocab_free, sess_encode, sess_decode, sess_token_id
.global sess_tok_ready, sess_encode_error, sess_tok_load
.extern sess_gguf, sess_model, sess_tok, vocab_source_from_gguf, vocab_workspace_bytes
.extern vocab_build, vocab_error_text, vocab_encode, vocab_decode, vocab_find, vocab_message
.extern tok_encode, tok_decode, tok_piece_id, tok_error_text
.extern rt_alloc_pages, rt_free_pages, rt_print_cstr, rt_print_u64
.extern template_spans, template_n_spans, set_parse_special, set_tokenizer
.extern sess_tok_ws, sess_tok_ws_size, vol_read_file, vol_free_file, tok_workspace_bytes
.extern tok_load, print_file_problem, name_icmp, rt_printf

# sess_vocab_load() -> eax = 1, 0 or -1
sess_vocab_load:
    push rbx
    sub rsp, 32
    call sess_vocab_free
    lea rcx, [rip + sess_vocab_source]
    lea rdx, [rip + sess_gguf]
    call vocab_source_from_gguf
    test eax, eax
    jz .Lnone
    lea rcx, [rip + sess_vocab_source]
    call vocab_workspace_bytes
    test rax, rax
    jz .Lbuild                        # (vocab_build then says what is wrong with the source)
    mov [rip + vocab_ws_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lno_room
    mov [rip + vocab_ws], rax
.Lbuild:
    lea rcx, [rip + sess_vocab]
    lea rdx, [rip + sess_vocab_source]
    mov r8, [rip + vocab_ws]
    mov r9, [rip + vocab_ws_size]
    call vocab_build
    test eax, eax
    jnz .Lrefused
    mov eax, [rip + sess_vocab + VOCAB_N_VOCAB]
    cmp eax, [rip + sess_model + MODEL_VOCAB_SIZE]
    ja .Ltoo_big
    mov dword ptr [rip + sess_vocab_loaded], 1
    lea rcx, [rip + s_tok_embedded]   # "tokenizer: the model's own (byte-level BPE, N tokens)"
    call rt_print_cstr
    lea rcx, [rip + s_bpe]
    cmp dword ptr [rip + sess_vocab + VOCAB_KIND], VOCAB_KIND_BPE
    je .Lkind
    lea rcx, [rip + s_spm]
.Lkind:
    call rt_print_cstr
    mov ecx, [rip + sess_vocab + VOCAB_N_VOCAB]
    call rt_print_u64
    lea rcx, [rip + s_tokens]
    call rt_print_cstr
    mov eax, 1
    jmp .Lout
.Lrefused:
    lea rcx, [rip + sess_vocab]       # its one line, with the offending value
    call vocab_error_text
    mov rcx, rax
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lfail
.Ltoo_big:
    lea rcx, [rip + s_vocab_big]
    call rt_print_cstr
    jmp .Lfail
.Lno_room:
    lea rcx, [rip + s_no_room]
    call rt_print_cstr
.Lfail:
    call sess_vocab_free
    xor eax, eax
    jmp .Lout
.Lnone:
    mov eax, -1
.Lout:
    add rsp, 32
    pop rbx
    ret

# sess_vocab_free()
sess_vocab_free:
    sub rsp, 40
    mov dword ptr [rip + sess_vocab_loaded], 0
    mov dword ptr [rip + sess_vocab + VOCAB_MAGIC], 0
    mov rcx, [rip + vocab_ws]
    test rcx, rcx
    jz .Lout
    mov rdx, [rip + vocab_ws_size]
    call rt_free_pages
    mov qword ptr [rip + vocab_ws], 0
.Lout:
    mov qword ptr [rip + vocab_ws_size], 0
    add rsp, 40
    ret

# build_tok_name(): tok_name = "tok<vocab>.bin"
build_tok_name:
    push rdi
    lea rdi, [rip + tok_name]
    mov dword ptr [rdi], 0x006B6F74   # "tok\0"
    add rdi, 3
    mov eax, [rip + sess_model + MODEL_VOCAB_SIZE]
    sub rsp, 16                       # digits, reversed
    xor ecx, ecx
    mov r8d, 10
.Ldigit:
    xor edx, edx
    div r8d
    add dl, '0'
    mov [rsp + rcx], dl
    inc ecx
    test eax, eax
    jnz .Ldigit
.Lcopy:
    dec ecx
    mov al, [rsp + rcx]
    mov [rdi], al
    inc rdi
    test ecx, ecx
    jnz .Lcopy
    add rsp, 16
    mov dword ptr [rdi], 0x6E69622E   # ".bin"
    mov byte ptr [rdi + 4], 0
    pop rdi
    ret

# try_tokenizer(rcx = name) -> eax = 1 loaded, 0 failed (a line printed), -1 no such file
try_tokenizer:
    push rbx
    push rsi
    push rdi
    sub rsp, 48
    mov rbx, rcx
    lea rdx, [rip + tok_file_size]
    call vol_read_file
    test rax, rax
    jz .Lmissing
    mov rsi, rax                      # file bytes
    mov rcx, [rip + tok_file_size]
    mov edx, [rip + sess_model + MODEL_VOCAB_SIZE]
    call tok_workspace_bytes
    test rax, rax
    jz .Lfree_fail_code
    mov [rip + sess_tok_ws_size], rax
    mov rcx, rax
    call rt_alloc_pages
    test rax, rax
    jz .Lfree_fail_code
    mov [rip + sess_tok_ws], rax
    lea rcx, [rip + sess_tok]
    mov rdx, rsi
    mov r8, [rip + tok_file_size]
    mov r9d, [rip + sess_model + MODEL_VOCAB_SIZE]
    mov [rsp + 32], rax
    mov rax, [rip + sess_tok_ws_size]
    mov [rsp + 40], rax
    call tok_load
    mov edi, eax
    mov rcx, rsi                      # the file is copied into the workspace: free it
    mov rdx, [rip + tok_file_size]
    call vol_free_file
    test edi, edi
    jnz .Lbad
    lea rcx, [rip + s_tok_ok]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    mov eax, 1
    jmp .Lout
.Lfree_fail_code:
    mov rcx, rsi
    mov rdx, [rip + tok_file_size]
    call vol_free_file
    mov edi, TOK_E_WORKSPACE
.Lbad:
    lea rcx, [rip + s_tok_prefix]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    mov ecx, edi
    call tok_error_text               # a format whose %u is rdx
    mov rcx, rax
    call rt_printf
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    xor eax, eax
    jmp .Lout
.Lmissing:
    mov eax, -1
.Lout:
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
    ret

# sess_tok_load() -> eax = 1 if loaded
sess_tok_load:
    sub rsp, 40
    cmp dword ptr [rip + sess_model + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Lfiles
    call sess_vocab_load              # the model's own vocabulary, when its file has one
    cmp eax, -1
    jne .Lout
.Lfiles:
    lea rcx, [rip + set_tokenizer]
    cmp byte ptr [rcx], 0
    je .Lauto
    call try_tokenizer
    cmp eax, 1
    je .Lout
    cmp eax, -1
    jne .Lfall_back
    lea rcx, [rip + s_tok_prefix]
    lea rdx, [rip + set_tokenizer]
    lea r8, [rip + s_cannot_open]
    call print_file_problem
.Lfall_back:
    lea rcx, [rip + s_tok_fallback]
    call rt_print_cstr
.Lauto:
    call build_tok_name
    lea rcx, [rip + tok_name]         # (not the configured file again)
    lea rdx, [rip + set_tokenizer]
    call name_icmp
    test eax, eax
    jz .Lby_name
    lea rcx, [rip + tok_name]
    call try_tokenizer
    cmp eax, 1
    je .Lout
.Lby_name:
    lea rcx, [rip + s_tokenizer_bin]
    lea rdx, [rip + set_tokenizer]
    call name_icmp
    test eax, eax
    jz .Lnone
    lea rcx, [rip + s_tokenizer_bin]
    call try_tokenizer
    cmp eax, 1
    je .Lout
    cmp eax, -1
    jne .Lout
    lea rcx, [rip + s_tokenizer_bin]
    call try_tokenizer
    cmp eax, -1
    jne .Lout
.Lnone:
    lea rcx, [rip + s_tok_none]
    call rt_print_cstr
    xor eax, eax
.Lout:
    cmp eax, 1
    sete al
    movzx eax, al
    add rsp, 40
    ret

# sess_encode(rcx, rdx = text, r8 = length, r9d = flags, [rsp+40] = out, [rsp+48] = cap)
sess_encode:
    cmp dword ptr [rip + sess_vocab_loaded], 0
    je .Lbin
    mov eax, r9d                      # TOK_ADD_BOS is VOCAB_ENCODE_BOS, when the vocabulary
    and eax, TOK_ADD_BOS              # wants a BOS at all (tokenizer.ggml.add_bos_token)
    cmp dword ptr [rip + sess_vocab + VOCAB_ADD_BOS], 0
    jne .Lbos
    xor eax, eax
.Lbos:
    test r9d, SESS_PARSE_SPECIAL
    jz .Lflags
    or eax, VOCAB_PARSE_SPECIAL
    test r9d, SESS_PROTECT
    jz .Lflags
    cmp dword ptr [rip + set_parse_special], 0
    jne .Lflags                       # the user asked for typed specials to count
    or eax, VOCAB_ENCODE_PROTECT
    lea r10, [rip + template_spans]
    mov [rip + sess_vocab + VOCAB_PROTECT], r10
    mov r10d, [rip + template_n_spans]
    mov [rip + sess_vocab + VOCAB_N_PROTECT], r10d
.Lflags:
    mov r9d, eax
    lea rcx, [rip + sess_vocab]
    jmp vocab_encode                  # (tail calls: the stack arguments stay where they are)
.Lbin:
    and r9d, TOK_ADD_BOS | TOK_ADD_EOS | TOK_NO_PREFIX
    lea rcx, [rip + sess_tok]
    jmp tok_encode

# sess_decode(rcx, edx = previous, r8d = token, r9 = length out or 0)
sess_decode:
    cmp dword ptr [rip + sess_vocab_loaded], 0
    je .Lbin
    lea rcx, [rip + sess_vocab]
    jmp vocab_decode
.Lbin:
    lea rcx, [rip + sess_tok]
    jmp tok_decode

# sess_token_id(rcx = text, rdx = length) -> eax = id or -1
sess_token_id:
    cmp dword ptr [rip + sess_vocab_loaded], 0
    je .Lbin
    mov r8, rdx
    mov rdx, rcx
    lea rcx, [rip + sess_vocab]
    jmp vocab_find
.Lbin:
    mov r8, rdx
    mov rdx, rcx
    lea rcx, [rip + sess_tok]
    jmp tok_piece_id

# sess_tok_ready() -> eax = 1 when a tokenizer is loaded
sess_tok_ready:
    mov eax, 1
    cmp dword ptr [rip + sess_vocab_loaded], 0
    jne .Lout
    xor eax, eax
    cmp dword ptr [rip + sess_tok + TOK_MAGIC], TOK_MAGIC_VALUE
    sete al
.Lout:
    ret

# sess_encode_error(ecx = code or its negation) -> rax = the line as a format, rdx = its %u
sess_encode_error:
    cmp dword ptr [rip + sess_vocab_loaded], 0
    je .Lbin
    sub rsp, 40
    call vocab_message
    xor edx, edx                      # (its lines name no number)
    add rsp, 40
    ret
.Lbin:
    jmp tok_error_text
