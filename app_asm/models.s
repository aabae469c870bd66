# Model files on the volume: looking at a file's header without loading it, finding the models
# (the volume root and models\), the picker, /model, /models and /model_info, and the lines that
# say what is wrong with a file. Headers are checked into probe_struct, never into the loaded
# model's own struct, so looking never disturbs a conversation.
.include "uefi.inc"
.include "model.inc"
.include "settings.inc"
.include "session.inc"

.section .bss
.balign 64
probe_struct:      .skip MODEL_SIZE       # for looking at other model files' headers
header_buf:        .skip 32
err_buf:           .skip 256

.section .rdata
s_cannot_open:    .asciz "cannot open the file"
s_colon:          .asciz ": "
s_dim:            .asciz "dim "
s_dot_sp:         .asciz ". "
s_fallback:       .asciz "trying the models found on the volume instead\n"
s_heads:          .asciz ", heads "
s_hidden:         .asciz ", hidden "
s_indent:         .asciz "  "
s_info_size:      .asciz ": "
s_keeping:        .asciz "keeping the current model\n"
s_kv:             .asciz "/"
s_layers:         .asciz ", layers "
s_list_sep:       .asciz "  "
s_mib_comma:      .asciz " MiB, "
s_model_prefix:   .asciz "model "
s_models_dir:     .asciz "models"
s_models_prefix:  .asciz "models/"
s_nl:             .asciz "\n"
s_no_model:       .asciz "no model found: put a .gguf or llama2.c .bin model in the volume root or models\\\n"
s_too_many:       .asciz "more than %u model files: only the first %u are listed\n"
s_skipped:        .asciz "%u .bin/.gguf file(s) skipped: a name must be ASCII and under %u bytes with its folder\n"
s_gguf_probed:    .asciz "GGUF v%u (/model_info NAME: its shape and types)"
s_root:           .asciz ""
s_root_dir:       .asciz "/"
s_seq:            .asciz ", seq_len "
s_unshared:       .asciz " (own classifier)"
s_vocab:          .asciz ", vocab "

.section .text
.global models_autoload, models_info, models_list, models_switch, print_file_problem, print_mib
.global print_model_error, print_shape, probe_model, check_model_file
.extern model_check_header, model_gguf_probe, model_format_error, parse_uint, print_hundredths, repl_read_line
.extern rt_file_close, rt_file_open, rt_file_read, rt_file_read_entry, rt_file_size, rt_print_cstr
.extern rt_print_u64, sess_loaded, session_load_model, set_model, str_len, trim
.extern vol_print_status, rt_file_info_buffer, rt_printf, found_names, found_count, found_more
.extern gguf_model_info, found_skipped, found_sort, found_drop_configured, ucs2_has_bin_suffix, models_pick

# print_model_error(rcx = name, edx = MODEL_E_* code, r8 = the Model* that was checked):
# "model NAME: <reason>\n"
print_model_error:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rcx
    mov esi, edx
    mov rdi, r8
    lea rcx, [rip + s_model_prefix]
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    mov rcx, rdi
    mov edx, esi
    lea r8, [rip + err_buf]
    mov r9d, 256
    call model_format_error
    lea rcx, [rip + err_buf]
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# print_file_problem(rcx = "model "/"tokenizer " prefix, rdx = name, r8 = message)
print_file_problem:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rdx
    mov rsi, r8
    call rt_print_cstr
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_colon]
    call rt_print_cstr
    mov rcx, rsi
    call rt_print_cstr
    call vol_print_status
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# probe_model(rcx = name, rdx = Model* to fill) -> eax = MODEL_OK if the file's header and
# size make a model (a GGUF: its magic and version; the rest is checked when it is loaded),
# else a MODEL_E_* code, or -1 if the file cannot be opened/read. Reads 28 bytes only.
probe_model:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rdi, rdx
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Lno_file
    mov rbx, rax
    mov rcx, rbx
    call rt_file_size
    mov rsi, rax
    cmp rax, -1
    je .Lclose_no
    mov qword ptr [rip + header_buf], 0
    mov rcx, rbx
    lea rdx, [rip + header_buf]
    mov r8d, MODEL_HEADER_BYTES
    cmp rsi, r8
    cmovb r8, rsi
    call rt_file_read
    cmp rax, -1
    je .Lclose_no
    mov rcx, rbx
    call rt_file_close
    mov rcx, rdi
    lea rdx, [rip + header_buf]
    mov r8, rsi
    cmp dword ptr [rdx], 0x46554747   # "GGUF": the rest is checked once the file is read
    je .Lgguf
    call model_check_header
    jmp .Lout
.Lgguf:
    call model_gguf_probe
    jmp .Lout
.Lclose_no:
    mov rcx, rbx
    call rt_file_close
.Lno_file:
    mov eax, -1
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# print_mib(rcx = bytes): rounded up to MiB
print_mib:
    add rcx, 0xFFFFF
    shr rcx, 20
    jmp rt_print_u64

