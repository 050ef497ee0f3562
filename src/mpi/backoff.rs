//! How an MPI rank waits for messages it cannot be woken for: MPI has no file descriptor to
//! sleep on, so a rank polls, yielding the CPU at each turn for a short while (the next message
//! usually comes within microseconds), then sleeps between polls for longer and longer, up to
//! a millisecond (mpi4py.futures' default cap), so that an idle rank costs next to nothing.

use std::time::{Duration, Instant};

/// How long a worker rank polls, yielding, after its last task before it sleeps: the next task
/// of a stream usually comes within microseconds, and a worker that has gone to sleep costs
/// the stream its sleep on every task.
pub(super) const WORKER_SPIN: Duration = Duration::from_millis(1);
/// How long rank 0's progress thread polls, yielding, for replies before it sleeps between
/// polls. Shorter than a worker's: while tasks run long, this thread only takes CPU from them.
pub(super) const CLIENT_SPIN: Duration = Duration::from_micros(200);
/// The first sleep; each one after it is twice as long, up to [`MAX_SLEEP`].
const MIN_SLEEP: Duration = Duration::from_micros(20);
/// The longest sleep: the most a message can wait for an idle rank to look.
const MAX_SLEEP: Duration = Duration::from_millis(1);

/// Where a rank is in its wait since it last had something to do.
#[derive(Debug)]
pub(super) struct Backoff {
    spin: Duration,
    idle_since: Option<Instant>,
    sleep: Duration,
}

/// What to do next, having found nothing to do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Yield the CPU and poll again.
    Spin,
    /// Sleep this long (or until woken), then poll again.
    Sleep(Duration),
}

impl Backoff {
    /// Polls for `spin` before each sleep.
    pub(super) fn new(spin: Duration) -> Backoff {
        Backoff {
            spin,
            idle_since: None,
            sleep: MIN_SLEEP,
        }
    }

    /// There was something to do: the next wait starts from the beginning.
    pub(super) fn reset(&mut self) {
        self.idle_since = None;
        self.sleep = MIN_SLEEP;
    }

    /// Found nothing to do: what to do about it.
    pub(super) fn step(&mut self) -> Step {
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.spin {
            return Step::Spin;
        }
        let sleep = self.sleep;
        self.sleep = (sleep * 2).min(MAX_SLEEP);
        Step::Sleep(sleep)
    }

    /// [`step`](Self::step), done here: yield or sleep.
    pub(super) fn wait(&mut self) {
        match self.step() {
            Step::Spin => std::thread::yield_now(),
            Step::Sleep(sleep) => std::thread::sleep(sleep),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_then_sleeps_longer_and_longer_up_to_the_cap() {
        let spin = Duration::from_micros(100);
        let mut backoff = Backoff::new(spin);
        assert_eq!(backoff.step(), Step::Spin);
        std::thread::sleep(spin * 2);
        let mut sleeps = Vec::new();
        while let Step::Sleep(sleep) = backoff.step() {
            sleeps.push(sleep);
            if sleeps.len() == 12 {
                break;
            }
        }
        assert_eq!(sleeps[0], MIN_SLEEP);
        assert!(sleeps.windows(2).all(|w| w[1] == (w[0] * 2).min(MAX_SLEEP)));
        assert_eq!(*sleeps.last().unwrap(), MAX_SLEEP);
        backoff.reset();
        assert_eq!(backoff.step(), Step::Spin);
    }
}
