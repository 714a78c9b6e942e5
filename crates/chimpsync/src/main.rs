//! The `chimpsync` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    bound_malloc();
    chimpsync::main()
}

/// glibc malloc raises its mmap threshold every time a large block is freed, after which a
/// batch's request and answer bodies (hundreds of KiB each, one per batch in progress) come from
/// the heap arenas instead and leave them fragmented: the worker's resident memory crept up to
/// about 70 MiB in the initial sync of 1M customers (benchmark scenario 1). A fixed threshold
/// keeps large blocks mapped and gives them back to the system when freed; two arenas are enough
/// for a runtime of two worker threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_malloc() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc() {}
