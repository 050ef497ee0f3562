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
//! task runs inline, with no hand-off, and any `par_iter` in it uses this pool. Its size comes
//! from the pool ([`Settings`], the first bytes on the request pipe): by default a share of the
//! cores, so that all the workers together run about one thread per core.
//!
//! A request's length prefix is checked against the pool's frame limit and its body grows as
//! its bytes arrive, so a corrupt prefix cannot make the worker allocate what was never sent.

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
    panics::install_worker_hook(None);
    // The server is this executable, so the worker finds it as the program did.
    let Some(image) = Image::locate() else {
        sys::exit_now(2)
    };
    let mut output = File::from(result);
    // The settings were in the pipe before this worker was forked, so this read does not wait;
    // they come first because they say whether the initializer's panic prints.
    let mut request = File::from(request);
    let mut settings = [0; SETTINGS_BYTES];
    if request.read_exact(&mut settings).is_err() {
        sys::exit_now(0)
    }
    let settings = Settings::decode(&settings);
    panics::set_print(settings.print_panics);
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
    let input = match sys::set_nonblocking(&request) {
        Ok(()) => BufReader::with_capacity(64 * 1024, SpinRead(request)),
        Err(_) => sys::exit_now(2),
    };
    serve_tasks(&image, settings, input, output)
}

/// What the pool tells a worker before its first request (the first bytes on its request
/// pipe): the pool's choices that the fork server does not need to know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Settings {
    /// Threads of the worker's rayon pool.
    pub(super) threads: usize,
    /// The largest frame body the pool accepts: longer requests are refused, longer replies
    /// are replaced by a short failure.
    pub(super) max_frame_bytes: usize,
    /// Whether a panic in the worker also goes through std's panic hook, which prints it on
    /// the worker's standard error (the program's, inherited through the fork server).
    pub(super) print_panics: bool,
}

/// Bytes of encoded [`Settings`].
const SETTINGS_BYTES: usize = 17;

impl Settings {
    pub(super) fn encode(self) -> [u8; SETTINGS_BYTES] {
        let mut out = [0; SETTINGS_BYTES];
        out[..8].copy_from_slice(&(self.threads as u64).to_le_bytes());
        out[8..16].copy_from_slice(&(self.max_frame_bytes as u64).to_le_bytes());
        out[16] = u8::from(self.print_panics);
        out
    }

    fn decode(bytes: &[u8; SETTINGS_BYTES]) -> Settings {
        let word = |at: usize| usize::try_from(wire::u64_at(&bytes[at..])).unwrap_or(usize::MAX);
        Settings {
            threads: word(0),
            max_frame_bytes: word(8),
            print_panics: bytes[16] != 0,
        }
    }
}

/// The task loop: runs requests, whose functions are offsets in `image`, until end of file;
/// never returns.
fn serve_tasks(image: &Image, settings: Settings, mut input: impl Read, mut output: File) -> ! {
    // Built at the first task; `None` inside if the threads could not be started, and then
    // tasks run directly (a worker that cannot start threads can still run plain tasks).
    let mut rayon: Option<Option<rayon::ThreadPool>> = None;
    loop {
        let Some(body) = read_frame(&mut input, settings.max_frame_bytes) else {
            sys::exit_now(0)
        };
        let Some(request) = wire::parse_request(&body) else {
            // Not a frame of ours: the channel is corrupt, and the parent will see the exit.
            sys::exit_now(2)
        };
        let resolved = resolve(image, request.trampoline, request.func);
        let pool = rayon.get_or_insert_with(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(settings.threads)
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
            Ok(bytes) if bytes.len() + wire::REPLY_HEADER > settings.max_frame_bytes => {
                Reply::Failed(Failure::Serialization(format!(
                    "the result is too large to send: a frame of {} bytes, over the pool's \
                     max_frame_bytes ({})",
                    bytes.len() + wire::REPLY_HEADER,
                    settings.max_frame_bytes
                )))
            }
            Ok(bytes) => Reply::Value(bytes),
            Err(Failure::Panicked(message)) => Reply::Failed(Failure::Panicked(
                panics::with_backtrace(message, &worker_name()),
            )),
            Err(failure) => Reply::Failed(failure),
        };
        // Free the argument before the reply is built, as CPython's worker does.
        let id = request.id;
        drop(body);
        let frame = wire::reply_frame(id, &reply);
        drop(reply);
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

/// Reads one frame's body; `None` at end of file, on a read error, or for a frame over `max`
/// (which ends the worker the same way: the parent never sends one). The body grows as its
/// bytes arrive, so a corrupt length allocates nothing it was not sent.
fn read_frame(input: &mut impl Read, max: usize) -> Option<Vec<u8>> {
    let mut prefix = [0; wire::LEN_BYTES];
    input.read_exact(&mut prefix).ok()?;
    let len = wire::frame_len(&prefix).filter(|&len| len <= max)?;
    let mut body = Vec::new();
    input.take(len as u64).read_to_end(&mut body).ok()?;
    (body.len() == len).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip() {
        let settings = Settings {
            threads: 3,
            max_frame_bytes: 1 << 30,
            print_panics: true,
        };
        assert_eq!(Settings::decode(&settings.encode()), settings);
    }

    #[test]
    fn a_frame_over_the_limit_or_cut_short_is_refused() {
        let mut frame = 5_u32.to_le_bytes().to_vec();
        frame.extend_from_slice(b"hello");
        assert_eq!(read_frame(&mut &frame[..], 5), Some(b"hello".to_vec()));
        assert_eq!(read_frame(&mut &frame[..], 4), None);
        // Claims 2 GiB, sends 5 bytes: refused at end of file, having held only those.
        let mut lying = 0x7fff_ffff_u32.to_le_bytes().to_vec();
        lying.extend_from_slice(b"hello");
        assert_eq!(read_frame(&mut &lying[..], usize::MAX), None);
    }
}
