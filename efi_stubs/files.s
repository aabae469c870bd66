# Files on the boot volume: LoadedImage -> DeviceHandle -> SimpleFileSystem -> root
# directory, then EFI_FILE_PROTOCOL for everything else. Paths come from the app as UTF-8
# with '/' or '\' separators (a repl.cfg line, a /model argument) and become UCS-2 here.
# A handle is the EFI_FILE_PROTOCOL pointer itself. On failure routines return 0 or -1 and
# leave the EFI_STATUS in rt_file_status, so callers can say why.
.include "uefi.inc"

.equ PATH_MAX_UNITS, 260
.equ READ_CHUNK, 0x100000             # read big files in 1 MiB pieces
.equ INFO_BUF_BYTES, EFI_FILE_INFO_size + 2 * (PATH_MAX_UNITS + 2)

.section .rdata
.balign 8
guid_loaded_image:  EFI_LOADED_IMAGE_PROTOCOL_GUID
guid_simple_fs:     EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID
guid_file_info:     EFI_FILE_INFO_GUID

.section .bss
.balign 8
.global rt_file_status
rt_file_status: .skip 8
fs_root:        .skip 8
loaded_image:   .skip 8
simple_fs:      .skip 8
new_handle:     .skip 8
io_size:        .skip 8
path_ucs2:      .skip 2 * (PATH_MAX_UNITS + 1)
.balign 8
info_buf:       .skip INFO_BUF_BYTES

.section .text
.global rt_fs_init, rt_file_open, rt_file_close, rt_file_size, rt_file_read, rt_file_write
.global rt_file_delete, rt_file_read_entry, rt_file_info_buffer, rt_file_rename, rt_path_to_ucs2
.extern rt_boot_services, rt_image_handle

# rt_fs_init() -> rax = 0 when the boot volume's root directory is open, else the EFI_STATUS.
rt_fs_init:
    sub rsp, 40
    mov rcx, [rip + rt_image_handle]
    lea rdx, [rip + guid_loaded_image]
    lea r8, [rip + loaded_image]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_HandleProtocol]
    test rax, rax
    jnz .Lout
    mov rcx, [rip + loaded_image]
    mov rcx, [rcx + EFI_LOADED_IMAGE_PROTOCOL_DeviceHandle]
    lea rdx, [rip + guid_simple_fs]
    lea r8, [rip + simple_fs]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_HandleProtocol]
    test rax, rax
    jnz .Lout
    mov rcx, [rip + simple_fs]
    lea rdx, [rip + fs_root]
    call qword ptr [rcx + EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_OpenVolume]
.Lout:
    mov [rip + rt_file_status], rax
    add rsp, 40
    ret

# rt_path_to_ucs2(rcx = UTF-8 path, NUL-terminated) -> rax = the UCS-2 path (a static buffer),
# or 0 if too long. '/' becomes '\'; characters beyond the BMP or malformed become '?'.
rt_path_to_ucs2:
    lea r8, [rip + path_ucs2]
    xor r9d, r9d                      # units written
.Lchar:
    movzx eax, byte ptr [rcx]
    test eax, eax
    jz .Lend
    inc rcx
    cmp eax, 0x80
    jb .Lput
    mov edx, eax
    and edx, 0xE0
    cmp edx, 0xC0
    jne .Lthree
    and eax, 0x1F                     # 110xxxxx 10xxxxxx
    movzx edx, byte ptr [rcx]
    mov r10d, edx
    and r10d, 0xC0
    cmp r10d, 0x80
    jne .Lbad
    inc rcx
    shl eax, 6
    and edx, 0x3F
    or eax, edx
    jmp .Lput
.Lthree:
    mov edx, eax
    and edx, 0xF0
    cmp edx, 0xE0
    jne .Lskip_rest
    and eax, 0x0F                     # 1110xxxx 10xxxxxx 10xxxxxx
    movzx edx, byte ptr [rcx]
    mov r10d, edx
    and r10d, 0xC0
    cmp r10d, 0x80
    jne .Lbad
    shl eax, 6
    and edx, 0x3F
    or eax, edx
    movzx edx, byte ptr [rcx + 1]
    mov r10d, edx
    and r10d, 0xC0
    cmp r10d, 0x80
    jne .Lbad
    add rcx, 2
    shl eax, 6
    and edx, 0x3F
    or eax, edx
    jmp .Lput
