//! [`wait`] and [`as_completed`]: waiting on many futures at once.
//!
//! Both attach one listener to every future that is not done yet (O(1) per future, so waiting
//! on 100 000 futures costs 100 000 short lock holds, not a scan per completion) and detach it
//! from every future still pending when they return or are dropped, so a long-lived future
//! does not collect dead listeners.
//!
//! One deliberate difference from CPython: a cancelled future is done here, for `wait` and
//! `as_completed` alike, from the moment [`Future::cancel`] returns. CPython counts a cancel
//! only once its executor acknowledges it, so `wait` on futures cancelled by
//! `shutdown(cancel_futures=True)` blocks until its timeout and `as_completed` never yields
//! them (gh-92001, gh-109934, still open).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::future::{Future, Listener, Registration};
use crate::sync::{Mutex, Wakeup, deadline_after, expired, lock, wait_until};

/// When [`wait`] returns (CPython's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any future is done (finished or cancelled).
    FirstCompleted,
    /// As soon as any future finishes with an error, or when all are done. A cancelled future
    /// is not an error.
    FirstException,
    /// When every future is done.
    #[default]
    AllCompleted,
}

/// The two halves [`wait`] splits its futures into, each without duplicates, in input order.
pub struct DoneAndNotDone<T> {
    /// Futures done (finished or cancelled) when `wait` returned.
    pub done: Vec<Future<T>>,
    /// The others.
    pub not_done: Vec<Future<T>>,
}

impl<T> fmt::Debug for DoneAndNotDone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoneAndNotDone")
            .field("done", &self.done)
            .field("not_done", &self.not_done)
            .finish()
    }
}

