# /model_info for a GGUF file: reads the whole file (the GGUF format puts nothing at a fixed
# place, and the reader checks every tensor against the file), opens it, fills a Model with
# the binder's config step, and prints what a user wants to know before loading it:
#
#   NAME: 93.81 MiB, GGUF v3, llama "SmolLM2 135M Instruct", 134.52M params
#     dim 576, hidden 1536, layers 30, heads 9/3, vocab 49152, seq_len 8192, rope base 100000
#     tensors: 61 F32, 210 Q4_1, 1 Q8_0
#     tokenizer: gpt2 (smollm), chat template: yes
#
# or the one line that says why the program cannot run it. The file is freed again.
#   gguf_model_info(rcx = name (UTF-8, NUL-terminated), rdx = a Model* to fill) -> eax = 1 when
#       the file is a model this program can run.
.include "uefi.inc"
.include "model.inc"

.section .bss
.balign 8
info_gguf:        .skip GGUF_SIZE
info_tensor:      .skip TENSOR_SIZE
info_value:       .skip GGUF_VALUE_SIZE
info_counts:      .skip 4 * GGML_TYPE_COUNT
info_size:        .skip 8
info_err:         .skip 256

.section .rdata
s_head:           .asciz "%s: %h MiB, GGUF v%u, %.*s"
s_name:           .asciz " \"%.*s\""
s_params:         .asciz ", %hM params\n"
s_shape:          .asciz "  dim %u, hidden %u, layers %u, heads %u/%u, vocab %u, seq_len %u, rope base %u\n"
s_tensors:        .asciz "  tensors:"
s_count:          .asciz " %u %s"
s_count_more:     .asciz ", %u %s"
s_nl:             .asciz "\n"
s_tok:            .asciz "  tokenizer: %.*s"
s_pre:            .asciz " (%.*s)"
s_tmpl_yes:       .asciz ", chat template: yes\n"
s_tmpl_no:        .asciz ", chat template: none\n"
s_no_tok:         .asciz "  tokenizer: none in the file (tokenizer.bin beside it is used)\n"
s_cannot:         .asciz "cannot read the file (or not enough memory for it)"
s_model:          .asciz "model "
k_arch:           .ascii "general.architecture"
k_name:           .ascii "general.name"
k_tok_model:      .ascii "tokenizer.ggml.model"
k_tok_pre:        .ascii "tokenizer.ggml.pre"
k_template:       .ascii "tokenizer.chat_template"

.section .text
.global gguf_model_info
.extern vol_read_file, vol_free_file, gguf_open, gguf_format_error, gguf_get_str, gguf_tensor_at
.extern model_gguf_config, print_model_error, print_file_problem, rt_printf, rt_print_cstr
.extern ggml_type_table, mib_h

# str_value(rdx = key, r8d = length) -> rax = bytes, rdx = length (0, 0 when absent), from
# info_gguf. Private; clobbers the volatile registers.
str_value:
    sub rsp, 40
    lea rcx, [rip + info_gguf]
    lea r9, [rip + info_value]
    call gguf_get_str
    xor edx, edx
    xor ecx, ecx
    test eax, eax
    jnz .Lout
    mov rcx, [rip + info_value + GGUF_VALUE_DATA]
    mov rdx, [rip + info_value + GGUF_VALUE_COUNT]
.Lout:
    mov rax, rcx
    add rsp, 40
    ret

# gguf_model_info(rcx = name, rdx = Model*) -> eax
gguf_model_info:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 72
    mov rsi, rcx                      # name
    mov rdi, rdx                      # Model*
    lea rdx, [rip + info_size]
    call vol_read_file
    test rax, rax
    jz .Lcannot
    mov rbx, rax                      # the file
    lea rcx, [rip + info_gguf]
    mov rdx, rbx
    mov r8, [rip + info_size]
    call gguf_open
    test eax, eax
    jnz .Lbad_gguf
    mov rcx, rdi
    lea rdx, [rip + info_gguf]
    call model_gguf_config
    test eax, eax
    jnz .Lbad_model
    # "NAME: X MiB, GGUF vN, ARCH"
    lea rdx, [rip + k_arch]
    mov r8d, 20
    call str_value
    mov [rsp + 48], rax
    mov [rsp + 40], rdx
    mov eax, [rip + info_gguf + GGUF_VERSION]
    mov [rsp + 32], rax
    mov rcx, [rip + info_size]
    call mib_h
    mov r8, rax
    mov rdx, rsi
    lea rcx, [rip + s_head]
    mov r9, [rsp + 32]
    mov rax, [rsp + 40]
    mov [rsp + 32], rax
    mov rax, [rsp + 48]
    mov [rsp + 40], rax
    call rt_printf
    lea rdx, [rip + k_name]           # ' "general.name"' when there is one
    mov r8d, 12
    call str_value
    test rdx, rdx
    jz .Lno_name
    mov r8, rax
    lea rcx, [rip + s_name]
    call rt_printf