.Lskip_rest:                          # 4-byte sequences and stray bytes: skip continuations
    movzx edx, byte ptr [rcx]
    and edx, 0xC0
    cmp edx, 0x80
    jne .Lbad
    inc rcx
    jmp .Lskip_rest
.Lbad:
    mov eax, '?'
.Lput:
    cmp eax, '/'
    jne .Lstore
    mov eax, 0x5C                     # '\'
.Lstore:
    cmp r9d, PATH_MAX_UNITS
    jae .Ltoo_long
    mov [r8 + r9 * 2], ax
    inc r9d
    jmp .Lchar
.Lend:
    mov word ptr [r8 + r9 * 2], 0
    mov rax, r8
    ret
.Ltoo_long:
    xor eax, eax
    ret

# rt_file_open(rcx = UTF-8 path from the volume root, rdx = EFI_FILE_MODE_* bits)
#   -> rax = handle, or 0 (status in rt_file_status)
rt_file_open:
    push rbx
    sub rsp, 48
    mov rbx, rdx
    call rt_path_to_ucs2
    test rax, rax
    jz .Lbad_path
    mov r8, rax                       # root->Open(root, &new, name, mode, attributes = 0)
    mov rcx, [rip + fs_root]
    test rcx, rcx
    jz .Lno_fs
    lea rdx, [rip + new_handle]
    mov r9, rbx
    mov qword ptr [rsp + 32], 0
    call qword ptr [rcx + EFI_FILE_PROTOCOL_Open]
    mov [rip + rt_file_status], rax
    test rax, rax
    jnz .Lfailed
    mov rax, [rip + new_handle]
    jmp .Lret
.Lbad_path:
    mov rax, EFI_INVALID_PARAMETER
    mov [rip + rt_file_status], rax
    jmp .Lfailed
.Lno_fs:
    mov rax, EFI_NOT_READY
    mov [rip + rt_file_status], rax
.Lfailed:
    xor eax, eax
.Lret:
    add rsp, 48
    pop rbx
    ret

# rt_file_close(rcx = handle)
rt_file_close:
    sub rsp, 40
    test rcx, rcx
    jz .Lout
    call qword ptr [rcx + EFI_FILE_PROTOCOL_Close]
.Lout:
    add rsp, 40
    ret

# rt_file_delete(rcx = handle opened for writing) -> rax = EFI_STATUS; the handle is closed
rt_file_delete:
    sub rsp, 40
    call qword ptr [rcx + EFI_FILE_PROTOCOL_Delete]
    mov [rip + rt_file_status], rax
    add rsp, 40
    ret

# rt_file_info_buffer() -> rax = the EFI_FILE_INFO last filled by rt_file_size or
# rt_file_read_entry (valid until the next call of either)
rt_file_info_buffer:
    lea rax, [rip + info_buf]
    ret

# rt_file_size(rcx = handle) -> rax = file size in bytes, or -1
rt_file_size:
    sub rsp, 40
    lea rdx, [rip + guid_file_info]   # GetInfo(handle, &EFI_FILE_INFO_GUID, &size, buffer)
    mov qword ptr [rip + io_size], INFO_BUF_BYTES
    lea r8, [rip + io_size]
    lea r9, [rip + info_buf]
    call qword ptr [rcx + EFI_FILE_PROTOCOL_GetInfo]
    mov [rip + rt_file_status], rax
    test rax, rax
    jnz .Lfail
    mov rax, [rip + info_buf + EFI_FILE_INFO_FileSize]
    add rsp, 40
    ret
.Lfail:
    mov rax, -1
    add rsp, 40
    ret

