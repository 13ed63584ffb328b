//! A crash in native code (a segfault in a Python extension an embedded-CPython node
//! loaded, a stack overflow) kills the process before anything can be flushed; this
//! makes sure it does not die silently: a line on stderr saying what happened and what
//! contains such crashes, then the signal's own exit (139 for SIGSEGV in a shell).

/// What the handler writes (async-signal-safe: one `write` of a static buffer).
const MESSAGE: &[u8] = b"\nerror: remotemedia crashed in native code (SIGSEGV/SIGBUS): a Python \
extension in an embedded-CPython node (runtime: cpython) or a stack overflow; outputs not yet \
written are lost. Python nodes with `runtime: process` run in worker processes, where a crash \
fails only that node.\n";

extern "C" fn on_crash(sig: libc::c_int) {
    // SAFETY: write(2) and raise(3) are async-signal-safe; the disposition was reset
    // to the default on entry (SA_RESETHAND), so the raised signal, delivered when
    // this returns, ends the process as the crash would have.
    unsafe {
        libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
        libc::raise(sig);
    }
}

/// Installs the handler for SIGSEGV and SIGBUS (on the alternate signal stack Rust
/// sets up for every thread, so a stack overflow can still report).
pub fn install() {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: a zeroed sigaction with a plain handler, its mask emptied; only
        // async-signal-safe calls happen in the handler.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_crash as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}