.Lno_name:
    mov rax, [rdi + MODEL_N_PARAMS]   # millions in hundredths
    add rax, 5000
    xor edx, edx
    mov ecx, 10000
    div rcx
    mov rdx, rax
    lea rcx, [rip + s_params]
    call rt_printf
    # the shape
    mov edx, [rdi + MODEL_DIM]
    mov r8d, [rdi + MODEL_HIDDEN_DIM]
    mov r9d, [rdi + MODEL_N_LAYERS]
    mov eax, [rdi + MODEL_N_HEADS]
    mov [rsp + 32], rax
    mov eax, [rdi + MODEL_N_KV_HEADS]
    mov [rsp + 40], rax
    mov eax, [rdi + MODEL_VOCAB_SIZE]
    mov [rsp + 48], rax
    mov eax, [rdi + MODEL_SEQ_LEN]
    mov [rsp + 56], rax
    movd xmm0, dword ptr [rdi + MODEL_ROPE_THETA]
    cvttss2si rax, xmm0
    mov [rsp + 64], rax
    lea rcx, [rip + s_shape]
    call rt_printf
    # the type mix: tensors counted per ggml type, in type order
    lea rcx, [rip + info_counts]
    xor eax, eax
.Lzero:
    mov dword ptr [rcx + rax * 4], 0
    inc eax
    cmp eax, GGML_TYPE_COUNT
    jb .Lzero
    xor r12d, r12d
.Lcount:
    cmp r12, [rip + info_gguf + GGUF_TENSOR_COUNT]
    jae .Lcounted
    lea rcx, [rip + info_gguf]
    mov rdx, r12
    lea r8, [rip + info_tensor]
    xor r9d, r9d
    call gguf_tensor_at
    inc r12
    test eax, eax
    jnz .Lcount
    mov eax, [rip + info_tensor + TENSOR_TYPE]
    cmp eax, GGML_TYPE_COUNT
    jae .Lcount
    lea rcx, [rip + info_counts]
    inc dword ptr [rcx + rax * 4]
    jmp .Lcount
.Lcounted:
    lea rcx, [rip + s_tensors]
    call rt_print_cstr
    xor r12d, r12d
    lea rax, [rip + s_count]
    mov [rsp + 64], rax               # the first type without a comma before it
.Ltype:
    lea rcx, [rip + info_counts]
    mov edx, [rcx + r12 * 4]
    test edx, edx
    jz .Lnext_type
    imul r8, r12, GGML_TT_SIZE
    lea rax, [rip + ggml_type_table]
    lea r8, [rax + r8 + GGML_TT_NAME]
    mov rcx, [rsp + 64]
    call rt_printf
    lea rax, [rip + s_count_more]
    mov [rsp + 64], rax
.Lnext_type:
    inc r12d
    cmp r12d, GGML_TYPE_COUNT
    jb .Ltype
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    # the tokenizer and the chat template
    lea rdx, [rip + k_tok_model]
    mov r8d, 20
    call str_value
    test rdx, rdx
    jz .Lno_tok
    mov r8, rax
    lea rcx, [rip + s_tok]
    call rt_printf
    lea rdx, [rip + k_tok_pre]
    mov r8d, 18
    call str_value
    test rdx, rdx
    jz .Lno_pre
    mov r8, rax
    lea rcx, [rip + s_pre]
    call rt_printf
.Lno_pre:
    lea rdx, [rip + k_template]
    mov r8d, 23
    call str_value
    lea rcx, [rip + s_tmpl_yes]
    test rdx, rdx
    jnz .Ltmpl
    lea rcx, [rip + s_tmpl_no]
.Ltmpl:
    call rt_print_cstr
    jmp .Lgood
.Lno_tok:
    lea rcx, [rip + s_no_tok]
    call rt_print_cstr
.Lgood:
    mov r12d, 1
    jmp .Lfree
.Lbad_gguf:
    lea rcx, [rip + info_gguf]
    mov edx, eax
    lea r8, [rip + info_err]
    mov r9d, 256
    call gguf_format_error
    lea rcx, [rip + s_model]
    mov rdx, rsi
    lea r8, [rip + info_err]
    call print_file_problem
    xor r12d, r12d
    jmp .Lfree
.Lbad_model:
    mov rcx, rsi
    mov edx, eax
    mov r8, rdi
    call print_model_error
    xor r12d, r12d
.Lfree:
    mov rcx, rbx
    mov rdx, [rip + info_size]
    call vol_free_file
    mov eax, r12d
    jmp .Lout
.Lcannot:
    lea rcx, [rip + s_model]
    mov rdx, rsi
    lea r8, [rip + s_cannot]
    call print_file_problem
    xor eax, eax
.Lout:
    add rsp, 72
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