# print_shape(rcx = a checked Model*): "dim D, hidden H, layers L, heads H/KV, vocab V
# [(own classifier)], seq_len S"
print_shape:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rcx, [rip + s_dim]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_DIM]
    call rt_print_u64
    lea rcx, [rip + s_hidden]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_HIDDEN_DIM]
    call rt_print_u64
    lea rcx, [rip + s_layers]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_N_LAYERS]
    call rt_print_u64
    lea rcx, [rip + s_heads]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_N_HEADS]
    call rt_print_u64
    lea rcx, [rip + s_kv]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_N_KV_HEADS]
    call rt_print_u64
    lea rcx, [rip + s_vocab]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_VOCAB_SIZE]
    call rt_print_u64
    cmp dword ptr [rbx + MODEL_SHARED_CLASSIFIER], 0
    jne .Lshared
    lea rcx, [rip + s_unshared]
    call rt_print_cstr
.Lshared:
    lea rcx, [rip + s_seq]
    call rt_print_cstr
    mov ecx, [rbx + MODEL_SEQ_LEN]
    call rt_print_u64
    add rsp, 32
    pop rbx
    ret

# print_probed_shape(): "X.XX MiB, " and the shape of probe_struct, then a new line
print_probed_shape:
    sub rsp, 40
    mov rcx, [rip + probe_struct + MODEL_FILE_SIZE]
    add rcx, 5243                     # MiB in hundredths: bytes * 100 / 2^20, rounded
    imul rcx, rcx, 100
    shr rcx, 20
    call print_hundredths
    lea rcx, [rip + s_mib_comma]
    call rt_print_cstr
    cmp dword ptr [rip + probe_struct + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Lbin
    lea rcx, [rip + s_gguf_probed]    # its shape is known once the whole file is read
    mov rdx, [rip + probe_struct + MODEL_ERR_GOT]
    call rt_printf
    jmp .Lnl
.Lbin:
    lea rcx, [rip + probe_struct]
    call print_shape
.Lnl:
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    add rsp, 40
    ret

# scan_dir(rcx = directory UTF-8 path ("" = root), rdx = prefix for names found): appends
# every file whose header makes a model (a llama2.c header that matches the file size, or
# GGUF's magic and version) to found_names
scan_dir:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    sub rsp, 32
    mov r12, rdx                      # prefix
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Ldone
    mov rbx, rax
.Lentry:
    mov rcx, rbx
    call rt_file_read_entry
    test rax, rax
    jz .Lclose
    test qword ptr [rax + EFI_FILE_INFO_Attribute], EFI_FILE_DIRECTORY
    jnz .Lentry
    cmp dword ptr [rip + found_count], SESSION_MAX_MODELS
    jb .Lroom
    mov dword ptr [rip + found_more], 1  # (any further entry: said after the scan)
    jmp .Lclose
.Lroom:
    # name: prefix + FileName (UCS-2, kept only when ASCII) into the next found slot
    mov esi, [rip + found_count]
    imul esi, esi, SESSION_NAME_MAX
    lea rdi, [rip + found_names]
    add rdi, rsi
    mov r13, rdi
    mov rcx, r12
.Lprefix:
    mov dl, [rcx]
    test dl, dl
    jz .Lname
    mov [rdi], dl
    inc rdi
    inc rcx
    jmp .Lprefix
.Lname:
    lea rsi, [rax + EFI_FILE_INFO_FileName]
    lea r8, [r13 + SESSION_NAME_MAX - 1]
.Lunit:
    movzx edx, word ptr [rsi]
    test edx, edx
    jz .Lterm
    cmp edx, 0x80
    jae .Lskip_name                   # non-ASCII names: skipped, and counted if .bin
    cmp rdi, r8
    jae .Lskip_name
    mov [rdi], dl
    inc rdi
    add rsi, 2
    jmp .Lunit
.Lterm:
    mov byte ptr [rdi], 0
    mov rcx, r13                      # a model by its content (header, magic), not its name
    lea rdx, [rip + probe_struct]
    call probe_model
    test eax, eax
    jnz .Lentry
    inc dword ptr [rip + found_count]
    jmp .Lentry
.Lskip_name:
    call rt_file_info_buffer          # the entry (still there): is it a .bin?
    lea rcx, [rax + EFI_FILE_INFO_FileName]
    call ucs2_has_bin_suffix
    add [rip + found_skipped], eax
    jmp .Lentry
.Lclose:
    mov rcx, rbx
    call rt_file_close
.Ldone:
    add rsp, 32
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# find_models(): found_names = the models in the volume root, then in models\, each part in
# name order; says when names were skipped or the list is full
find_models:
    push rbx
    sub rsp, 32
    xor eax, eax
    mov [rip + found_count], eax
    mov [rip + found_more], eax
    mov [rip + found_skipped], eax
    lea rcx, [rip + s_root_dir]       # "\" opens the root itself on every firmware
    lea rdx, [rip + s_root]
    call scan_dir
    xor ecx, ecx
    call found_sort
    mov ebx, [rip + found_count]
    lea rcx, [rip + s_models_dir]
    lea rdx, [rip + s_models_prefix]
    call scan_dir
    mov ecx, ebx
    call found_sort
    mov edx, [rip + found_skipped]
    test edx, edx
    jz .Lno_skip
    lea rcx, [rip + s_skipped]
    mov r8d, SESSION_NAME_MAX
    call rt_printf
.Lno_skip:
    cmp dword ptr [rip + found_more], 0
    je .Lout
    lea rcx, [rip + s_too_many]
    mov edx, SESSION_MAX_MODELS
    mov r8d, edx
    call rt_printf
.Lout:
    add rsp, 32
    pop rbx
    ret

# models_autoload() -> eax = 1 if a model is loaded: set_model, else one of the models found
# (picker.s). A configured model that fails is not tried again among the ones found.
models_autoload:
    push rbx
    sub rsp, 32
    xor ebx, ebx                      # 1: the configured model failed
    lea rcx, [rip + set_model]
    cmp byte ptr [rcx], 0
    je .Ldiscover
    call session_load_model
    test eax, eax
    jnz .Lout
    lea rcx, [rip + s_fallback]
    call rt_print_cstr
    mov ebx, 1
.Ldiscover:
    call find_models
    test ebx, ebx
    jz .Lpick
    call found_drop_configured
.Lpick:
    cmp dword ptr [rip + found_count], 0
    je .Lnone
    call models_pick
    jmp .Lout
.Lnone:
    lea rcx, [rip + s_no_model]
    call rt_print_cstr
    xor eax, eax
.Lout:
    add rsp, 32
    pop rbx
    ret

# check_model_file(rcx = name, rdx = Model*) -> eax = 1 when the file's header and size make
# a model (the struct is filled), else 0 after one line saying why ("model NAME: ...")
check_model_file:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, rcx
    mov rsi, rdx
    call probe_model
    test eax, eax
    jz .Lgood
    cmp eax, -1
    je .Lcannot
    mov rcx, rbx
    mov edx, eax
    mov r8, rsi
    call print_model_error
    jmp .Lbad
.Lcannot:
    lea rcx, [rip + s_model_prefix]
    mov rdx, rbx
    lea r8, [rip + s_cannot_open]
    call print_file_problem
.Lbad:
    xor eax, eax
    jmp .Lout
.Lgood:
    mov eax, 1
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# models_switch(rcx = name): the file is checked first; if it cannot be a model the
# current one stays
models_switch:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rdx, [rip + probe_struct]
    call check_model_file
    test eax, eax
    jnz .Lload
    cmp dword ptr [rip + sess_loaded], 0
    je .Lout
    lea rcx, [rip + s_keeping]
    call rt_print_cstr
    jmp .Lout
.Lload:
    mov rcx, rbx
    call session_load_model
.Lout:
    add rsp, 32
    pop rbx
    ret

# models_info(rcx = name): the header of a model file, or why it is not one
models_info:
    push rbx
    sub rsp, 32
    mov rbx, rcx
    lea rdx, [rip + probe_struct]
    call check_model_file
    test eax, eax
    jz .Lout
    cmp dword ptr [rip + probe_struct + MODEL_FORMAT], MODEL_FORMAT_GGUF
    jne .Lbin
    mov rcx, rbx                      # a GGUF: read and parsed whole (gguf_info.s)
    lea rdx, [rip + probe_struct]
    call gguf_model_info
    jmp .Lout
.Lbin:
    mov rcx, rbx
    call rt_print_cstr
    lea rcx, [rip + s_info_size]
    call rt_print_cstr
    call print_probed_shape
.Lout:
    add rsp, 32
    pop rbx
    ret

# models_list(): "  N. NAME  size, shape" for every model on the volume
models_list:
    push rbx
    push rsi
    sub rsp, 40
    call find_models
    mov ebx, [rip + found_count]
    test ebx, ebx
    jnz .Llist
    lea rcx, [rip + s_no_model]
    call rt_print_cstr
    jmp .Lout
.Llist:
    xor esi, esi
.Lnext:
    lea rcx, [rip + s_indent]
    call rt_print_cstr
    lea ecx, [rsi + 1]
    call rt_print_u64
    lea rcx, [rip + s_dot_sp]
    call rt_print_cstr
    mov eax, esi
    imul eax, eax, SESSION_NAME_MAX
    lea rcx, [rip + found_names]
    add rcx, rax
    mov [rsp + 32], rcx
    call rt_print_cstr
    lea rcx, [rip + s_list_sep]
    call rt_print_cstr
    mov rcx, [rsp + 32]
    lea rdx, [rip + probe_struct]
    call probe_model
    call print_probed_shape
    inc esi
    cmp esi, ebx
    jb .Lnext
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

