# The chat program's cores: the pool of worker cores, started once at boot through UEFI MP
# services (efi_stubs/mp.s), each serving the kernels' job board (kernels_asm/parallel.s);
# the `threads` setting says how many cores, the boot core included, share the work.
.include "runtime.inc"

.equ THREADS_MAX_WORKERS, 255         # = PAR_MAX_WORKERS in kernels_asm/parallel.s

.section .rdata
s_threads: .asciz "threads: "
s_of:      .asciz " of "
s_cores:   .asciz " cores ("
s_running: .asciz " workers running, "
s_chunks:  .asciz " chunks done by them)\n"

.section .text
.global threads_start, threads_apply, threads_print
.extern rt_mp_start, rt_mp_cpus, k_par_worker, k_par_set_workers, k_par_workers, set_threads
.extern rt_print_cstr, rt_print_u64, rt_mp_running, k_par_worker_chunks

# threads_start(): once at boot, after cpu_detect: every AP the firmware has runs
# k_par_worker (none without MP services: the boot core works alone).
threads_start:
    sub rsp, 40
    lea rcx, [rip + k_par_worker]
    mov edx, THREADS_MAX_WORKERS
    call rt_mp_start
    add rsp, 40
    ret

# threads_apply(): the threads setting takes effect (0 or more than there are: all cores):
# threads - 1 workers take rows. Cheap; called with the other settings.
threads_apply:
    sub rsp, 40
    mov ecx, [rip + set_threads]
    mov eax, [rip + rt_mp_cpus]
    test ecx, ecx
    cmovz ecx, eax
    cmp ecx, eax
    cmova ecx, eax
    dec ecx                           # workers (rt_mp_cpus >= 1)
    call k_par_set_workers
    add rsp, 40
    ret

# threads_print(): "threads: T of C cores (W workers running, N chunks done by them)": the
# setting in effect, the cores usable, the APs inside the worker loop, the work they did.
threads_print:
    sub rsp, 40
    lea rcx, [rip + s_threads]
    call rt_print_cstr
    mov ecx, [rip + k_par_workers]
    inc ecx
    call rt_print_u64
    lea rcx, [rip + s_of]
    call rt_print_cstr
    mov ecx, [rip + rt_mp_cpus]
    call rt_print_u64
    lea rcx, [rip + s_cores]
    call rt_print_cstr
    mov ecx, [rip + rt_mp_running]
    call rt_print_u64
    lea rcx, [rip + s_running]
    call rt_print_cstr
    mov rcx, [rip + k_par_worker_chunks]
    call rt_print_u64
    lea rcx, [rip + s_chunks]
    call rt_print_cstr
    add rsp, 40
    ret
