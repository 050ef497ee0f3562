//! [`Error`]: the one enum for every way a future's result can fail.

use std::any::Any;
use std::fmt;

/// Why a [`Future`](crate::Future) holds no value, or why an operation on it failed.
///
/// It is `Clone`, so every reader of a shared future gets its own copy, and `Send + Sync`, so
/// it crosses threads like the values it replaces. Each variant names what happened; the
/// CPython exception it stands for is given in brackets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The future was cancelled before it started (`CancelledError`).
    Cancelled,
    /// A wait ran out of time; the work itself goes on (`TimeoutError`).
    Timeout,
    /// The task panicked; `message` is the panic's message (the task raised).
    Panicked {
        /// The panic payload when it was a `&str` or a `String`, else a placeholder.
        message: String,
    },
    /// The executor can no longer run work: its initializer failed, a worker died and the pool
    /// was configured to break, or the completing side was dropped (`BrokenExecutor`).
    Broken {
        /// What broke it.
        reason: String,
    },
    /// A process worker died while it held this task.
    WorkerDied {
        /// The worker's process id.
        pid: i32,
        /// How it ended: an exit code or a signal, in words.
        status: String,
    },
    /// A per-task time limit ran out and the worker running the task was killed.
    TaskTimeout,
    /// The task was submitted after `shutdown` (CPython raises `RuntimeError`).
    Shutdown,
    /// A [`Promise`](crate::Promise) was asked to start or complete a future that is already
    /// running or done: the first outcome stays (`InvalidStateError`).
    InvalidState,
    /// [`Future::into_result`](crate::Future::into_result) (or `.await` on an owned future)
    /// could not move the value out because `others` other handles to the future were alive
    /// (clones, a copy kept as a map key, the futures in `wait`'s split). Nothing is lost: the
    /// value stays in the future. Drop the other handles first, or borrow the value instead,
    /// with [`Future::result`](crate::Future::result) (`.cloned()` for a `Clone` value) or
    /// `(&future).await`.
    Shared {
        /// How many other handles were alive at the moment of the check.
        others: usize,
    },
    /// [`Future::into_result`](crate::Future::into_result) was called inside one of the
    /// future's own done-callbacks. The callbacks share the future while they run, so its value
    /// cannot be moved out there: borrow it with [`Future::result`](crate::Future::result).
    InOwnCallback,
    /// A task's argument or result could not be serialized or deserialized (process wire).
    Serialization {
        /// The serializer's own message.
        message: String,
    },
}

impl Error {
    /// Turns a payload caught by `catch_unwind` into [`Error::Panicked`], keeping the message
    /// of the two payload types `panic!` produces.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(message) => (*message).to_owned(),
                Err(_) => "panic payload of a non-string type".to_owned(),
            },
        };
        Error::Panicked { message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled => f.write_str("the future was cancelled"),
            Error::Timeout => f.write_str("timed out waiting for the future; the work goes on"),
            Error::Panicked { message } => write!(f, "task panicked: {message}"),
            Error::Broken { reason } => write!(f, "executor is broken: {reason}"),
            Error::WorkerDied { pid, status } => {
                write!(
                    f,
                    "worker process {pid} died while running the task: {status}"
                )
            }
            Error::TaskTimeout => {
                f.write_str("task ran past its time limit and its worker was killed")
            }
            Error::Shutdown => f.write_str("cannot schedule new work after shutdown"),
            Error::InvalidState => {
                f.write_str("the future is already running or done; the first outcome stays")
            }
            Error::Shared { others: 1 } => f.write_str(
                "cannot move the value out of the future: 1 other handle to it is alive; drop \
                 it first, or borrow the value with `result()` or `(&future).await`",
            ),
            Error::Shared { others } => write!(
                f,
                "cannot move the value out of the future: {others} other handles to it are \
                 alive; drop them first, or borrow the value with `result()` or \
                 `(&future).await`"
            ),
            Error::InOwnCallback => f.write_str(
                "cannot move the value out of a future inside its own done-callback, which \
                 shares it; borrow the value with `result()`",
            ),
            Error::Serialization { message } => {
                write!(
                    f,
                    "could not serialize a task's argument or result: {message}"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn panic_payloads_keep_their_message() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(
            Error::from_panic(caught).to_string(),
            "task panicked: boom 7"
        );
        let caught = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(
            Error::from_panic(caught),
            Error::Panicked {
                message: "static".into()
            }
        );
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(3_u8)).unwrap_err();
        assert!(Error::from_panic(caught).to_string().contains("non-string"));
    }
}
