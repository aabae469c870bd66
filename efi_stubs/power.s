# Powering off through RuntimeServices->ResetSystem, which is how QEMU (and the hosted
# runners) learn that the program is done.
.include "uefi.inc"

.section .text
.global rt_shutdown
.extern rt_runtime_services

# rt_shutdown(): ResetSystem(EfiResetShutdown, EFI_SUCCESS, 0, NULL). Never returns.
rt_shutdown:
    sub rsp, 40
    mov ecx, EfiResetShutdown
    xor edx, edx
    xor r8d, r8d
    xor r9d, r9d
    mov rax, [rip + rt_runtime_services]
    call qword ptr [rax + EFI_RUNTIME_SERVICES_ResetSystem]
.Lspin:                               # a firmware that returns from a shutdown: wait quietly
    pause
    jmp .Lspin