/// The futures of `futures` with clones of one future kept once, first occurrence first.
fn distinct<'a, T: 'a>(futures: impl IntoIterator<Item = &'a Future<T>>) -> Vec<&'a Future<T>> {
    let mut seen = HashSet::new();
    futures
        .into_iter()
        .filter(|future| seen.insert(future.id()))
        .collect()
}

/// Counts down the futures a [`wait`] call is still waiting for.
struct Countdown {
    state: Mutex<CountdownState>,
    wakeup: Wakeup,
}

struct CountdownState {
    remaining: usize,
    when: ReturnWhen,
    fired: bool,
}

impl CountdownState {
    fn record(&mut self, failed: bool) {
        self.remaining -= 1;
        self.fired |= self.remaining == 0
            || self.when == ReturnWhen::FirstCompleted
            || (self.when == ReturnWhen::FirstException && failed);
    }
}

impl Listener for Countdown {
    fn notify(&self, _index: usize, failed: bool) {
        let mut state = lock(&self.state);
        state.record(failed);
        if state.fired {
            self.wakeup.notify_one();
        }
    }
}

/// Blocks until `when` holds for `futures`, or until `timeout` passes, and returns them split
/// into done and not done (CPython's `concurrent.futures.wait`).
///
/// Clones of one future count once. `timeout: None` waits as long as it takes. A time-out is
/// not an error: you get the split as it stands. [`ReturnWhen::FirstException`] ignores
/// cancelled futures. A cancelled future is done from the moment it is cancelled; CPython
/// counts it only once its executor acknowledges the cancel, so its `wait` blocks until the
/// timeout on futures cancelled by `shutdown(cancel_futures=True)` (gh-92001).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use concurrent_futures::{Promise, ReturnWhen, wait};
///
/// let (quick, quick_future) = Promise::new();
/// let (_slow, slow_future) = Promise::<u32>::new();
/// quick.run(|| 1);
/// let split = wait(&[quick_future, slow_future], Some(Duration::from_millis(10)), ReturnWhen::AllCompleted);
/// assert_eq!((split.done.len(), split.not_done.len()), (1, 1));
/// ```
///
/// The split holds clones of the futures given, so while those are alive
/// [`into_result`](Future::into_result) on the split's futures answers
/// [`Error::Shared`](crate::Error::Shared): borrow the values with
/// [`result`](Future::result), or drop the originals first.
///
/// ```
/// use concurrent_futures::{CpuPool, DoneAndNotDone, Error, Executor, Future, ReturnWhen, wait};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = CpuPool::new(2)?;
/// let futures: Vec<_> = (1..=3_u64).map(|n| pool.submit(move || vec![n; 2])).collect();
/// let DoneAndNotDone { done, not_done } =
///     wait(&futures, Some(Duration::from_secs(30)), ReturnWhen::AllCompleted);
/// assert!(not_done.is_empty());
/// let sum: u64 = done.iter().map(|f| f.result().map(|v| v.iter().sum::<u64>())).sum::<Result<_, _>>()?;
/// assert_eq!(sum, 12); // borrowed, with `futures` still alive
/// assert_eq!(done[0].clone().into_result(), Err(Error::Shared { others: 2 }));
/// drop(futures); // the split's futures are the last handles now
/// let vectors: Vec<Vec<u64>> = done.into_iter().map(Future::into_result).collect::<Result<_, _>>()?;
/// assert_eq!(vectors, [[1, 1], [2, 2], [3, 3]]);
/// # Ok(())
/// # }
/// ```
pub fn wait<T>(
    futures: &[Future<T>],
    timeout: Option<Duration>,
    when: ReturnWhen,
) -> DoneAndNotDone<T> {
    let deadline = timeout.and_then(deadline_after);
    let futures = distinct(futures);
    let mut state = CountdownState {
        remaining: futures.len(),
        when,
        fired: futures.is_empty(),
    };
    let pending: Vec<usize> = (0..futures.len())
        .filter(|&i| {
            let done = futures[i].done();
            if done {
                state.record(futures[i].failed());
            }
            !done
        })
        .collect();
    if !state.fired && !expired(deadline) {
        let countdown = std::sync::Arc::new(Countdown {
            state: Mutex::new(state),
            wakeup: Wakeup::new(),
        });
        let listener: std::sync::Arc<dyn Listener> = countdown.clone();
        let mut attached = Vec::with_capacity(pending.len());
        for &i in &pending {
            if futures[i].register(Registration::new(listener.clone(), i)) {
                attached.push(i);
            } else {
                // Done between the look above and now: count it as a notification would.
                lock(&countdown.state).record(futures[i].failed());
            }
        }
        let mut state = lock(&countdown.state);
        while !state.fired && !expired(deadline) {
            state = wait_until(&countdown.wakeup, &countdown.state, state, deadline);
        }
        drop(state);
        for i in attached {
            futures[i].deregister(&listener, i);
        }
    }
    let (done, not_done) = futures.into_iter().cloned().partition(Future::done);
    DoneAndNotDone { done, not_done }
}

/// Indices of futures in the order they completed.
struct CompletionQueue {
    completed: Mutex<VecDeque<usize>>,
    wakeup: Wakeup,
}

impl Listener for CompletionQueue {
    fn notify(&self, index: usize, _failed: bool) {
        let mut completed = lock(&self.completed);
        completed.push_back(index);
        // Under the lock: a helping waiter registers under it (see `Wakeup`).
        self.wakeup.notify_one();
    }
}

/// Yields futures as they complete (CPython's `concurrent.futures.as_completed`).
///
/// Futures already done at the call come first, then the others in the order they complete,
/// each once (clones of one future count once). The `timeout` runs from the call (CPython
/// measures it from the first `next()`, although its docs say from the call); when it runs out
/// the iterator yields one `Err(Error::Timeout)` and ends, and
/// [`unfinished`](AsCompleted::unfinished) says how many futures were left. Cancelled futures
/// are yielded like finished ones.
///
/// The iterator keeps no handle to a future it has yielded, so [`Future::into_result`] works
/// on what it yields; dropping it detaches it from the futures still pending.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Promise, as_completed};
///
/// # fn main() -> Result<(), Error> {
/// let (promises, futures): (Vec<_>, Vec<_>) = (0..3).map(|_| Promise::new()).unzip();
/// for (i, promise) in promises.into_iter().enumerate() {
///     std::thread::spawn(move || promise.run(|| i * 10));
/// }
/// let mut total = 0;
/// for future in as_completed(futures, None) {
///     total += future?.into_result()?;
/// }
/// assert_eq!(total, 30);
/// # Ok(())
/// # }
/// ```
pub fn as_completed<T>(
    futures: impl IntoIterator<Item = Future<T>>,
    timeout: Option<Duration>,
) -> AsCompleted<T> {
    let mut iter = AsCompleted::new(timeout.and_then(deadline_after), false);
    let mut seen = HashSet::new();
    for future in futures {
        if seen.insert(future.id()) {
            iter.push(future);
        }
    }
    iter
}

/// The iterator [`as_completed`] returns: `Ok(future)` per future, or one `Err(Error::Timeout)`.
pub struct AsCompleted<T> {
    /// Done when pushed, or taken from `queue` and not yet yielded.
    ready: VecDeque<Future<T>>,
    /// Registered futures by listener index; `None` once taken.
    pending: Vec<Option<Future<T>>>,
    /// Indices of `pending` free for reuse, so an endless stream of pushes (the unordered
    /// map) runs in constant memory. Safe to reuse: a slot is freed only after its
    /// registration fired or was removed.
    free: Vec<usize>,
    unfinished: usize,
    total: usize,
    queue: std::sync::Arc<CompletionQueue>,
    /// `queue`, as the registrations know it.
    listener: std::sync::Arc<dyn Listener>,
    deadline: Option<Instant>,
    timed_out: bool,
    /// Cancel what was not yielded on time-out or drop (the unordered map's rule).
    cancel_unyielded: bool,
}

impl<T> AsCompleted<T> {
    pub(crate) fn new(deadline: Option<Instant>, cancel_unyielded: bool) -> Self {
        let queue = std::sync::Arc::new(CompletionQueue {
            completed: Mutex::new(VecDeque::new()),
            wakeup: Wakeup::new(),
        });
        AsCompleted {
            ready: VecDeque::new(),
            pending: Vec::new(),
            free: Vec::new(),
            unfinished: 0,
            total: 0,
            listener: queue.clone(),
            queue,
            deadline,
            timed_out: false,
            cancel_unyielded,
        }
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Adds `future` (no duplicate check: the caller's job).
    pub(crate) fn push(&mut self, future: Future<T>) {
        self.total += 1;
        let index = self.free.pop().unwrap_or(self.pending.len());
        if future.done() || !future.register(Registration::new(self.listener.clone(), index)) {
            self.free.push(index);
            self.ready.push_back(future);
            return;
        }
        if index == self.pending.len() {
            self.pending.push(Some(future));
        } else {
            self.pending[index] = Some(future);
        }
        self.unfinished += 1;
    }

    /// How many futures have not been yielded and were not done at the last look: after a
    /// time-out, CPython's "N (of M) futures unfinished" N.
    pub fn unfinished(&self) -> usize {
        self.unfinished
    }

    /// How many distinct futures this iterator was given (M).
    pub fn total(&self) -> usize {
        self.total
    }

    /// Counts the futures on a progress bar on standard error, with the count, the rate and
    /// the time left; nothing is drawn when standard error is not a terminal. The total is the
    /// futures not yet yielded. See [`Progress`](crate::Progress).
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, Promise, as_completed};
    ///
    /// # fn main() -> Result<(), Error> {
    /// let (promises, futures): (Vec<_>, Vec<_>) = (0..3).map(|_| Promise::new()).unzip();
    /// for (i, promise) in promises.into_iter().enumerate() {
    ///     std::thread::spawn(move || promise.run(|| i));
    /// }
    /// let mut done = as_completed(futures, None).progress();
    /// assert_eq!(done.total(), Some(3));
    /// for future in done.by_ref() {
    ///     future?;
    /// }
    /// assert_eq!(done.position(), 3);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(self) -> crate::Progress<Self> {
        let left = if self.timed_out {
            0
        } else {
            self.ready.len() + self.unfinished
        };
        crate::Progress::new(self, Some(left))
    }

    /// Blocks until some futures completed or the deadline passed, and moves the completed
    /// ones from the shared queue into `ready`; false if none.
    fn collect_completed(&mut self) -> bool {
        let mut completed = lock(&self.queue.completed);
        while completed.is_empty() && !expired(self.deadline) {
            completed = wait_until(
                &self.queue.wakeup,
                &self.queue.completed,
                completed,
                self.deadline,
            );
        }
        let batch = std::mem::take(&mut *completed);
        drop(completed);
        let found = !batch.is_empty();
        for index in batch {
            if let Some(future) = self.pending[index].take() {
                self.free.push(index);
                self.unfinished -= 1;
                self.ready.push_back(future);
            }
        }
        found
    }

    fn detach(&mut self) {
        for (index, future) in self.pending.iter_mut().enumerate() {
            if let Some(future) = future.take() {
                future.deregister(&self.listener, index);
                if self.cancel_unyielded {
                    future.cancel();
                }
            }
        }
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Result<Future<T>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(future) = self.ready.pop_front() {
            return Some(Ok(future));
        }
        if self.unfinished == 0 || self.timed_out {
            return None;
        }
        if self.collect_completed() {
            return self.ready.pop_front().map(Ok);
        }
        self.timed_out = true;
        self.detach();
        Some(Err(Error::Timeout))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.timed_out {
            return (0, Some(0));
        }
        (
            self.ready.len(),
            Some(self.ready.len() + self.unfinished + 1),
        )
    }
}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        self.detach();
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("total", &self.total)
            .field("unfinished", &self.unfinished)
            .field("timed_out", &self.timed_out)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Promise;

    #[test]
    fn wait_detaches_from_futures_still_pending() {
        let (_promise, future) = Promise::<u8>::new();
        let split = wait(
            std::slice::from_ref(&future),
            Some(Duration::from_millis(1)),
            ReturnWhen::AllCompleted,
        );
        assert_eq!(split.not_done.len(), 1);
        assert_eq!(future.listener_count(), 0);
    }

    #[test]
    fn as_completed_detaches_when_dropped_or_timed_out() {
        let (_promise, future) = Promise::<u8>::new();
        let mut iter = as_completed([future.clone()], None);
        assert_eq!(future.listener_count(), 1);
        drop(iter);
        assert_eq!(future.listener_count(), 0);

        iter = as_completed([future.clone()], Some(Duration::from_millis(1)));
        assert_eq!(iter.next().map(|r| r.err()), Some(Some(Error::Timeout)));
        assert_eq!(future.listener_count(), 0);
        assert_eq!(iter.unfinished(), 1);
        assert!(iter.next().is_none());
    }
}
