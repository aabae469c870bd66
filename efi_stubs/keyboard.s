# Keyboard input through ConIn. Waiting uses WaitForEvent on ConIn's WaitForKey event rather
# than spinning on ReadKeyStroke, so an idle prompt does not burn the CPU.
.include "uefi.inc"

.section .bss
.balign 8
key_buf:    .skip 8                   # EFI_INPUT_KEY
event_idx:  .skip 8

.section .text
.global rt_read_key, rt_poll_key
.extern rt_con_in, rt_boot_services

# rt_poll_key() -> eax = (ScanCode << 16) | UnicodeChar of a waiting key, or -1 if none.
rt_poll_key:
    sub rsp, 40
    mov rcx, [rip + rt_con_in]
    lea rdx, [rip + key_buf]
    call qword ptr [rcx + EFI_SIMPLE_TEXT_INPUT_PROTOCOL_ReadKeyStroke]
    test rax, rax
    jnz .Lnone
    movzx eax, word ptr [rip + key_buf + EFI_INPUT_KEY_ScanCode]
    shl eax, 16
    movzx ecx, word ptr [rip + key_buf + EFI_INPUT_KEY_UnicodeChar]
    or eax, ecx
    add rsp, 40
    ret
.Lnone:
    mov eax, -1
    add rsp, 40
    ret

# rt_read_key() -> eax = (ScanCode << 16) | UnicodeChar; waits for a key.
rt_read_key:
    sub rsp, 40
.Ltry:
    call rt_poll_key
    cmp eax, -1
    jne .Lgot
    mov ecx, 1                        # WaitForEvent(1, &ConIn->WaitForKey, &index)
    mov rdx, [rip + rt_con_in]
    lea rdx, [rdx + EFI_SIMPLE_TEXT_INPUT_PROTOCOL_WaitForKey]
    lea r8, [rip + event_idx]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_WaitForEvent]
    test rax, rax
    jz .Ltry
    mov ecx, 1000                     # no event support: poll gently
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_Stall]
    jmp .Ltry
.Lgot:
    add rsp, 40
    ret
