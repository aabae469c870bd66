# stream_read: the bandwidth probe. Reads a buffer front to back (no prefetch hints: the
# hardware prefetcher's best case) and folds it into xmm0 with integer adds, so every load
# is used. The benchmark divides the bytes read by the time taken.
.include "kernels.inc"

.section .text
.global stream_read_sse2, stream_read_avx2

# stream_read_sse2(rcx = p, rdx = bytes, rounded down to 64) -> xmm0 (a checksum)
stream_read_sse2:
    and rdx, -64
    add rdx, rcx                      # end
    pxor xmm0, xmm0
    pxor xmm1, xmm1
    pxor xmm2, xmm2
    pxor xmm3, xmm3
.Lline:
    cmp rcx, rdx
    jae .Lfold
    movdqu xmm4, [rcx]
    movdqu xmm5, [rcx + 16]
    paddd xmm0, xmm4
    paddd xmm1, xmm5
    movdqu xmm4, [rcx + 32]
    movdqu xmm5, [rcx + 48]
    paddd xmm2, xmm4
    paddd xmm3, xmm5
    add rcx, 64
    jmp .Lline
.Lfold:
    paddd xmm0, xmm1
    paddd xmm2, xmm3
    paddd xmm0, xmm2
    ret

# stream_read_avx2(rcx = p, rdx = bytes, rounded down to 64) -> xmm0 (a checksum)
stream_read_avx2:
    and rdx, -64
    add rdx, rcx
    mov rax, rdx
    sub rax, rcx
    and rax, -256
    add rax, rcx                      # end of the 256-byte blocks
    vpxor xmm0, xmm0, xmm0
    vpxor xmm1, xmm1, xmm1
    vpxor xmm2, xmm2, xmm2
    vpxor xmm3, xmm3, xmm3
.Lblock:
    cmp rcx, rax
    jae .Lline
    vpaddd ymm0, ymm0, [rcx]
    vpaddd ymm1, ymm1, [rcx + 32]
    vpaddd ymm2, ymm2, [rcx + 64]
    vpaddd ymm3, ymm3, [rcx + 96]
    vpaddd ymm0, ymm0, [rcx + 128]
    vpaddd ymm1, ymm1, [rcx + 160]
    vpaddd ymm2, ymm2, [rcx + 192]
    vpaddd ymm3, ymm3, [rcx + 224]
    add rcx, 256
    jmp .Lblock
.Lline:
    cmp rcx, rdx
    jae .Lfold
    vpaddd ymm0, ymm0, [rcx]
    vpaddd ymm1, ymm1, [rcx + 32]
    add rcx, 64
    jmp .Lline
.Lfold:
    vpaddd ymm0, ymm0, ymm1
    vpaddd ymm2, ymm2, ymm3
    vpaddd ymm0, ymm0, ymm2
    vextracti128 xmm1, ymm0, 1
    vpaddd xmm0, xmm0, xmm1
    vzeroupper
    ret
