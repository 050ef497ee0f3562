//! Rank 0's progress thread: the one thread of the program that makes MPI calls. It hands
//! queued tasks to the worker ranks, a few at a time per rank (the pipeline depth, so a rank
//! finds its next task waiting), collects replies in whatever order they come, completes the
//! futures, and at shutdown tells every worker to stop.
//!
//! It is the thread that initialized MPI, and so also the one that finalizes it (the MPI
//! standard asks for both on the same thread), when it ends.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::{Communicator, MatchedReceiveVec, Source};

use super::backoff::{Backoff, CLIENT_SPIN, Step};
use super::send::PendingSend;
use super::{REPLY, STOP, TASK};
use crate::error::Error;
use crate::remote::Slot;
use crate::remote::wire::{self, Failure, Reply};

/// A submitted task: its request frame, ready to send, and its slot.
pub(super) struct Task {
    pub(super) id: u64,
    pub(super) frame: Vec<u8>,
    pub(super) slot: Box<dyn Slot>,
}

/// What the pool handle and the progress thread share.
#[derive(Default)]
pub(super) struct State {
    /// Tasks not yet sent to a rank; still cancellable.
    pub(super) queue: VecDeque<Task>,
    /// `shutdown` was called: send what is queued, then stop the workers.
    pub(super) shutdown: bool,
    /// The progress thread sleeps on [`Shared::wake`] and must be notified of new work.
    parked: bool,
}

/// The state and the condition variable the progress thread sleeps on.
#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    /// Locks the state, ignoring poisoning (no code panics while holding it).
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Releases `state` and wakes the progress thread if it sleeps: the only way a submit or
    /// a shutdown reaches it while it has nothing to poll for.
    pub(super) fn notify(&self, state: MutexGuard<'_, State>) {
        let parked = state.parked;
        drop(state);
        if parked {
            self.wake.notify_one();
        }
    }
}

/// The progress thread's state. Field order matters: fields drop in order, and the sends
/// must complete (their drop waits) before the universe finalizes MPI.
pub(super) struct Client {
    sends: Vec<PendingSend>,
    world: SimpleCommunicator,
    shared: Arc<Shared>,
    /// Tasks sent to each worker rank and not answered yet; index 0 is rank 1.
    load: Vec<usize>,
    /// The tasks sent and not answered: the rank's index and the slot.
    running: HashMap<u64, (usize, Box<dyn Slot>)>,
    depth: usize,
    _universe: ::mpi::environment::Universe,
}

impl Client {
    pub(super) fn new(
        universe: ::mpi::environment::Universe,
        shared: Arc<Shared>,
        depth: usize,
    ) -> Client {
        let world = universe.world();
        let workers = usize::try_from(world.size() - 1).unwrap_or(0);
        Client {
            sends: Vec::new(),
            world,
            shared,
            load: vec![0; workers],
            running: HashMap::new(),
            depth,
            _universe: universe,
        }
    }

    /// The thread's body: runs until the pool is shut down and every task has its reply, then
    /// stops the workers and (as `self` drops) finalizes MPI.
    pub(super) fn run(mut self) {
        let mut backoff = Backoff::new(CLIENT_SPIN);
        loop {
            let (tasks, shutdown) = self.take_tasks();
            let mut progressed = !tasks.is_empty();
            for task in tasks {
                self.send(task);
            }
            progressed |= self.collect();
            self.sends.retain_mut(|send| !send.is_done());
            if shutdown && self.running.is_empty() && self.shared.lock().queue.is_empty() {
                break;
            }
            if progressed {
                backoff.reset();
            } else {
                self.idle(&mut backoff);
            }
        }
        for rank in 1..self.world.size() {
            self.sends
                .push(PendingSend::start(&self.world, rank, STOP, Vec::new()));
        }
    }

    /// As many queued tasks as the ranks have room for, and whether the pool is shut down.
    fn take_tasks(&mut self) -> (Vec<Task>, bool) {
        let room = self.load.len() * self.depth - self.running.len();
        let mut state = self.shared.lock();
        let take = room.min(state.queue.len());
        (state.queue.drain(..take).collect(), state.shutdown)
    }

    /// Sends `task` to the least loaded rank, unless it was cancelled meanwhile.
    fn send(&mut self, mut task: Task) {
        if !task.slot.start() {
            return;
        }
        let (index, load) = self
            .load
            .iter_mut()
            .enumerate()
            .min_by_key(|(_, load)| **load)
            .expect("a pool has at least one worker rank");
        *load += 1;
        let rank = i32::try_from(index + 1).expect("ranks are i32");
        self.sends
            .push(PendingSend::start(&self.world, rank, TASK, task.frame));
        self.running.insert(task.id, (index, task.slot));
    }

    /// Completes the futures of every reply that has arrived; true if there was one.
    fn collect(&mut self) -> bool {
        let mut any = false;
        while let Some(message) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(REPLY)
        {
            any = true;
            let (frame, status) = message.matched_receive_vec::<u8>();
            let reply = wire::parse_reply(frame)
                .and_then(|(id, reply)| Some((self.running.remove(&id)?, reply)));
            let Some(((index, slot), reply)) = reply else {
                log::error!(
                    "MpiPool: rank {} sent a reply that matches no task; ignored",
                    status.source_rank()
                );
                continue;
            };
            self.load[index] -= 1;
            slot.finish(match reply {
                Reply::Value(bytes) => Ok(bytes),
                Reply::Failed(Failure::Panicked(message)) => Err(Error::Panicked { message }),
                Reply::Failed(Failure::Serialization(message)) | Reply::InitFailed(message) => {
                    Err(Error::Serialization { message })
                }
            });
        }
        any
    }

    /// Found nothing to do: polls again soon while replies are due, else sleeps until a
    /// submit or a shutdown notifies.
    fn idle(&mut self, backoff: &mut Backoff) {
        let step = backoff.step();
        let mut state = self.shared.lock();
        let room = self.running.len() < self.load.len() * self.depth;
        // Work, or the end: the loop has something to do at once. (A shutdown with replies
        // still due polls on below, like any other wait for replies.)
        if (room && !state.queue.is_empty()) || (state.shutdown && self.running.is_empty()) {
            return;
        }
        match step {
            Step::Spin => {
                drop(state);
                std::thread::yield_now();
            }
            Step::Sleep(sleep) => {
                state.parked = true;
                // Nothing to poll for: only the handle can bring work, and it notifies.
                let waiting = self.running.is_empty() && self.sends.is_empty();
                state = if waiting {
                    self.shared
                        .wake
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                } else {
                    self.shared
                        .wake
                        .wait_timeout(state, sleep)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                };
                state.parked = false;
            }
        }
    }
}
