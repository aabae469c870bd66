# Files on the boot volume for the chat program, whole: read one into pages, write one (an old
# file of that name replaced), delete, rename, test for one, and say why the last operation
# failed. Built on the runtime's EFI_FILE_PROTOCOL wrappers (efi_stubs/files.s).
.include "uefi.inc"

.section .rdata
s_paren:          .asciz ")"
s_status:         .asciz " (EFI status "

.section .text
.global vol_delete_file, vol_file_exists, vol_free_file, vol_print_status, vol_read_file, vol_rename_file
.global vol_write_file
.extern rt_alloc_pages, rt_file_close, rt_file_delete, rt_file_open, rt_file_read, rt_file_rename
.extern rt_file_size, rt_file_status, rt_file_write, rt_free_pages, rt_print_cstr, rt_print_u64

# vol_print_status(): " (EFI status N)" for the last file operation
vol_print_status:
    sub rsp, 40
    lea rcx, [rip + s_status]
    call rt_print_cstr
    mov rcx, [rip + rt_file_status]
    btr rcx, 63                       # the error bit off: the spec's small numbers
    call rt_print_u64
    lea rcx, [rip + s_paren]
    call rt_print_cstr
    add rsp, 40
    ret

# vol_read_file(rcx = name, rdx = u64* size) -> rax = buffer or 0
vol_read_file:
    push rbx
    push rsi
    push rdi
    push r12
    sub rsp, 40
    mov r12, rdx
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Lfail
    mov rbx, rax                      # handle
    mov rcx, rbx
    call rt_file_size
    cmp rax, -1
    je .Lclose_fail
    mov rsi, rax                      # size
    lea rcx, [rax + 1]                # +1: a zero-length file still gets a buffer
    call rt_alloc_pages
    test rax, rax
    jnz .Lhave_buffer
    mov rax, EFI_OUT_OF_RESOURCES     # so callers can tell "no memory" from "no file"
    mov [rip + rt_file_status], rax
    jmp .Lclose_fail
.Lhave_buffer:
    mov rdi, rax
    mov rcx, rbx
    mov rdx, rdi
    mov r8, rsi
    call rt_file_read
    cmp rax, rsi
    jne .Lread_fail
    mov rcx, rbx
    call rt_file_close
    mov [r12], rsi
    mov rax, rdi
    jmp .Lout
.Lread_fail:
    mov rcx, rdi
    lea rdx, [rsi + 1]
    call rt_free_pages
.Lclose_fail:
    mov rcx, rbx
    call rt_file_close
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 40
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

# vol_free_file(rcx = buffer, rdx = size)
vol_free_file:
    inc rdx
    jmp rt_free_pages

# vol_file_exists(rcx = name) -> eax = 1 if it opens
vol_file_exists:
    sub rsp, 40
    mov edx, EFI_FILE_MODE_READ
    call rt_file_open
    test rax, rax
    jz .Lno
    mov rcx, rax
    call rt_file_close
    mov eax, 1
    jmp .Lout
.Lno:
    xor eax, eax
.Lout:
    add rsp, 40
    ret

# vol_delete_file(rcx = name) -> eax = 1 if it is gone (or was never there)
vol_delete_file:
    sub rsp, 40
    mov rdx, EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE
    call rt_file_open
    test rax, rax
    jz .Lgone
    mov rcx, rax
    call rt_file_delete
    test rax, rax
    jnz .Lfail
.Lgone:
    mov eax, 1
    jmp .Lout
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 40
    ret

# vol_write_file(rcx = name, rdx = bytes, r8 = length) -> eax = 1 if the file now holds
# exactly those bytes (an old file of that name is replaced)
vol_write_file:
    push rbx
    push rsi
    push rdi
    sub rsp, 32
    mov rbx, rcx
    mov rsi, rdx
    mov rdi, r8
    call vol_delete_file          # CREATE would keep an old file's tail: start empty
    test eax, eax
    jz .Lfail
    mov rcx, rbx
    mov rdx, EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE | EFI_FILE_MODE_CREATE
    call rt_file_open
    test rax, rax
    jz .Lfail
    mov rbx, rax
    mov rcx, rbx
    mov rdx, rsi
    mov r8, rdi
    call rt_file_write
    mov rsi, rax
    mov rcx, rbx
    call rt_file_close                # Close flushes
    cmp rsi, rdi
    jne .Lfail
    mov eax, 1
    jmp .Lout
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 32
    pop rdi
    pop rsi
    pop rbx
    ret

# vol_rename_file(rcx = name, rdx = new name, same directory) -> eax = 1 if renamed
vol_rename_file:
    push rbx
    push rsi
    sub rsp, 40
    mov rsi, rdx
    mov rdx, EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE
    call rt_file_open
    test rax, rax
    jz .Lfail
    mov rbx, rax
    mov rcx, rbx
    mov rdx, rsi
    call rt_file_rename
    mov rsi, rax
    mov rcx, rbx
    call rt_file_close
    test rsi, rsi
    jnz .Lfail
    mov eax, 1
    jmp .Lout
.Lfail:
    xor eax, eax
.Lout:
    add rsp, 40
    pop rsi
    pop rbx
    ret
