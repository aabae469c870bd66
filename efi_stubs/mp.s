# The other cores: EFI_MP_SERVICES_PROTOCOL (UEFI Platform Initialization spec, vol. 2,
# "MP Services Protocol"). The application processors (APs) are started ONCE, all together,
# with StartupAllAPs in non-blocking mode (which needs a WaitEvent: CreateEvent with no
# notification), each running a procedure the program gives and that never has to return.
# An AP never calls boot services (the spec allows APs none); before the procedure it enables
# its own AVX state when the boot core found AVX usable (CR4 and XCR0 are per core; the same
# steps as cpu_detect on the boot core, only when needed), then takes a number 0, 1, ... in
# the order the APs arrive and moves to a stack of its own (MP_AP_STACK_BYTES, allocated by
# the boot core): the firmware's AP stacks can be small (EDK2's PcdCpuApStackSize, 32 KiB by
# default, less on some platforms), and a kernel body may use a few KiB of frame.
.include "uefi.inc"
.include "runtime.inc"

.equ MP_AP_STACK_BYTES, 65536         # each AP's own stack (a multiple of 16)

.section .rdata
mp_guid: EFI_MP_SERVICES_PROTOCOL_GUID

.section .data
.balign 8
.global rt_mp_cpus, rt_mp_running
rt_mp_cpus:      .long 1              # processors the program may use, the boot core included
rt_mp_running:   .long 0              # APs inside the procedure now
mp_wanted:       .long 0              # APs given the procedure (numbers below it)
mp_next:         .long 0              # the next AP number handed out
mp_procedure:    .quad 0
mp_stacks:       .quad 0              # mp_wanted stacks of MP_AP_STACK_BYTES, AP k's is the k-th
mp_protocol:     .quad 0
mp_event:        .quad 0
mp_count:        .quad 0              # GetNumberOfProcessors: all processors
mp_enabled:      .quad 0              #                         enabled ones (boot core included)

.section .text
.global rt_mp_start
.extern rt_boot_services, cpu_features, rt_alloc_pages, rt_free_pages

# rt_mp_start(rcx = procedure, edx = most APs wanted) -> eax = APs that run procedure(ecx =
#   their number, 0 .. eax-1), also rt_mp_cpus = eax + 1. Call once, from the boot core,
#   after cpu_detect. 0 when the firmware has no MP services, there is one processor, edx is
#   0, the pages for the APs' own stacks cannot be had, or StartupAllAPs refuses (the boot
#   core then works alone, as before). APs beyond edx return at once. The procedure (MS x64)
#   runs on the AP's own 16-byte aligned stack of MP_AP_STACK_BYTES; it must not call boot
#   services. The APs it runs on are busy until it returns.
rt_mp_start:
    push rbx
    push rsi
    sub rsp, 72                       # shadow + 3 stack args for StartupAllAPs
    mov [rip + mp_procedure], rcx
    mov esi, edx
    test esi, esi
    jz .Lnone
    lea rcx, [rip + mp_guid]          # LocateProtocol(&guid, NULL, &protocol)
    xor edx, edx
    lea r8, [rip + mp_protocol]
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_LocateProtocol]
    test rax, rax
    jnz .Lnone
    mov rcx, [rip + mp_protocol]      # GetNumberOfProcessors(this, &count, &enabled)
    lea rdx, [rip + mp_count]
    lea r8, [rip + mp_enabled]
    call qword ptr [rcx + EFI_MP_SERVICES_PROTOCOL_GetNumberOfProcessors]
    test rax, rax
    jnz .Lnone
    mov rbx, [rip + mp_enabled]
    sub rbx, 1                        # APs enabled
    jbe .Lnone
    cmp rbx, rsi
    cmova rbx, rsi                    # those that will run the procedure
    mov rcx, rbx                      # their stacks, before any AP can need them
    imul rcx, rcx, MP_AP_STACK_BYTES
    call rt_alloc_pages
    test rax, rax
    jz .Lnone
    mov [rip + mp_stacks], rax
    mov [rip + mp_wanted], ebx
    mov ecx, 0                        # CreateEvent(Type 0, TPL_CALLBACK, NULL, NULL, &event)
    mov edx, TPL_CALLBACK
    xor r8d, r8d
    xor r9d, r9d
    lea rax, [rip + mp_event]
    mov [rsp + 32], rax
    mov rax, [rip + rt_boot_services]
    call qword ptr [rax + EFI_BOOT_SERVICES_CreateEvent]
    test rax, rax
    jnz .Lnone
    # StartupAllAPs(this, ap_entry, SingleThread = FALSE, WaitEvent, timeout 0 (none),
    #               argument NULL, FailedCpuList NULL): returns at once (non-blocking)
    mov rcx, [rip + mp_protocol]
    lea rdx, [rip + ap_entry]
    xor r8d, r8d
    mov r9, [rip + mp_event]
    mov qword ptr [rsp + 32], 0
    mov qword ptr [rsp + 40], 0
    mov qword ptr [rsp + 48], 0
    call qword ptr [rcx + EFI_MP_SERVICES_PROTOCOL_StartupAllAPs]
    test rax, rax
    jnz .Lnone
    mov eax, ebx
    jmp .Lout
