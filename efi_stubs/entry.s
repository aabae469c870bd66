# efi_main: the image's entry point. Keeps the firmware's handles where the rest of the
# runtime finds them, turns off the 5-minute watchdog (a long generation must not reset the
# machine), detects the CPU once, then runs the program's app_main.
.include "uefi.inc"
.include "runtime.inc"

.section .bss
.balign 8
.global rt_image_handle, rt_system_table, rt_boot_services, rt_runtime_services
.global rt_con_out, rt_con_in
rt_image_handle:     .skip 8
rt_system_table:     .skip 8
rt_boot_services:    .skip 8
rt_runtime_services: .skip 8
rt_con_out:          .skip 8
rt_con_in:           .skip 8

.section .text
.global efi_main
.extern app_main, cpu_detect

# efi_main(rcx = ImageHandle, rdx = SystemTable) -> rax = EFI_STATUS of app_main
efi_main:
    push rbp
    mov rbp, rsp
    push rbx
    sub rsp, 40                       # shadow space; rsp is 16-byte aligned again
    mov [rip + rt_image_handle], rcx
    mov [rip + rt_system_table], rdx
    mov rax, [rdx + EFI_SYSTEM_TABLE_BootServices]
    mov [rip + rt_boot_services], rax
    mov rax, [rdx + EFI_SYSTEM_TABLE_RuntimeServices]
    mov [rip + rt_runtime_services], rax
    mov rax, [rdx + EFI_SYSTEM_TABLE_ConOut]
    mov [rip + rt_con_out], rax
    mov rax, [rdx + EFI_SYSTEM_TABLE_ConIn]
    mov [rip + rt_con_in], rax

    # BootServices->SetWatchdogTimer(0, 0, 0, NULL): disabled
    xor ecx, ecx
    xor edx, edx
    xor r8d, r8d
    xor r9d, r9d
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_SetWatchdogTimer]

    call cpu_detect
    call app_main
    add rsp, 40
    pop rbx
    pop rbp
    ret
