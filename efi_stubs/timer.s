# Time for the stats line: the TSC, calibrated once against BootServices->Stall. TSC ticks
# are cheap to read in the decode loop; Stall is the only clock UEFI promises.
.include "uefi.inc"

.equ CALIBRATION_US, 50000            # 50 ms: long enough for a stable rate, short at boot
.equ CALIBRATIONS_PER_SECOND, 20      # 1 s / CALIBRATION_US

.section .bss
.balign 8
.global rt_tsc_hz
rt_tsc_hz: .skip 8

.section .text
.global rt_timer_init, rt_ticks
.extern rt_boot_services

# rt_timer_init() -> rax = TSC ticks per second (also in rt_tsc_hz; at least 1)
rt_timer_init:
    push rbx
    sub rsp, 32
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov rbx, rax
    mov ecx, CALIBRATION_US
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_Stall]
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, rbx
    imul rax, rax, CALIBRATIONS_PER_SECOND
    test rax, rax
    jnz .Lstore
    mov eax, 1
.Lstore:
    mov [rip + rt_tsc_hz], rax
    add rsp, 32
    pop rbx
    ret

# rt_ticks() -> rax = the TSC now
rt_ticks:
    rdtsc
    shl rdx, 32
    or rax, rdx
    ret
