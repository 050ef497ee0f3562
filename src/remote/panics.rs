//! Panics in a worker process: the message travels back inside the task's error, with the
//! backtrace (when enabled) that the worker's hook keeps to send along with it; the hook also
//! prints the panic through std's own hook, as a thread pool's thread does, unless the pool was
//! built with `print_panics(false)`. A worker that is not a child of the pool's process (an MPI
//! rank) also says where it is.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where this worker is, for a worker whose pool cannot tell by itself (an MPI rank).
static LOCATION: OnceLock<String> = OnceLock::new();

/// The backtrace of the last panic in this process, when backtraces are enabled
/// (`RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`, as for `std`'s own hook).
static LAST_BACKTRACE: Mutex<Option<String>> = Mutex::new(None);

/// Whether this worker's panics go through std's hook as well ([`set_print`]).
static PRINT: AtomicBool = AtomicBool::new(true);

/// Replaces the panic hook of this worker process with one that keeps the backtrace and,
/// unless [`set_print`] said otherwise, first runs the hook that was there (std's: a worker
/// runs no user code before this), which prints the panic on the worker's standard error.
/// With a `location`, every panic message this process sends ends with it ([`locate`]).
pub(crate) fn install_worker_hook(location: Option<String>) {
    if let Some(location) = location {
        let _ = LOCATION.set(location);
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if PRINT.load(Ordering::Relaxed) {
            previous(info);
        }
        let backtrace = Backtrace::capture();
        if backtrace.status() == BacktraceStatus::Captured {
            *LAST_BACKTRACE
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(backtrace.to_string());
        }
    }));
}

/// Whether later panics of this worker go through std's hook (the pool's `print_panics`).
pub(crate) fn set_print(print: bool) {
    PRINT.store(print, Ordering::Relaxed);
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
