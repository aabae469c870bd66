# Test-only runtime for the fuzz harness (tests/fuzz/harness.py, CfgRunner): what
# app_asm/settings.s, settings_print.s and util.s need from efi_stubs/, without UEFI.
#
# The three print routines jump through slots in .data that the harness fills with emulator
# traps (peasm.runners.emu.Emu.trap); a trap reads the arguments and records the bytes, so
# config_parse's output is captured exactly as the program hands it to efi_stubs/console.s,
# with no ConOut involved. rt_memcpy / rt_memset are the plain byte loops efi_stubs/memory.s
# has (that file also needs BootServices, so it is not linked here).
.section .data
.balign 8
.global fuzz_print_cstr_slot, fuzz_print_utf8_slot, fuzz_print_u64_slot
fuzz_print_cstr_slot: .quad 0
fuzz_print_utf8_slot: .quad 0
fuzz_print_u64_slot:  .quad 0

.section .text
.global rt_print_cstr, rt_print_utf8, rt_print_u64, rt_memcpy, rt_memset, rt_printf
.extern fmt_emit
# rt_print_cstr(rcx = NUL-terminated UTF-8)
rt_print_cstr:
    jmp qword ptr [rip + fuzz_print_cstr_slot]
# rt_print_utf8(rcx = bytes, rdx = length)
rt_print_utf8:
    jmp qword ptr [rip + fuzz_print_utf8_slot]
# rt_print_u64(rcx = value), printed in decimal
rt_print_u64:
    jmp qword ptr [rip + fuzz_print_u64_slot]

# rt_printf(rcx = format, rdx, r8, r9, stack arguments): as efi_stubs/console.s's, through
# efi_stubs/format.s's fmt_emit, the text to rt_print_utf8
rt_printf:
    mov [rsp + 16], rdx
    mov [rsp + 24], r8
    mov [rsp + 32], r9
    sub rsp, 40
    lea rdx, [rsp + 40 + 16]
    lea r8, [rip + printf_sink]
    xor r9d, r9d
    call fmt_emit
    add rsp, 40
    ret
printf_sink:
    mov rcx, rdx
    mov rdx, r8
    jmp rt_print_utf8

# rt_memcpy(rcx = dst, rdx = src, r8 = count); regions must not overlap
rt_memcpy:
    push rdi
    push rsi
    mov rdi, rcx
    mov rsi, rdx
    mov rcx, r8
    rep movsb
    pop rsi
    pop rdi
    ret

# rt_memset(rcx = dst, edx = byte, r8 = count)
rt_memset:
    push rdi
    mov rdi, rcx
    mov eax, edx
    mov rcx, r8
    rep stosb
    pop rdi
    ret
