//! [`BuildError`]: why a pool builder could not make its pool.
//!
//! A separate type from [`Error`](crate::Error), in crossbeam's way of one error per operation:
//! `Error` is what a future's result can fail with, while this is what `build()` can fail with,
//! and the two never meet.

use std::fmt;
use std::io;

/// Why `CpuPoolBuilder::build` or `IoPoolBuilder::build` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The pool was asked for zero threads (CPython: `ValueError("max_workers must be greater
    /// than 0")`).
    ZeroWorkers,
    /// The operating system refused to start a worker thread.
    Spawn(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("a pool needs at least one worker thread"),
            BuildError::Spawn(_) => f.write_str("could not start a worker thread"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::ZeroWorkers => None,
            BuildError::Spawn(error) => Some(error),
        }
    }
}
