//! [`BuildError`]: why a pool could not be made, the same type for every pool's `new` and
//! `build` (and for [`process::init`](crate::process::init)).
//!
//! A separate type from [`Error`](crate::Error), in crossbeam's way of one error per operation:
//! `Error` is what a future's result can fail with, while this is what making a pool can fail
//! with, and the two never meet. Python raises `ValueError` for `max_workers <= 0`; a `Result`
//! is the Rust analogue.

use std::fmt;
use std::io;

/// Why a pool could not be made: what `CpuPool`, `IoPool` and `ProcessPool`'s `new` and
/// `build` return.
///
/// Each variant says what happened; its `Display` also says what to do about it. The variants
/// that wrap an [`io::Error`] give it back as [`source`](std::error::Error::source).
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// An option that must be at least 1 was 0 (CPython: `ValueError("max_workers must be
    /// greater than 0")`). `option` is the builder method's name, e.g. `"max_workers"`.
    Zero {
        /// The option, named as its builder method.
        option: &'static str,
    },
    /// The operating system refused to start a thread: one of a `CpuPool`'s threads, or a
    /// `ProcessPool`'s manager thread.
    ThreadSpawn(io::Error),
    /// `ProcessPool` only: a pipe, socket or eventfd for the pool could not be made (usually the
    /// limit of open files).
    Pipe(io::Error),
    /// `ProcessPool` only: the fork server, this executable run again from `/proc/self/exe`,
    /// could not be started (its fork or exec failed) or reached, or it died before it was
    /// ready.
    ForkServerStart(io::Error),
    /// `ProcessPool` only: the fork server started but did not say it was ready within 30 s.
    ForkServerTimeout,
    /// `ProcessPool` only: this crate is linked into a shared library, not into the executable
    /// that the fork server runs again, so the server would not be this crate's.
    NotInExecutable,
    /// `ProcessPool` only: the [initializer](crate::process::ProcessPoolBuilder::initializer)
    /// is not a function of the executable (a shared library's?), so no worker could name it.
    InitializerNotInExecutable,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Zero { option } => write!(f, "{option} must be at least 1, not 0"),
            BuildError::ThreadSpawn(_) => f.write_str(
                "could not start a thread for the pool: the system is out of threads or memory",
            ),
            BuildError::Pipe(_) => f.write_str(
                "could not open the process pool's pipes or sockets: the limit of open files \
                 (`ulimit -n`) may be reached",
            ),
            BuildError::ForkServerStart(_) => f.write_str(
                "could not start the fork server (this executable run again from \
                 /proc/self/exe): see the cause below",
            ),
            BuildError::ForkServerTimeout => f.write_str(
                "the fork server (this executable run again) was not ready within 30 s: the \
                 machine may be overloaded",
            ),
            BuildError::NotInExecutable => f.write_str(
                "concurrent-futures is linked into a shared library, but the fork server runs \
                 the executable: link the crate into the program itself",
            ),
            BuildError::InitializerNotInExecutable => f.write_str(
                "the initializer is not a function of the executable (a shared library's?), so \
                 no worker can call it: pass a function of the program itself",
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::ThreadSpawn(error)
            | BuildError::Pipe(error)
            | BuildError::ForkServerStart(error) => Some(error),
            _ => None,
        }
    }
}
