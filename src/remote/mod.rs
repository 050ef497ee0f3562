//! What every pool that runs plain functions in other processes shares, whatever carries the
//! bytes (pipes to forked workers, MPI to other ranks): the wire format and trampolines
//! ([`wire`]), the typed end of a task that the carrier holds type-erased ([`Slot`]), and the
//! two ways a task is made ([`submit`], [`submit_chunk`]).
//!
//! Functions travel as offsets in the executable ([`image`]); a pool says where the frame goes,
//! and refuses a function it cannot name, by implementing [`Dispatch`].

pub(crate) mod image;
pub(crate) mod panics;
pub(crate) mod wire;

use crate::error::Error;
use crate::executor::Payload;
use crate::future::{Future, Promise};
use crate::map::Chunk;

/// The typed end of a task: its promise, behind a type-erased interface so that a pool can
/// hold tasks of every argument and result type in one queue.
pub(crate) trait Slot: Send {
    /// Marks the future running; false if it was cancelled and the task must be skipped.
    fn start(&mut self) -> bool;
    /// Cancels the future of a task that never started.
    fn cancel(self: Box<Self>);
    /// Completes the future: decodes the result bytes, or records the error.
    fn finish(self: Box<Self>, outcome: Result<Vec<u8>, Error>);
}

/// A pool that sends encoded calls somewhere: the one thing [`submit`] and [`submit_chunk`]
/// need from it.
pub(crate) trait Dispatch {
    /// Queues a call of the function at address `func` through `trampoline` on the encoded
    /// `arg` (as [`wire::encode_argument`] made it: with room for the frame's header in
    /// front, so that [`wire::request_frame`] builds the frame in place), or finishes `slot`
    /// with the reason it cannot be sent. How the two addresses travel is the pool's business.
    fn dispatch(
        &self,
        trampoline: wire::Trampoline,
        func: usize,
        arg: Vec<u8>,
        slot: Box<dyn Slot>,
    );
}

/// Schedules `f(arg)` on `pool`: the argument is encoded here, on the caller's thread, so a
/// value that does not serialize fails its own future and nothing is sent.
pub(crate) fn submit<A: Payload, R: Payload>(
    pool: &impl Dispatch,
    f: fn(A) -> R,
    arg: A,
) -> Future<R> {
    let (promise, future) = Promise::new();
    let slot = Typed::plain(promise);
    send(pool, wire::trampoline::<A, R>, f as usize, &arg, slot);
    future
}

/// Schedules `f` over a whole chunk of items as one task, each item's panic caught on its own
/// in the worker: one round trip per chunk is what makes `map_fn` cheap per item.
pub(crate) fn submit_chunk<A: Payload, R: Payload>(
    pool: &impl Dispatch,
    f: fn(A) -> R,
    items: Vec<A>,
) -> Future<Chunk<R>> {
    let (promise, future) = Promise::new();
    let slot = Typed {
        promise,
        convert: wire::chunk_from_wire::<R>,
    };
    send(
        pool,
        wire::chunk_trampoline::<A, R>,
        f as usize,
        &items,
        slot,
    );
    future
}

fn send<A: Payload, W: Payload, R: Send + Sync + 'static>(
    pool: &impl Dispatch,
    trampoline: wire::Trampoline,
    func: usize,
    arg: &A,
    slot: Typed<W, R>,
) {
    match wire::encode_argument(arg) {
        Ok(bytes) => pool.dispatch(trampoline, func, bytes, Box::new(slot)),
        Err(error) => Box::new(slot).finish(Err(error)),
    }
}

/// Implements [`FnExecutor`](crate::FnExecutor) for a pool that implements [`Dispatch`] and
/// has a `workers` field: the same three methods for every pool of other processes.
macro_rules! fn_executor_over_dispatch {
    ($pool:ty) => {
        impl $crate::executor::FnExecutor for $pool {
            fn submit_fn<A, R>(&self, f: fn(A) -> R, arg: A) -> $crate::future::Future<R>
            where
                A: $crate::executor::Payload,
                R: $crate::executor::Payload,
            {
                $crate::remote::submit(self, f, arg)
            }

            /// One task, one message each way, for the whole chunk: what makes `map_fn`
            /// cheap per item.
            fn submit_fn_chunk<A, R>(
                &self,
                f: fn(A) -> R,
                items: Vec<A>,
            ) -> $crate::future::Future<$crate::map::Chunk<R>>
            where
                A: $crate::executor::Payload,
                R: $crate::executor::Payload,
            {
                $crate::remote::submit_chunk(self, f, items)
            }

            fn max_workers(&self) -> usize {
                self.workers
            }
        }
    };
}
pub(crate) use fn_executor_over_dispatch;

/// The promise of a task whose result travels as `W` and is handed out as `R`.
pub(crate) struct Typed<W, R> {
    pub(crate) promise: Promise<R>,
    pub(crate) convert: fn(W) -> R,
}

impl<R> Typed<R, R> {
    /// A task whose result travels as itself.
    pub(crate) fn plain(promise: Promise<R>) -> Self {
        Typed {
            promise,
            convert: std::convert::identity,
        }
    }
}

impl<W: Payload, R: Send + Sync + 'static> Slot for Typed<W, R> {
    fn start(&mut self) -> bool {
        self.promise.set_running_or_notify_cancel() == Ok(true)
    }

    fn cancel(mut self: Box<Self>) {
        self.promise.cancel();
    }

    fn finish(mut self: Box<Self>, outcome: Result<Vec<u8>, Error>) {
        let outcome = outcome.and_then(|bytes| wire::decode_result::<W>(&bytes));
        // Fails only when the future was cancelled while still queued, which is fine.
        let _ = match outcome {
            Ok(value) => self.promise.set_result((self.convert)(value)),
            Err(error) => self.promise.set_error(error),
        };
    }
}
