# The runtime check program: prints a banner and the CPU features, then powers off.
# It is what `peasm link` built before the chat program existed, and the smallest program
# that exercises entry, console, CPU detection and power-off on real firmware.
.section .rdata
banner: .asciz "llm-uefi 0.1.0: runtime check (x86-64 asm, built by peasm)\n"

.section .text
.global app_main
.extern rt_print_cstr, cpu_print_features, rt_shutdown

app_main:
    sub rsp, 40
    lea rcx, [rip + banner]
    call rt_print_cstr
    call cpu_print_features
    call rt_shutdown