.Lnone:
    mov rcx, [rip + mp_stacks]        # a refusal after the stacks were had: give them back
    test rcx, rcx
    jz .Lno_stacks
    mov edx, [rip + mp_wanted]
    imul rdx, rdx, MP_AP_STACK_BYTES
    call rt_free_pages
    mov qword ptr [rip + mp_stacks], 0
.Lno_stacks:
    mov dword ptr [rip + mp_wanted], 0
    xor eax, eax
.Lout:
    lea ecx, [rax + 1]
    mov [rip + rt_mp_cpus], ecx
    add rsp, 72
    pop rsi
    pop rbx
    ret

# ap_entry(rcx = argument, unused): what every AP runs (the EFI_AP_PROCEDURE).
ap_entry:
    push rbp
    mov rbp, rsp
    and rsp, -16                      # whatever the firmware's AP stack gave, aligned here
    sub rsp, 32
    call ap_enable_avx
    mov eax, 1
    lock xadd [rip + mp_next], eax    # this AP's number
    cmp eax, [rip + mp_wanted]
    jae .Lreturn
    lock inc dword ptr [rip + rt_mp_running]
    lea rcx, [rax + 1]                # onto this AP's own stack: the top of the number-th
    imul rcx, rcx, MP_AP_STACK_BYTES
    add rcx, [rip + mp_stacks]
    lea rsp, [rcx - 32]               # (rbp keeps the firmware's stack for the way back)
    mov ecx, eax
    call qword ptr [rip + mp_procedure]
    lock dec dword ptr [rip + rt_mp_running]
.Lreturn:
    mov rsp, rbp
    pop rbp
    ret

# ap_enable_avx(): on this core, the AVX state the boot core found usable (cpu_features has
# CPU_AVX): CR4.OSXSAVE when CPUID says it is still clear (we are ring 0 with no OS, as on
# the boot core), then XCR0 |= x87|SSE|AVX when XCR0 lacks the SSE|AVX state. Under an OS
# both are already set, and nothing privileged runs. Clobbers rax, rcx, rdx, r8.
ap_enable_avx:
    test dword ptr [rip + cpu_features], CPU_AVX
    jz .Lret
    push rbx                          # cpuid clobbers rbx
    mov eax, 1
    xor ecx, ecx
    cpuid
    bt ecx, 27                        # OSXSAVE: CR4.OSXSAVE of this core
    jc .Lxcr0
    mov rax, cr4
    bts rax, 18
    mov cr4, rax
.Lxcr0:
    xor ecx, ecx
    xgetbv
    mov r8d, eax
    and eax, 6
    cmp eax, 6
    je .Ldone
    mov eax, r8d
    or eax, 7                         # x87 | SSE | AVX (edx: the upper half, as read)
    xor ecx, ecx
    xsetbv
.Ldone:
    pop rbx
.Lret:
    ret
