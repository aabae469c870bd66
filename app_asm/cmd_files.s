# The REPL's model and file commands (commands.s's table): /model, /models, /model_info
# (through models.s), /log and what writes files on the volume: /save_log, /save_dump,
# /save_cfg (written so that a power cut never leaves no usable config). Handlers: rcx =
# arguments, rdx = length, r8 = table entry (commands.s).
.include "runtime.inc"
.include "settings.inc"
.include "commands.inc"

.equ SAVE_BUF_BYTES, 65536            # /save_cfg, /save_log, /save_dump text

.section .bss
.balign 8
save_buf:      .skip SAVE_BUF_BYTES
name_buf:      .skip SET_STR_MAX            # a file name argument, NUL-terminated

.section .rdata
s_name_long:   .asciz "file name too long (%u bytes): %u bytes at most\n"
k_model:       .asciz "model"
s_none_loaded: .asciz "no model loaded\n"
s_cfg_name:    .asciz "repl.cfg"
s_cfg_tmp:     .asciz "repl.tmp"
s_cfg_bak:     .asciz "repl.bak"
s_log_name:    .asciz "llm_log.txt"
s_dump_name:   .asciz "llm_dump.txt"
s_saved:       .asciz "saved "
s_save_failed: .asciz "could not save "
s_saved_file:  .asciz "saved %s\n"
s_save_failed_file: .asciz "could not save %s\n"
s_dump_head:   .asciz "# llm-uefi dump\n"
s_dump_cfg:    .asciz "\n# settings\n"
s_dump_model:  .asciz "\n# model\n"
s_dump_mem:    .asciz "\n# memory\nfree: %u MiB\n"
s_dump_log:    .asciz "\n# log\n"
s_nl:          .asciz "\n"

.section .text
.global cmd_model, cmd_models, cmd_model_info, cmd_log, cmd_save_log, cmd_save_dump, cmd_save_cfg
.extern rt_printf, rt_print_cstr, rt_capture_begin, rt_capture_end, rt_memory_free_bytes
.extern cpu_print_features, print_kernel_path, version_text, cmd_ctx, no_args, print_usage
.extern settings_find, settings_set, settings_print_all, settings_write_cfg
.extern sess_loaded, sess_model_name, models_switch, models_list, models_info, session_print_summary
.extern vol_write_file, vol_delete_file, vol_rename_file, vol_file_exists
.extern trim, parse_uint, str_copy, log_print, name_icmp

# file_arg(rcx = args, rdx = length) -> rax = the trimmed argument as a NUL-terminated
# string, rdx = its length (0 if none), or rdx = -1 after one line when it is longer than a
# file name setting may be (SET_STR_MAX - 1 bytes)
file_arg:
    sub rsp, 40
    call trim
    cmp rdx, SET_STR_MAX - 1
    ja .Ltoo_long
    mov r8, rdx
    mov rdx, rax
    lea rcx, [rip + name_buf]
    mov r9d, SET_STR_MAX
    call str_copy
    mov rdx, rax
    lea rax, [rip + name_buf]
    add rsp, 40
    ret
.Ltoo_long:
    lea rcx, [rip + s_name_long]
    mov r8d, SET_STR_MAX - 1
    call rt_printf
    mov rdx, -1
    add rsp, 40
    ret

# /model [FILE]: switch to another model (it is checked before the current one is let go);
# /cfg then shows it as "model = FILE  (command)"
cmd_model:
    push rbx
    push rsi
    sub rsp, 40
    call file_arg
    test rdx, rdx
    js .Lout
    jnz .Lswitch
    cmp dword ptr [rip + sess_loaded], 0
    je .Lnone
    call session_print_summary
    jmp .Lout
.Lnone:
    lea rcx, [rip + s_none_loaded]
    call rt_print_cstr
    jmp .Lout
.Lswitch:
    mov rbx, rax
    mov rsi, rdx
    mov rcx, rax
    call models_switch
    cmp dword ptr [rip + sess_loaded], 0
    je .Lout
    lea rcx, [rip + sess_model_name]
    mov rdx, rbx
    call name_icmp
    test eax, eax
    jnz .Lout                         # the switch did not happen
    lea rcx, [rip + k_model]
    mov edx, 5
    call settings_find
    mov rcx, rax
    mov rdx, rbx
    mov r8, rsi
    mov r9d, SET_SRC_COMMAND
    call settings_set
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# /models: every model file on the volume
cmd_models:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call models_list
.Lout:
    add rsp, 40
    ret

# /model_info FILE: the header, without loading
cmd_model_info:
    push rbx
    sub rsp, 32
    mov rbx, r8
    call file_arg
    test rdx, rdx
    js .Lout
    jz .Lusage
    mov rcx, rax
    call models_info
    jmp .Lout
.Lusage:
    mov rcx, rbx
    call print_usage
.Lout:
    add rsp, 32
    pop rbx
    ret

