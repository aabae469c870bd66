# CPU feature detection, once at boot. AVX needs the OS (here: us) to enable its register
# state: when CPUID reports AVX but CR4.OSXSAVE is still clear we are the OS (bare
# firmware, ring 0), so we set CR4.OSXSAVE and XCR0 |= x87|SSE|AVX. When OSXSAVE is already
# set (an OS, or firmware that did it) we only read XCR0, so the same binary runs hosted.
.include "runtime.inc"

.section .data
.balign 4
.global cpu_features
cpu_features: .long 0

.section .rdata
cpu_line:      .asciz "cpu:"
# (bit, name) pairs for cpu_print_features, in the order printed; a zero bit ends the list
.balign 8
cpu_names:
    .long CPU_SSE2
    .asciz " sse2"
    .balign 4
    .long CPU_AVX
    .asciz " avx"
    .balign 4
    .long CPU_AVX2
    .asciz " avx2"
    .balign 4
    .long CPU_FMA
    .asciz " fma"
    .balign 4
    .long CPU_F16C
    .asciz " f16c"
    .balign 4
    .long CPU_AVX512F
    .asciz " avx512f"
    .balign 4
    .long 0
newline:       .asciz "\n"

.section .text
.global cpu_detect, cpu_print_features
.extern rt_print_cstr

# cpu_detect() -> eax = CPU_* bits, also stored in cpu_features.
cpu_detect:
    push rbx                          # cpuid clobbers rbx
    xor r8d, r8d                      # feature bits found
    xor eax, eax
    cpuid
    mov r9d, eax                      # highest standard leaf
    mov eax, 1
    xor ecx, ecx
    cpuid
    mov r10d, ecx                     # leaf 1 ecx: FMA(12) OSXSAVE(27) AVX(28) F16C(29)
    bt edx, 26                        # SSE2
    jnc .Lleaf7
    or r8d, CPU_SSE2
.Lleaf7:
    xor r11d, r11d                    # leaf 7 ebx: AVX2(5) AVX512F(16)
    cmp r9d, 7
    jb .Lhave_leaves
    mov eax, 7
    xor ecx, ecx
    cpuid
    mov r11d, ebx
.Lhave_leaves:
    bt r11d, 16
    jnc .Lavx
    or r8d, CPU_AVX512F
.Lavx:
    bt r10d, 28
    jnc .Ldone
    bt r10d, 27
    jc .Lcheck_xcr0
    mov rax, cr4                      # ring 0 with no OS: enable the AVX state ourselves
    bts rax, 18                       # CR4.OSXSAVE
    mov cr4, rax
    xor ecx, ecx
    xgetbv
    or eax, 7                         # x87 | SSE | AVX (YMM upper halves)
    xsetbv
    or r8d, CPU_AVX_ENABLED_HERE
.Lcheck_xcr0:
    xor ecx, ecx
    xgetbv
    and eax, 6
    cmp eax, 6
    jne .Ldone
    or r8d, CPU_AVX
    bt r10d, 12
    jnc .Lf16c
    or r8d, CPU_FMA
.Lf16c:
    bt r10d, 29
    jnc .Lavx2
    or r8d, CPU_F16C
.Lavx2:
    bt r11d, 5
    jnc .Ldone
    or r8d, CPU_AVX2
.Ldone:
    mov [rip + cpu_features], r8d
    mov eax, r8d
    pop rbx
    ret

# cpu_print_features(): "cpu: sse2 avx avx2 fma f16c\n" with the features found.
cpu_print_features:
    push rbx
    push rsi
    sub rsp, 40
    lea rcx, [rip + cpu_line]
    call rt_print_cstr
    lea rbx, [rip + cpu_names]
.Lentry:
    mov eax, [rbx]
    test eax, eax
    jz .Lend
    lea rsi, [rbx + 4]                # the name
    test [rip + cpu_features], eax
    jz .Lskip
    mov rcx, rsi
    call rt_print_cstr
.Lskip:                               # step over the name and its padding to the next entry
    cmp byte ptr [rsi], 0
    lea rsi, [rsi + 1]
    jne .Lskip
    lea rbx, [rsi + 3]
    and rbx, -4
    jmp .Lentry
.Lend:
    lea rcx, [rip + newline]
    call rt_print_cstr
    add rsp, 40
    pop rsi
    pop rbx
    ret
