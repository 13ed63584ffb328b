//! How the process allocator treats the large buffers remote execution moves.
//!
//! Every received payload (a 1 MiB audio buffer, say) lands in fresh memory twice: the
//! HTTP/2 read buffer and the decoded item. With glibc's defaults, freeing a few MiB
//! at once hands the memory back to the kernel (heap trimming, or `munmap` for
//! chunks over the adaptive mmap threshold), so the next buffers fault it in again,
//! page by page, zeroed. That cost more than the copies and the network together.
//! So executors and clients ask glibc to serve buffers up to [`MMAP_THRESHOLD`] from
//! the heap and to keep up to [`TRIM_THRESHOLD`] of freed memory per arena for reuse.
//! A process started with its own malloc thresholds (`GLIBC_TUNABLES`,
//! `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`) keeps them.

/// Largest allocation glibc serves from the heap rather than with its own mapping.
const MMAP_THRESHOLD: usize = 16 << 20;

/// Free memory at the top of a heap that glibc keeps instead of returning it.
const TRIM_THRESHOLD: usize = 64 << 20;

/// Applies the settings above, once per process (does nothing on other allocators).
pub(crate) fn retain_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
            let own_settings = tunables.contains("glibc.malloc.")
                || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
                || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some();
            if own_settings {
                return;
            }
            // SAFETY: `mallopt` only changes allocator parameters; it is thread-safe
            // and takes effect for later allocations and frees.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
            }
        });
    }
}