# optional_count(rcx = args, rdx = length, r8 = entry, r9d = default) -> rax = N, or -1 after
# printing the usage
optional_count:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, r8
    mov esi, r9d
    call trim
    test rdx, rdx
    jz .Ldefault
    mov rcx, rax
    lea r8, [rsp + 32]
    call parse_uint
    test eax, eax
    jz .Lbad
    mov rax, [rsp + 32]
    cmp rax, 1000000
    ja .Lbad
    jmp .Lout
.Ldefault:
    mov eax, esi
    jmp .Lout
.Lbad:
    mov rcx, rbx
    call print_usage
    mov rax, -1
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret

# /log [N]
cmd_log:
    sub rsp, 40
    mov r9d, 10
    call optional_count
    cmp rax, -1
    je .Lout
    mov ecx, eax
    call log_print
.Lout:
    add rsp, 40
    ret

# save_text(rcx = file name, rdx = captured length): write save_buf to the file; says so
save_text:
    push rbx
    push rsi
    sub rsp, 40
    mov rbx, rcx
    mov rsi, rdx
    mov rcx, rbx
    lea rdx, [rip + save_buf]
    mov r8, rsi
    call vol_write_file
    lea rcx, [rip + s_saved_file]
    test eax, eax
    jnz .Lsay
    lea rcx, [rip + s_save_failed_file]
.Lsay:
    mov rdx, rbx
    call rt_printf
    add rsp, 40
    pop rsi
    pop rbx
    ret

# /save_log [N]: llm_log.txt
cmd_save_log:
    push rbx
    sub rsp, 32
    xor r9d, r9d
    call optional_count
    cmp rax, -1
    je .Lout
    mov rbx, rax
    lea rcx, [rip + save_buf]
    mov edx, SAVE_BUF_BYTES
    call rt_capture_begin
    mov ecx, ebx
    call log_print
    call rt_capture_end
    lea rcx, [rip + s_log_name]
    mov rdx, rax
    call save_text
.Lout:
    add rsp, 32
    pop rbx
    ret

# /save_dump: llm_dump.txt with settings, model, memory, CPU and the whole log
cmd_save_dump:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + save_buf]
    mov edx, SAVE_BUF_BYTES
    call rt_capture_begin
    lea rcx, [rip + s_dump_head]
    call rt_print_cstr
    lea rcx, [rip + version_text]
    call rt_print_cstr
    call cpu_print_features
    call print_kernel_path
    lea rcx, [rip + s_dump_cfg]
    call rt_print_cstr
    call settings_print_all
    lea rcx, [rip + s_dump_model]
    call rt_print_cstr
    xor ecx, ecx
    xor edx, edx
    mov r8, rsp                       # (any entry: no arguments were given)
    call cmd_model
    call rt_memory_free_bytes
    lea rcx, [rip + s_dump_mem]
    mov rdx, rax
    shr rdx, 20
    call rt_printf
    xor ecx, ecx
    xor edx, edx
    mov r8, rsp
    call cmd_ctx
    lea rcx, [rip + s_dump_log]
    call rt_print_cstr
    xor ecx, ecx
    call log_print
    call rt_capture_end
    lea rcx, [rip + s_dump_name]
    mov rdx, rax
    call save_text
.Lout:
    add rsp, 40
    ret

# /save_cfg: the settings to repl.cfg, so that a power cut at any moment leaves a config
# that loads: write repl.tmp whole; move repl.cfg aside to repl.bak; rename repl.tmp to
# repl.cfg; drop repl.bak. (At boot, a missing repl.cfg falls back to repl.bak.)
cmd_save_cfg:
    push rbx
    sub rsp, 32
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + save_buf]
    mov edx, SAVE_BUF_BYTES
    call rt_capture_begin
    call settings_write_cfg
    call rt_capture_end
    mov rbx, rax
    lea rcx, [rip + s_cfg_tmp]
    lea rdx, [rip + save_buf]
    mov r8, rbx
    call vol_write_file
    test eax, eax
    jz .Lfailed
    lea rcx, [rip + s_cfg_bak]
    call vol_delete_file
    lea rcx, [rip + s_cfg_name]
    call vol_file_exists
    test eax, eax
    jz .Lno_old
    lea rcx, [rip + s_cfg_name]
    lea rdx, [rip + s_cfg_bak]
    call vol_rename_file
    test eax, eax
    jz .Lfailed
.Lno_old:
    lea rcx, [rip + s_cfg_tmp]
    lea rdx, [rip + s_cfg_name]
    call vol_rename_file
    test eax, eax
    jz .Lfailed
    lea rcx, [rip + s_cfg_bak]
    call vol_delete_file
    lea rcx, [rip + s_saved]
    call rt_print_cstr
    jmp .Lname
.Lfailed:
    lea rcx, [rip + s_save_failed]
    call rt_print_cstr
.Lname:
    lea rcx, [rip + s_cfg_name]
    call rt_print_cstr
    lea rcx, [rip + s_nl]
    call rt_print_cstr
.Lout:
    add rsp, 32
    pop rbx
    ret