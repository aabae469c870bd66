# ggml's tensor types: the table (generated from peasm/ggml.py into ggml_table.inc: one row
# per type id with its name, block size and bytes, activation format and the bodies of its
# kernels per CPU path) and the look-up of a body for the path kernels_init chose.
.include "kernels.inc"
.include "ggml_table.inc"

.section .text
.global ggml_type_body
.extern kernels_path

# ggml_type_body(ecx = ggml type id, edx = GGML_TT_TO_FLOAT | GGML_TT_FROM_FLOAT |
#                GGML_TT_MATVEC | GGML_TT_MATMAT) -> rax = the body's address for the path in kernels_path
#   (K_PATH_SSE2 or K_PATH_AVX2), or 0 when the type has no such body, the id is not below
#   GGML_TABLE_ROWS (internal types included), edx is not one of the kinds, or kernels_init has not run.
#   Each body's contract: peasm/ggml.py and the ggml_*.s file that defines it.
#   Changes rax, rcx, rdx, r8 only.
ggml_type_body:
    xor eax, eax
    cmp ecx, GGML_TABLE_ROWS
    jae .Ldone
    cmp edx, GGML_TT_PATH_BYTES
    jae .Ldone
    test edx, 7
    jnz .Ldone
    mov r8d, dword ptr [rip + kernels_path]
    sub r8d, K_PATH_SSE2              # path index: 0 sse2, 1 avx2
    cmp r8d, K_PATH_AVX2 - K_PATH_SSE2
    ja .Ldone                         # 0 (no kernels_init yet) wrapped above
    imul r8d, r8d, GGML_TT_PATH_BYTES
    add r8d, edx
    imul ecx, ecx, GGML_TT_SIZE
    add r8, rcx
    lea rax, [rip + ggml_type_table]
    mov rax, qword ptr [rax + r8 + GGML_TT_BODIES]
.Ldone:
    ret
