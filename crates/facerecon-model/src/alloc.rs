//! Keep freed memory in the process between training steps (and inference batches).
//!
//! A batch-64 step allocates activations and gradients of 10-35 MB each, every step. glibc serves
//! blocks above 32 MB (its largest mmap threshold) with a fresh `mmap` and returns them with `munmap`,
//! so every step faulted in ~1 GB of new zeroed pages and shot down TLBs on both cores: ~10 % of a step
//! in the kernel (measured with `perf` on the seed config). Serving every block from the heap and never
//! trimming it makes the second step reuse the first step's pages.

/// Apply the allocator settings (glibc on Linux; elsewhere a no-op). Call once, at the start of `main`,
/// before other threads run. The same effect without code: `GLIBC_TUNABLES=glibc.malloc.mmap_max=0`.
/// Returns whether the settings were applied (false off glibc).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; callers run it before other threads start.
    unsafe {
        // mallopt returns 1 on success.
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
            && libc::mallopt(libc::M_TOP_PAD, 256 << 20) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    /// glibc accepts every setting, and a block far above the old mmap threshold is then served
    /// and freed without error.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::keep_freed_memory());
        let v = vec![1u8; 64 << 20];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
    }
}
