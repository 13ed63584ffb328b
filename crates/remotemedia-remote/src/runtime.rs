//! The async runtime behind the blocking client API.
//!
//! Pipeline nodes are synchronous and run on the executor's own threads, so the
//! client side of remote execution drives its gRPC calls on one shared, lazily started
//! tokio runtime and blocks the calling thread until they finish.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// The shared client runtime (two worker threads, started on first use).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        crate::memory::retain_freed_buffers();
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rm-remote-client")
            .enable_all()
            .build()
            .expect("cannot start the remote client runtime")
    })
}

/// Runs `f` to completion on the shared runtime, blocking the calling thread. Safe to
/// call from inside another tokio runtime: the future then runs from a helper thread.
pub fn block_on<F: Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    if Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| runtime().block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        runtime().block_on(f)
    }
}