# rt_file_read(rcx = handle, rdx = buffer, r8 = bytes wanted) -> rax = bytes read (less at
# end of file), or -1 on an error
rt_file_read:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov rbx, rcx
    mov rsi, rdx                      # where the next chunk goes
    mov rdi, r8                       # bytes still wanted
    xor r12d, r12d                    # bytes read so far
.Lchunk:
    test rdi, rdi
    jz .Ldone
    mov rax, rdi
    mov ecx, READ_CHUNK
    cmp rax, rcx
    cmova rax, rcx
    mov [rip + io_size], rax
    mov rcx, rbx                      # Read(handle, &size, buffer)
    lea rdx, [rip + io_size]
    mov r8, rsi
    call qword ptr [rbx + EFI_FILE_PROTOCOL_Read]
    mov [rip + rt_file_status], rax
    test rax, rax
    jnz .Lerror
    mov rax, [rip + io_size]
    test rax, rax
    jz .Ldone                         # end of file
    add rsi, rax
    add r12, rax
    sub rdi, rax
    jmp .Lchunk
.Lerror:
    mov r12, -1
.Ldone:
    mov rax, r12
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# rt_file_read_entry(rcx = directory handle) -> rax = the next EFI_FILE_INFO (in the shared
# info buffer), or 0 at the end of the directory or on an error
rt_file_read_entry:
    sub rsp, 40
    mov qword ptr [rip + io_size], INFO_BUF_BYTES
    lea rdx, [rip + io_size]
    lea r8, [rip + info_buf]
    call qword ptr [rcx + EFI_FILE_PROTOCOL_Read]
    mov [rip + rt_file_status], rax
    test rax, rax
    jnz .Lnone
    cmp qword ptr [rip + io_size], 0
    je .Lnone
    lea rax, [rip + info_buf]
    add rsp, 40
    ret
.Lnone:
    xor eax, eax
    add rsp, 40
    ret

# rt_file_write(rcx = handle, rdx = bytes, r8 = count) -> rax = bytes written, or -1
rt_file_write:
    sub rsp, 40
    mov [rip + io_size], r8
    mov r9, rdx                       # Write(handle, &size, buffer)
    lea rdx, [rip + io_size]
    mov r8, r9
    call qword ptr [rcx + EFI_FILE_PROTOCOL_Write]
    mov [rip + rt_file_status], rax
    test rax, rax
    jnz .Lfail
    mov rax, [rip + io_size]
    add rsp, 40
    ret
.Lfail:
    mov rax, -1
    add rsp, 40
    ret

# rt_file_rename(rcx = handle, rdx = new UTF-8 name in the same directory) -> rax = EFI_STATUS
# Through SetInfo with a changed FileName, the one rename UEFI offers.
rt_file_rename:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rcx
    mov rsi, rdx
    call rt_file_size                 # fills info_buf with the current EFI_FILE_INFO
    cmp rax, -1
    je .Lerr
    mov rcx, rsi
    call rt_path_to_ucs2
    test rax, rax
    jz .Lbad
    lea rdi, [rip + info_buf + EFI_FILE_INFO_FileName]
    mov rsi, rax
    xor ecx, ecx
.Lcopy:                               # copy the new name, counting units
    mov ax, [rsi + rcx * 2]
    mov [rdi + rcx * 2], ax
    inc ecx
    test ax, ax
    jnz .Lcopy
    lea rax, [rcx * 2 + EFI_FILE_INFO_FileName]
    mov [rip + info_buf + EFI_FILE_INFO_Size], rax
    mov rcx, rbx                      # SetInfo(handle, &EFI_FILE_INFO_GUID, size, info)
    lea rdx, [rip + guid_file_info]
    mov r8, rax
    lea r9, [rip + info_buf]
    call qword ptr [rbx + EFI_FILE_PROTOCOL_SetInfo]
    mov [rip + rt_file_status], rax
    jmp .Lret
.Lbad:
    mov rax, EFI_INVALID_PARAMETER
    mov [rip + rt_file_status], rax
    jmp .Lret
.Lerr:
    mov rax, [rip + rt_file_status]
.Lret:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret
