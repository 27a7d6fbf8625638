//! Keep freed memory in the process between training steps.
//!
//! A batch-64 step allocates activations and gradients of 10-35 MB each, every step. glibc serves
//! blocks above 32 MB (its largest mmap threshold) with a fresh `mmap` and returns them with `munmap`,
//! so every step faulted in ~1 GB of new zeroed pages and shot down TLBs on both cores: ~10 % of a step
//! in the kernel (measured with `perf` on the seed config). Serving every block from the heap and never
//! trimming it makes the second step reuse the first step's pages.

/// Apply the allocator settings (glibc on Linux; elsewhere a no-op). Call once, before the first step.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any training thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
