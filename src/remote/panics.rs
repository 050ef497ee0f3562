//! Panics in a worker process: the message travels back inside the task's error, so the
//! worker prints nothing, and keeps the backtrace (when enabled) to send along with it. A
//! worker that is not a child of the pool's process (an MPI rank) also says where it is.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::sync::{Mutex, OnceLock};

/// Where this worker is, for a worker whose pool cannot tell by itself (an MPI rank).
static LOCATION: OnceLock<String> = OnceLock::new();

/// The backtrace of the last panic in this process, when backtraces are enabled
/// (`RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`, as for `std`'s own hook).
static LAST_BACKTRACE: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the panic hook of this worker process with one that prints nothing and keeps the
/// backtrace: printing the message here as well would only duplicate it, on a terminal the
/// pool's side may not even share. With a `location`, every panic message this process sends
/// ends with it ([`locate`]).
pub(crate) fn keep_quiet(location: Option<String>) {
    if let Some(location) = location {
        let _ = LOCATION.set(location);
    }
    std::panic::set_hook(Box::new(|_| {
        let backtrace = Backtrace::capture();
        if backtrace.status() == BacktraceStatus::Captured {
            *LAST_BACKTRACE
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(backtrace.to_string());
        }
    }));
}

/// Appends the backtrace the hook captured, if any, to a panic message; `worker` says where
/// it was taken.
pub(crate) fn with_backtrace(message: String, worker: &str) -> String {
    let taken = LAST_BACKTRACE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    match taken {
        Some(backtrace) => format!("{message}\n\nbacktrace in {worker}:\n{backtrace}"),
        None => message,
    }
}

/// A panic message as the pool's side should see it: with `[on <location>]` appended in a
/// worker that has one.
pub(crate) fn locate(message: String) -> String {
    match LOCATION.get() {
        Some(location) => format!("{message} [on {location}]"),
        None => message,
    }
}
