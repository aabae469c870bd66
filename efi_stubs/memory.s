# Memory from the firmware: pages for big things (weights, KV cache), the memory map to know
# how much is left before deciding what fits, and the two byte loops everyone needs.
.include "uefi.inc"

.section .bss
.balign 8
mm_size:        .skip 8               # GetMemoryMap's in/out arguments
mm_key:         .skip 8
mm_desc_size:   .skip 8
mm_desc_ver:    .skip 8
mm_buffer:      .skip 8
alloc_address:  .skip 8

.section .text
.global rt_alloc_pages, rt_free_pages, rt_memory_free_bytes, rt_memset, rt_memcpy
.extern rt_boot_services

# rt_alloc_pages(rcx = bytes) -> rax = page-aligned memory, or 0 when the firmware has none.
rt_alloc_pages:
    sub rsp, 40
    lea r8, [rcx + 4095]
    shr r8, 12                        # pages
    mov ecx, AllocateAnyPages
    mov edx, EfiLoaderData
    lea r9, [rip + alloc_address]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_AllocatePages]
    test rax, rax
    jnz .Lfail
    mov rax, [rip + alloc_address]
    add rsp, 40
    ret
.Lfail:
    xor eax, eax
    add rsp, 40
    ret

# rt_free_pages(rcx = memory from rt_alloc_pages, rdx = the same byte count)
rt_free_pages:
    sub rsp, 40
    test rcx, rcx
    jz .Ldone
    add rdx, 4095
    shr rdx, 12
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_FreePages]
.Ldone:
    add rsp, 40
    ret

# rt_memory_free_bytes() -> rax = bytes of EfiConventionalMemory in the memory map (what
# AllocatePages can still hand out, in all), rdx = bytes of its largest single range (the
# biggest one allocation that can succeed: free memory is often in pieces); 0, 0 if the map
# cannot be read.
rt_memory_free_bytes:
    push rbx
    push rsi
    push rdi
    sub rsp, 48                       # shadow space and GetMemoryMap's 5th argument
    mov qword ptr [rip + mm_size], 0
    mov qword ptr [rip + mm_buffer], 0
.Lquery:
    # GetMemoryMap(&size, buffer, &key, &desc_size, &desc_version)
    lea rcx, [rip + mm_size]
    mov rdx, [rip + mm_buffer]
    lea r8, [rip + mm_key]
    lea r9, [rip + mm_desc_size]
    lea rax, [rip + mm_desc_ver]
    mov [rsp + 32], rax
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_GetMemoryMap]
    test rax, rax
    jz .Lhave_map
    mov rcx, EFI_BUFFER_TOO_SMALL
    cmp rax, rcx
    jne .Lno_map
    mov rcx, [rip + mm_buffer]        # too small: free the old buffer, grow, retry
    test rcx, rcx
    jz .Lgrow
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_FreePool]
    mov qword ptr [rip + mm_buffer], 0
.Lgrow:
    mov rdx, [rip + mm_desc_size]     # room for the pool allocation's own new entries
    shl rdx, 3
    add rdx, [rip + mm_size]
    mov [rip + mm_size], rdx
    mov ecx, EfiLoaderData
    lea r8, [rip + mm_buffer]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_AllocatePool]
    test rax, rax
    jnz .Lno_map
    jmp .Lquery
.Lhave_map:
    xor ebx, ebx                      # total free bytes
    xor edi, edi                      # the largest range
    mov rsi, [rip + mm_buffer]
    mov rcx, [rip + mm_size]
    lea r8, [rsi + rcx]               # end of the map
    mov r9, [rip + mm_desc_size]
    test r9, r9
    jz .Lfree_buffer
.Lwalk:
    lea rax, [rsi + EFI_MEMORY_DESCRIPTOR_size]
    cmp rax, r8
    ja .Lfree_buffer
    cmp dword ptr [rsi + EFI_MEMORY_DESCRIPTOR_Type], EfiConventionalMemory
    jne .Lnext
    mov rax, [rsi + EFI_MEMORY_DESCRIPTOR_NumberOfPages]
    shl rax, 12
    add rbx, rax
    cmp rax, rdi
    cmova rdi, rax
.Lnext:
    add rsi, r9
    jmp .Lwalk
.Lfree_buffer:
    mov rcx, [rip + mm_buffer]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_FreePool]
    mov rax, rbx
    mov rdx, rdi
    jmp .Lout
.Lno_map:
    mov rcx, [rip + mm_buffer]
    test rcx, rcx
    jz .Lzero
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_FreePool]
.Lzero:
    xor eax, eax
    xor edx, edx
.Lout:
    add rsp, 48
    pop rdi
    pop rsi
    pop rbx
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
