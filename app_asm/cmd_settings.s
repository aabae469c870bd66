# The REPL's setter and state commands (commands.s's table): a setting by its key (cmd_set,
# through settings.s), /reset, and what the state is (/ctx, /mem, /cfg, /cpu, /version),
# /clear, /shutdown. Handlers: rcx = arguments, rdx = length, r8 = table entry (commands.s).
.include "runtime.inc"
.include "model.inc"
.include "settings.inc"
.include "kernels.inc"
.include "commands.inc"

.section .rdata
s_bad_value:   .asciz "bad value: expected "
s_usage_paren: .asciz " (usage: /%s %s)\n"
s_ctx:         .asciz "context: %u / %u tokens used\n"
s_kv_in_use:   .asciz "KV cache of the loaded model: %s (kv_type applies at the next model load)\n"
s_cleared:     .asciz "conversation cleared\n"
version_text:  .asciz "llm-uefi 0.1.0: GGUF and llama2.c models in x86-64 assembly, on UEFI (built by peasm)\n"
s_kernels:     .asciz "kernels: "
s_sse2:        .asciz "sse2\n"
s_avx2:        .asciz "avx2 + fma\n"
s_shutdown:    .asciz "powering off\n"
s_reset_done:  .asciz "settings reset to the defaults; conversation cleared\n"
s_nl:          .asciz "\n"

.section .text
.global cmd_set, cmd_ctx, cmd_mem, cmd_clear, cmd_cfg, cmd_cpu, cmd_version, cmd_reset, cmd_shutdown
.global print_kernel_path, version_text
.extern rt_printf, rt_print_cstr, rt_shutdown, cpu_print_features, kernels_path, no_args
.extern settings_find, settings_set, settings_print_setting, settings_print_usage
.extern settings_print_all, settings_reset, set_seed, set_attn, set_threads, threads_print
.extern sess_model, sess_pos, session_clear, session_apply_settings, session_reseed
.extern session_print_memory, trim, str_len, sess_loaded, session_kv_type_name, session_repack_cfg

# cmd_set: a setter command bound to a settings key. No value: show it.
cmd_set:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov r12, r8
    call trim
    mov rsi, rax
    mov rdi, rdx
    mov rcx, [r12 + CMD_SETTING]
    call str_len
    mov rdx, rax
    mov rcx, [r12 + CMD_SETTING]
    call settings_find
    mov rbx, rax
    test rdi, rdi
    jz .Lshow
    mov rcx, rbx
    mov rdx, rsi
    mov r8, rdi
    mov r9d, SET_SRC_COMMAND
    call settings_set
    test eax, eax
    jz .Lbad
    call session_apply_settings
    mov rcx, [rbx + SET_PTR]
    lea rax, [rip + set_seed]
    cmp rcx, rax
    jne .Lshow
    call session_reseed               # a new seed restarts the random sequence
.Lshow:
    mov rcx, rbx
    call settings_print_setting
    lea rcx, [rip + s_nl]
    call rt_print_cstr
    mov rax, [rbx + SET_PTR]
    lea rcx, [rip + set_threads]
    cmp rax, rcx
    jne .Lnot_threads
    call threads_print
    jmp .Lout
.Lnot_threads:
    lea rcx, [rip + set_attn]
    cmp rax, rcx
    jne .Lout
    call print_kernel_path
    jmp .Lout
.Lbad:                                # one line: what is wrong and how to say it
    lea rcx, [rip + s_bad_value]
    call rt_print_cstr
    mov rcx, rbx
    call settings_print_usage
    lea rcx, [rip + s_usage_paren]
    mov rdx, [r12 + CMD_NAME]
    mov r8, [r12 + CMD_ARGS]
    call rt_printf
.Lout:
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# print_kernel_path(): "kernels: sse2" or "kernels: avx2 + fma" (MS x64; also for /save_dump)
print_kernel_path:
    sub rsp, 40
    lea rcx, [rip + s_kernels]
    call rt_print_cstr
    lea rcx, [rip + s_sse2]
    cmp dword ptr [rip + kernels_path], K_PATH_AVX2
    jne .Lprint
    lea rcx, [rip + s_avx2]
.Lprint:
    call rt_print_cstr
    add rsp, 40
    ret

cmd_mem:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call session_print_memory
.Lout:
    add rsp, 40
    ret

cmd_ctx:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + s_ctx]
    mov edx, [rip + sess_pos]
    mov r8d, [rip + sess_model + MODEL_CTX_LEN]
    call rt_printf
.Lout:
    add rsp, 40
    ret

cmd_clear:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call session_clear
    lea rcx, [rip + s_cleared]
    call rt_print_cstr
.Lout:
    add rsp, 40
    ret

cmd_cfg:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call settings_print_all
    cmp dword ptr [rip + sess_loaded], 0
    je .Lout
    call session_kv_type_name         # what kv_type (auto by the format) made of this model
    mov rdx, rax
    lea rcx, [rip + s_kv_in_use]
    call rt_printf
    call session_repack_cfg           # how many weights are in 8-row groups
.Lout:
    add rsp, 40
    ret

cmd_cpu:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call cpu_print_features
    call print_kernel_path
    call threads_print
.Lout:
    add rsp, 40
    ret

cmd_version:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + version_text]
    call rt_print_cstr
.Lout:
    add rsp, 40
    ret

cmd_shutdown:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    lea rcx, [rip + s_shutdown]
    call rt_print_cstr
    call rt_shutdown
.Lout:
    add rsp, 40
    ret
# /reset: default settings, empty conversation
cmd_reset:
    sub rsp, 40
    call no_args
    test eax, eax
    jz .Lout
    call settings_reset
    call session_apply_settings
    call session_reseed
    call session_clear
    lea rcx, [rip + s_reset_done]
    call rt_print_cstr
.Lout:
    add rsp, 40
    ret

