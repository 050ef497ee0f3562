//! The worker process's loop: read a request frame, call its trampoline inside the worker's
//! own rayon pool, write the reply frame, until the request pipe ends.
//!
//! A worker is a fork of the fork server, so it starts single-threaded with a copy of the
//! program as the loader made it (the server is an `exec` of the executable that never ran
//! `main`), holding only stdin, stdout, stderr and its two pipes. Functions arrive as offsets
//! in the executable, turned into this image's addresses here. It leaves only through `_exit`
//! (never by returning into the copy of `main`), on end of file when the pool retires it, or
//! when the server dies (`PR_SET_PDEATHSIG`).
//!
//! rayon: the global pool of the program this is a copy of may exist in the image without
//! its threads (they were not copied), and a `par_iter` on it never returns. So each task runs
//! inside a pool built here, with this thread as its thread 0 (`use_current_thread`): the
//! task runs inline, with no hand-off, and any `par_iter` in it uses this pool.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::catch_unwind;

use super::{SPIN, sys};
use crate::remote::image::Image;
use crate::remote::panics;
use crate::remote::wire::{self, Failure, Reply, Trampoline};
use std::time::Instant;

/// Runs the worker, whose initializer is at `initializer` (an offset in the executable, or 0
/// for none); never returns.
pub(super) fn run(request: OwnedFd, result: OwnedFd, initializer: usize, server: i32) -> ! {
    sys::die_with_parent(server);
    panics::keep_quiet(None);
    // The server is this executable, so the worker finds it as the program did.
    let Some(image) = Image::locate() else {
        sys::exit_now(2)
    };
    let mut output = File::from(result);
    if initializer != 0 {
        let Some(initializer) = image.address_of(initializer) else {
            sys::exit_now(2)
        };
        // SAFETY: the parent made `initializer` from a `fn()` of this executable
        // (`ProcessPoolBuilder::build`), as its offset from the anchor, and `address_of`
        // checked that it lands in the executable here, so it names that same function.
        let initializer = unsafe { std::mem::transmute::<usize, fn()>(initializer) };
        if let Err(payload) = catch_unwind(initializer) {
            let message = panics::with_backtrace(wire::panic_message(payload), &worker_name());
            let _ = output.write_all(&wire::reply_frame(0, &Reply::InitFailed(message)));
            sys::exit_now(1);
        }
    }
    let request = File::from(request);
    let mut input = match sys::set_nonblocking(&request) {
        Ok(()) => BufReader::with_capacity(64 * 1024, SpinRead(request)),
        Err(_) => sys::exit_now(2),
    };
    // Built at the first task; `None` inside if the threads could not be started, and then
    // tasks run directly (a worker that cannot start threads can still run plain tasks).
    let mut rayon: Option<Option<rayon::ThreadPool>> = None;
    loop {
        let Some(body) = read_frame(&mut input) else {
            sys::exit_now(0)
        };
        let Some(request) = wire::parse_request(&body) else {
            // Not a frame of ours: the channel is corrupt, and the parent will see the exit.
            sys::exit_now(2)
        };
        let resolved = resolve(&image, request.trampoline, request.func);
        let pool = rayon.get_or_insert_with(|| {
            rayon::ThreadPoolBuilder::new()
                .use_current_thread()
                .build()
                .ok()
        });
        let call = || match resolved {
            Some((trampoline, func)) => trampoline(func, request.arg),
            None => Err(Failure::Serialization(format!(
                "{} received a function offset outside its executable",
                worker_name()
            ))),
        };
        let outcome = match pool {
            Some(pool) => pool.install(call),
            None => call(),
        };
        let reply = match outcome {
            Ok(bytes) => Reply::Value(bytes),
            Err(Failure::Panicked(message)) => Reply::Failed(Failure::Panicked(
                panics::with_backtrace(message, &worker_name()),
            )),
            Err(failure) => Reply::Failed(failure),
        };
        let frame = wire::reply_frame(request.id, &reply);
        // Free the argument before the next read, as CPython's worker does.
        drop(body);
        if output.write_all(&frame).is_err() {
            sys::exit_now(0)
        }
    }
}

/// The trampoline and function that a request names by their offsets in the executable, or
/// `None` if either lands outside it.
fn resolve(image: &Image, trampoline: usize, func: usize) -> Option<(Trampoline, usize)> {
    let trampoline = image.address_of(trampoline)?;
    let func = image.address_of(func)?;
    // SAFETY: the parent made the offset from `wire::trampoline::<A, R>` (or the chunk one)
    // cast to a `Trampoline` (`remote::submit`, `ProcessPool::dispatch`), in this same
    // executable, and `address_of` checked that it lands in the executable, so the address is
    // that same function.
    Some((
        unsafe { std::mem::transmute::<usize, Trampoline>(trampoline) },
        func,
    ))
}

/// Reads from the non-blocking request pipe, polling for [`SPIN`] before sleeping in `poll`:
/// the next task usually arrives within microseconds of the last result.
struct SpinRead(File);

impl Read for SpinRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let until = Instant::now() + SPIN;
        loop {
            match self.0.read(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() < until {
                        std::thread::yield_now();
                    } else {
                        let mut fds = [sys::pollfd(self.0.as_raw_fd(), libc::POLLIN)];
                        sys::poll(&mut fds, -1)?;
                    }
                }
                other => return other,
            }
        }
    }
}

/// How a panic's backtrace names this worker.
fn worker_name() -> String {
    format!("worker {}", sys::getpid())
}

/// Reads one frame's body; `None` at end of file (or on a read error, which ends the worker
/// the same way).
fn read_frame(input: &mut impl Read) -> Option<Vec<u8>> {
    let mut prefix = [0; wire::LEN_BYTES];
    input.read_exact(&mut prefix).ok()?;
    let len = wire::frame_len(&prefix)?;
    let mut body = vec![0; len];
    input.read_exact(&mut body).ok()?;
    Some(body)
}
