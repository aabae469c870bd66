# The chat program's start: what runs once at boot, in order, before the REPL takes over.
.include "runtime.inc"
.include "settings.inc"
.include "kernels.inc"
.include "tokenizer.inc"

.section .bss
.balign 8
cfg_size: .skip 8

.section .rdata
s_banner:     .asciz "llm-uefi 0.1.0: an LLM chat in x86-64 assembly, booted from UEFI\n"
s_no_volume:  .asciz "boot volume not readable: no model, config or autorun can be loaded"
s_nl:         .asciz "\n"
s_repl_cfg:   .asciz "repl.cfg"
s_cfg_loaded: .asciz "config: repl.cfg\n"
s_repl_bak:   .asciz "repl.bak"
s_bak_loaded: .asciz "config: repl.bak (repl.cfg is missing: an interrupted /save_cfg?)\n"
s_ev_boot:    .asciz "boot: llm-uefi 0.1.0"
s_ev_cfg:     .asciz "config read: "
s_no_buffer:  .asciz "not enough memory for the prompt buffer\n"

.section .text
.global app_main
.extern rt_print_cstr, rt_timer_init, rt_fs_init, rt_alloc_pages, cpu_print_features
.extern config_parse, models_autoload, session_clear, session_apply_settings
.extern vol_read_file, vol_free_file, vol_print_status, sess_prompt_buf
.extern repl_load_autorun, repl_run, rt_file_status, log_init, log_event, log_event2
.extern settings_snapshot, threads_start

app_main:
    push rbx
    push rsi
    sub rsp, 40
    lea rcx, [rip + s_banner]
    call rt_print_cstr
    call cpu_print_features
    call threads_start                # the worker cores, once (MP services)
    call rt_timer_init
    call log_init
    lea rcx, [rip + s_ev_boot]
    call log_event
    call settings_snapshot
    call session_clear
    mov ecx, TOK_SCRATCH_SLOTS * 4 + 4
    call rt_alloc_pages
    mov [rip + sess_prompt_buf], rax
    test rax, rax
    jnz .Lhave_buffer
    lea rcx, [rip + s_no_buffer]
    call rt_print_cstr
.Lhave_buffer:
    call rt_fs_init
    test rax, rax
    jz .Lconfig
    lea rcx, [rip + s_no_volume]
    call rt_print_cstr
    call vol_print_status
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    jmp .Lkernels
.Lconfig:
    lea rcx, [rip + s_repl_cfg]
    lea rdx, [rip + cfg_size]
    call vol_read_file
    lea rcx, [rip + s_cfg_loaded]
    lea rsi, [rip + s_repl_cfg]
    test rax, rax
    jnz .Lparse
    lea rcx, [rip + s_repl_bak]       # a /save_cfg cut short leaves the previous one here
    lea rdx, [rip + cfg_size]
    call vol_read_file
    test rax, rax
    jz .Lkernels
    lea rcx, [rip + s_bak_loaded]
    lea rsi, [rip + s_repl_bak]
.Lparse:
    mov rbx, rax
    call rt_print_cstr
    lea rcx, [rip + s_ev_cfg]
    mov rdx, rsi
    call log_event2
    mov rcx, rbx
    mov rdx, [rip + cfg_size]
    call config_parse
    mov rcx, rbx
    mov rdx, [rip + cfg_size]
    call vol_free_file
.Lkernels:
    call session_apply_settings       # the kernel path (attn) among them
    cmp qword ptr [rip + sess_prompt_buf], 0
    je .Lrepl
    call repl_load_autorun            # first: the picker must know whether anyone is there
    call models_autoload
.Lrepl:
    call repl_run
    xor eax, eax
    add rsp, 40
    pop rsi
    pop rbx
    ret
