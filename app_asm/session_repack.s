# The loaded model's weights in the layout the kernel path runs fastest: repacked into
# 8-row groups (model_repack.s, the R8 types) when the `repack` setting was on at the model's
# load and the path has the kernels for them (AVX2), back in the file's layout when another
# path is chosen (/attn sse2). Says on one line how many weights moved.
#
#   session_repack_load()   at a model's load, once the run state exists and kernels_init
#       has run (before sess_loaded is set): takes the `repack` setting for this model and
#       repacks. Prints "weights: N repacked to 8-row groups (avx2 kernels)" when N > 0.
#   session_repack_sync()   after a change of kernel path (session_apply_settings): when a
#       model is loaded, its weights follow the path; prints the same line when more weights
#       are in 8-row groups than before, "weights: back in the file's layout (the sse2
#       kernels have no 8-row form)" when none are left of some.
#   session_repack_cfg()    /cfg's line while a model is loaded: "weights of the loaded
#       model: N in 8-row groups (repack applies at the next model load)"
# All follow the MS x64 ABI and clobber the volatile registers.
.include "model.inc"

.section .bss
.balign 4
sess_repack_want:  .skip 4            # the repack setting as it was at this model's load
sess_repack_count: .skip 4            # weights in 8-row groups now

.section .rdata
s_repacked:   .asciz "weights: %u repacked to 8-row groups (%s kernels)\n"
s_unpacked:   .asciz "weights: back in the file's layout (the %s kernels have no 8-row form)\n"
s_cfg_line:   .asciz "weights of the loaded model: %u in 8-row groups (repack applies at the next model load)\n"
s_sse2:       .asciz "sse2"
s_avx2:       .asciz "avx2"

.section .text
.global session_repack_load, session_repack_sync, session_repack_cfg
.extern model_repack, sess_model, sess_loaded, set_repack, kernels_path, rt_printf

session_repack_load:
    mov eax, [rip + set_repack]
    mov [rip + sess_repack_want], eax
    mov dword ptr [rip + sess_repack_count], 0
    jmp repack_now

session_repack_sync:
    cmp dword ptr [rip + sess_loaded], 0
    jne repack_now
    ret

# repack_now(): model_repack(sess_model, want), then the line when the count changed
repack_now:
    push rbx
    sub rsp, 32
    lea rcx, [rip + sess_model]
    mov edx, [rip + sess_repack_want]
    call model_repack
    mov ebx, [rip + sess_repack_count]
    mov [rip + sess_repack_count], eax
    lea r8, [rip + s_sse2]
    cmp dword ptr [rip + kernels_path], K_PATH_AVX2
    jne 1f
    lea r8, [rip + s_avx2]
1:
    cmp eax, ebx
    je .Lsame
    jb .Lfewer
    lea rcx, [rip + s_repacked]
    mov edx, eax
    call rt_printf
    jmp .Lsame
.Lfewer:
    test eax, eax
    jnz .Lsame                        # (some left: a path with part of the forms; none yet)
    lea rcx, [rip + s_unpacked]
    mov rdx, r8
    call rt_printf
.Lsame:
    add rsp, 32
    pop rbx
    ret

session_repack_cfg:
    cmp dword ptr [rip + sess_loaded], 0
    je 1f
    sub rsp, 40
    lea rcx, [rip + s_cfg_line]
    mov edx, [rip + sess_repack_count]
    call rt_printf
    add rsp, 40
1:
    ret
