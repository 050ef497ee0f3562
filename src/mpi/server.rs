//! A worker rank's loop: take in the tasks rank 0 sent, run them in order, send each reply
//! without waiting for it to be received, until rank 0 says stop.
//!
//! Receiving is done between tasks and while sends are outstanding, never only after a send
//! completes: rank 0 may itself be waiting to hand this rank a large argument, and MPI
//! delivers a large message only once its receive is posted.

use std::collections::VecDeque;

use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::{Communicator, MatchedReceiveVec, Source};

use super::backoff::{Backoff, WORKER_SPIN};
use super::send::{self, PendingSend};
use super::{REPLY, STOP};
use crate::remote::image::Image;
use crate::remote::panics;
use crate::remote::wire::{self, Failure, Reply, Trampoline};

/// Serves rank 0 until it sends [`STOP`]; returns once every reply has been delivered. With
/// `print_panics`, a task's panic also goes through the hook the program had.
pub(super) fn serve(world: &SimpleCommunicator, image: Image, print_panics: bool) {
    let name = format!(
        "rank {} (pid {}, host {})",
        world.rank(),
        std::process::id(),
        ::mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into())
    );
    panics::install_worker_hook(Some(name.clone()));
    panics::set_print(print_panics);
    let root = world.process_at_rank(0);
    let mut tasks = VecDeque::new();
    let mut sends: Vec<PendingSend> = Vec::new();
    let mut stopping = false;
    let mut backoff = Backoff::new(WORKER_SPIN);
    loop {
        while let Some((message, status)) = root.immediate_matched_probe() {
            let (bytes, _) = (message, status).matched_receive_vec::<u8>();
            if status.tag() == STOP {
                stopping = true;
            } else {
                tasks.push_back(bytes);
            }
        }
        sends.retain_mut(|send| !send.is_done());
        if let Some(frame) = tasks.pop_front() {
            let reply = run(&frame, image, &name);
            drop(frame);
            sends.push(PendingSend::start(world, 0, REPLY, reply));
            backoff.reset();
        } else if stopping {
            // Rank 0 stops a worker only once it has every reply, so nothing is pending but
            // the completion of sends already received; dropping them waits for that.
            return;
        } else {
            backoff.wait();
        }
    }
}

/// Runs the task in `frame` and returns the reply frame to send.
fn run(frame: &[u8], image: Image, name: &str) -> Vec<u8> {
    let Some(request) = frame.get(wire::LEN_BYTES..).and_then(wire::parse_request) else {
        // Only a bug of this crate could send one; say so in a reply that rank 0 cannot match
        // to a task, which it logs.
        return wire::reply_frame(u64::MAX, &refused("a malformed task frame", name));
    };
    let (Some(trampoline), Some(func)) = (
        image.address_of(request.trampoline),
        image.address_of(request.func),
    ) else {
        let failure = refused("a function offset outside its executable", name);
        return wire::reply_frame(request.id, &failure);
    };
    // SAFETY: rank 0 made `request.trampoline` from `wire::trampoline::<A, R>` or
    // `wire::chunk_trampoline::<A, R>` cast to a `Trampoline`, as an offset from the anchor
    // in its executable; start-up checked that this rank runs a byte-identical executable,
    // and `address_of` that the offset lands inside it, so the address is that same function.
    let trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(trampoline) };
    let reply = match trampoline(func, request.arg) {
        Ok(bytes) => {
            if send::fits(wire::REPLY_HEADER + wire::LEN_BYTES + bytes.len()) {
                Reply::Value(bytes)
            } else {
                Reply::Failed(Failure::Serialization(format!(
                    "the result is too large for one MPI message ({} bytes)",
                    bytes.len()
                )))
            }
        }
        Err(Failure::Panicked(message)) => {
            Reply::Failed(Failure::Panicked(panics::with_backtrace(message, name)))
        }
        Err(failure) => Reply::Failed(failure),
    };
    wire::reply_frame(request.id, &reply)
}

fn refused(what: &str, name: &str) -> Reply {
    Reply::Failed(Failure::Serialization(format!("{name} received {what}")))
}
