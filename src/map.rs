//! Lazy parallel maps: [`Map`] (input order) and [`MapUnordered`] (completion order), behind
//! [`Executor::map`](crate::Executor::map), [`FnExecutor::map_fn`](crate::FnExecutor::map_fn)
//! and [`ParMapExt::par_map`].
//!
//! Both pull the input on the consumer's thread, a chunk at a time, and keep at most
//! `buffersize` chunks between the input and the consumer: submitted, running, done, or being
//! handed out. So an endless input runs in constant memory, and the input iterator need not
//! be `Send`; only items and results cross threads.
//!
//! A chunk is one task: it maps each of its items under its own `catch_unwind`, so a panicking
//! item fails only its own position (CPython main's rule, gh-108518), and iteration goes on
//! past it. A chunk that never ran (cancelled, submitted after shutdown, lost with a worker)
//! gives its error at each of its positions.
//!
//! Without an explicit `chunksize` the chunk size adapts: each chunk reports how long its
//! items took, and the next chunks are sized so that one takes about [`TARGET_CHUNK_TIME`],
//! which makes a trivial closure cost a few nanoseconds per item instead of a task each,
//! while slow items still spread over every worker.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::future::Future;
use crate::sync::deadline_after;
use crate::wait::AsCompleted;

/// What one chunk task hands back: a result per item, in input order, and how long mapping
/// them took (which sizes the next chunks when the caller set no `chunksize`).
#[derive(Debug)]
pub struct Chunk<T> {
    /// One result per item of the chunk.
    pub results: Vec<Result<T, Error>>,
    /// Time spent mapping the items.
    pub busy: Duration,
}

impl<T> Chunk<T> {
    /// Maps each item with `f`; a panic fails its own item and the rest still run.
    pub fn run<A>(f: impl Fn(A) -> T, items: Vec<A>) -> Self {
        let start = Instant::now();
        let mut results = Vec::with_capacity(items.len());
        let mut items = items.into_iter();
        // One `catch_unwind` for the whole chunk rather than one per item, which would keep
        // `f` from being inlined into the loop; after a panic, go on from the next item.
        while let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
            for item in items.by_ref() {
                results.push(Ok(f(item)));
            }
        })) {
            results.push(Err(Error::from_panic(payload)));
        }
        Chunk {
            results,
            busy: start.elapsed(),
        }
    }
}

/// How long an adaptive chunk should keep a worker busy: long enough that the per-chunk cost
/// (a task, and a wake-up of the consumer: several microseconds on a busy machine) stays
/// around 1 %, short enough that the last chunks still spread over the workers. Measured
/// with `cargo bench --bench map`: at 100 µs, 10 µs items reached 1.88× the sequential speed
/// on two workers; at 500 µs, 1.93×.
pub const TARGET_CHUNK_TIME: Duration = Duration::from_micros(500);

/// The largest adaptive chunk, and the most it may grow from one chunk to the next.
const MAX_CHUNK: usize = 4096;
const MAX_GROWTH: usize = 16;

/// Submits one chunk of items as one task.
type Submit<'a, A, T> = Box<dyn FnMut(Vec<A>) -> Future<Chunk<T>> + 'a>;

/// The part both maps share: the input, the chunking, the bounded window, the deadline.
struct Feed<'a, I: Iterator, T> {
    input: I,
    exhausted: bool,
    submit: Submit<'a, I::Item, T>,
    /// Set by `chunksize`; `None` adapts.
    fixed_chunk: Option<usize>,
    adaptive_chunk: usize,
    buffersize: usize,
    /// Chunks submitted and not yet fully handed to the consumer.
    in_flight: usize,
    deadline: Option<Instant>,
    /// Results of the chunk being handed out.
    current: std::vec::IntoIter<Result<T, Error>>,
    /// The deadline passed (one `Err(Timeout)` was yielded) or the input ended and all was
    /// yielded.
    finished: bool,
}

impl<'a, I: Iterator, T> Feed<'a, I, T> {
    fn new(input: I, submit: Submit<'a, I::Item, T>, workers: usize) -> Self {
        Feed {
            input,
            exhausted: false,
            submit,
            fixed_chunk: None,
            adaptive_chunk: 1,
            buffersize: 4 * workers.max(1),
            in_flight: 0,
            deadline: None,
            current: Vec::new().into_iter(),
            finished: false,
        }
    }

    /// The `Debug` text both maps share: their window's state.
    fn describe(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        f.debug_struct(name)
            .field("in_flight", &self.in_flight)
            .field("chunksize", &self.chunk_size())
            .field("buffersize", &self.buffersize)
            .finish_non_exhaustive()
    }

    fn chunk_size(&self) -> usize {
        self.fixed_chunk.unwrap_or(self.adaptive_chunk)
    }

    /// Pulls and submits chunks until the window is full or the input ends, handing each new
    /// future and its length to `sink`.
    fn fill(&mut self, mut sink: impl FnMut(Future<Chunk<T>>, usize)) {
        while !self.exhausted && self.in_flight < self.buffersize {
            let size = self.chunk_size();
            let items: Vec<I::Item> = self.input.by_ref().take(size).collect();
            self.exhausted = items.len() < size;
            if items.is_empty() {
                break;
            }
            let len = items.len();
            let future = (self.submit)(items);
            self.in_flight += 1;
            sink(future, len);
        }
    }

    /// Takes the outcome of a finished chunk of `len` items as the results to hand out next,
    /// and learns from its timing.
    fn start_handing_out(&mut self, outcome: Result<Chunk<T>, Error>, len: usize) {
        self.current = match outcome {
            Ok(chunk) => {
                self.learn(chunk.results.len(), chunk.busy);
                chunk.results.into_iter()
            }
            Err(error) => (0..len)
                .map(|_| Err(error.clone()))
                .collect::<Vec<_>>()
                .into_iter(),
        };
    }

    /// Resizes adaptive chunks so that the next one takes about `TARGET_CHUNK_TIME`.
    fn learn(&mut self, items: usize, busy: Duration) {
        let per_item = busy.as_nanos() / items.max(1) as u128;
        let ideal = TARGET_CHUNK_TIME.as_nanos() / per_item.max(1);
        let ideal = usize::try_from(ideal).unwrap_or(MAX_CHUNK);
        self.adaptive_chunk = ideal.clamp(1, (self.adaptive_chunk * MAX_GROWTH).min(MAX_CHUNK));
    }

    /// The next result of the chunk being handed out; counts the chunk as consumed when its
    /// last result leaves.
    fn next_current(&mut self) -> Option<Result<T, Error>> {
        let item = self.current.next()?;
        if self.current.len() == 0 {
            self.in_flight -= 1;
        }
        Some(item)
    }

    /// How many results are left to yield, `queued` of them in submitted chunks not yet handed
    /// out, if the input knows its exact length. A deadline may cut this short.
    #[cfg(feature = "progress")]
    fn remaining(&self, queued: usize) -> Option<usize> {
        if self.finished {
            return Some(0);
        }
        let input = match self.input.size_hint() {
            _ if self.exhausted => 0,
            (lower, Some(upper)) if lower == upper => lower,
            _ => return None,
        };
        Some(input + queued + self.current.len())
    }

    /// A chunk of no results (an empty `Vec` from a custom executor) is consumed at once.
    fn skip_empty(&mut self) {
        if self.current.len() == 0 {
            self.in_flight -= 1;
        }
    }
}

/// Builder options shared by both maps, applied through [`Feed`].
macro_rules! options {
    () => {
        /// Puts `n` items in each task, for closures too quick to pay a task each. Errors stay
        /// per item. Without it, the chunk size adapts to how long items take to map (up to
        /// 4096 items), not to how long the input takes to produce them: for an input that
        /// yields slowly (lines typed on a terminal, messages from a socket), set
        /// `chunksize(1)` so that each item is submitted as soon as it arrives.
        ///
        /// # Panics
        ///
        /// If `n` is 0 (as [`slice::chunks`] does).
        pub fn chunksize(mut self, n: usize) -> Self {
            assert!(n > 0, "chunksize must be at least 1");
            self.feed.fixed_chunk = Some(n);
            self
        }

        /// Lets at most `n` chunks be in flight ahead of the consumer (submitted, running,
        /// finished or being handed out): the input is pulled no further ahead than
        /// `n × chunksize` items. The default is four chunks per worker.
        ///
        /// # Panics
        ///
        /// If `n` is 0.
        pub fn buffersize(mut self, n: usize) -> Self {
            assert!(n > 0, "buffersize must be at least 1");
            self.feed.buffersize = n;
            self
        }

        /// One deadline for the whole map, `timeout` from now (CPython measures it from the
        /// `map` call; call this right after it). When it passes, the iterator yields one
        /// `Err(Error::Timeout)`, cancels every task not yet started, and ends.
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.feed.deadline = deadline_after(timeout);
            self
        }

        /// Counts the results on a progress bar on standard error, with the count, the rate
        /// and, when the input knows its exact length, the time left; nothing is drawn when
        /// standard error is not a terminal. Call it last, after the other options. See
        /// [`Progress`](crate::Progress).
        #[cfg(feature = "progress")]
        pub fn progress(self) -> crate::Progress<Self> {
            let total = self.feed.remaining(self.queued_items());
            crate::Progress::new(self, total)
        }
    };
}

/// A parallel map that yields results in input order: from
/// [`Executor::map`](crate::Executor::map), [`FnExecutor::map_fn`](crate::FnExecutor::map_fn)
/// or [`ParMapExt::par_map`].
///
/// Each item is `Ok(value)` or the error of that item (`Err(Error::Panicked { .. })` when `f`
/// panicked on it). Dropping the iterator cancels every task not yet started.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Executor, InlineExecutor};
///
/// # fn main() -> Result<(), Error> {
/// let executor = InlineExecutor::new();
/// let squares = executor.map(|x: u64| x * x, 1..=4).chunksize(2).collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # Ok(())
/// # }
/// ```
pub struct Map<'a, I: Iterator, T> {
    feed: Feed<'a, I, T>,
    /// Chunk futures in input order, with their lengths.
    queue: VecDeque<(Future<Chunk<T>>, usize)>,
}

impl<'a, I: Iterator, T> Map<'a, I, T> {
    pub(crate) fn new(input: I, submit: Submit<'a, I::Item, T>, workers: usize) -> Self {
        Map {
            feed: Feed::new(input, submit, workers),
            queue: VecDeque::new(),
        }
    }

    options!();

    /// Items in submitted chunks not yet handed out.
    #[cfg(feature = "progress")]
    fn queued_items(&self) -> usize {
        self.queue.iter().map(|(_, len)| len).sum()
    }

    fn cancel_all(&mut self) {
        for (future, _) in self.queue.drain(..) {
            future.cancel();
        }
    }
}

impl<I: Iterator, T> Iterator for Map<'_, I, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.feed.finished {
                return None;
            }
            let queue = &mut self.queue;
            self.feed.fill(|future, len| queue.push_back((future, len)));
            if let Some(item) = self.feed.next_current() {
                return Some(item);
            }
            let Some((future, len)) = self.queue.pop_front() else {
                self.feed.finished = true;
                return None;
            };
            if !future.wait_settled(self.feed.deadline) {
                // CPython cancels the future it timed out on too (gh-95166).
                future.cancel();
                self.cancel_all();
                self.feed.finished = true;
                return Some(Err(Error::Timeout));
            }
            self.feed.start_handing_out(future.into_result(), len);
            self.feed.skip_empty();
        }
    }
}

impl<I: Iterator, T> Drop for Map<'_, I, T> {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

impl<I: Iterator, T> fmt::Debug for Map<'_, I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.feed.describe(f, "Map")
    }
}

/// A parallel map that yields results as they complete: from
/// [`Executor::map_unordered`](crate::Executor::map_unordered),
/// [`FnExecutor::map_fn_unordered`](crate::FnExecutor::map_fn_unordered) or
/// [`ParMapExt::par_map_unordered`]. Same options and rules as [`Map`].
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Executor, InlineExecutor};
///
/// # fn main() -> Result<(), Error> {
/// let executor = InlineExecutor::new();
/// let mut lengths = executor
///     .map_unordered(|s: &str| s.len(), ["a", "bb", "ccc"])
///     .collect::<Result<Vec<_>, _>>()?;
/// lengths.sort();
/// assert_eq!(lengths, [1, 2, 3]);
/// # Ok(())
/// # }
/// ```
pub struct MapUnordered<'a, I: Iterator, T> {
    feed: Feed<'a, I, T>,
    completed: AsCompleted<Chunk<T>>,
    /// Chunk lengths by future identity, to fan a chunk's error out to its items.
    lengths: HashMap<usize, usize>,
}

impl<'a, I: Iterator, T> MapUnordered<'a, I, T> {
    pub(crate) fn new(input: I, submit: Submit<'a, I::Item, T>, workers: usize) -> Self {
        MapUnordered {
            feed: Feed::new(input, submit, workers),
            completed: AsCompleted::new(None, true),
            lengths: HashMap::new(),
        }
    }

    options!();

    /// Items in submitted chunks not yet handed out.
    #[cfg(feature = "progress")]
    fn queued_items(&self) -> usize {
        self.lengths.values().sum()
    }
}

impl<I: Iterator, T> Iterator for MapUnordered<'_, I, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.feed.finished {
                return None;
            }
            let (completed, lengths) = (&mut self.completed, &mut self.lengths);
            self.feed.fill(|future, len| {
                lengths.insert(future.id(), len);
                completed.push(future);
            });
            if let Some(item) = self.feed.next_current() {
                return Some(item);
            }
            self.completed.set_deadline(self.feed.deadline);
            match self.completed.next() {
                None => {
                    self.feed.finished = true;
                    return None;
                }
                Some(Err(error)) => {
                    // Only a time-out ends `as_completed` early; it cancelled the rest.
                    self.feed.finished = true;
                    return Some(Err(error));
                }
                Some(Ok(future)) => {
                    let len = self.lengths.remove(&future.id()).unwrap_or(0);
                    self.feed.start_handing_out(future.into_result(), len);
                    self.feed.skip_empty();
                }
            }
        }
    }
}

impl<I: Iterator, T> fmt::Debug for MapUnordered<'_, I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.feed.describe(f, "MapUnordered")
    }
}

/// `par_map` and `par_map_unordered` on every `IntoIterator`, so an iterator chain goes
/// parallel by changing one word: `.map(f)` becomes `.par_map(s, f)` inside a
/// [`scope`](crate::Executor::scope), where `f`, the items and the results may borrow, or
/// `.par_map(&pool, f)` for `'static` ones.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Executor, InlineExecutor, ParMapExt};
///
/// # fn main() -> Result<(), Error> {
/// let executor = InlineExecutor::new();
/// let words = ["alpha", "beta", "gamma"];
/// let upper: Vec<String> = executor.scope(|s| {
///     words.iter().par_map(s, |w| w.to_uppercase()).collect::<Result<_, _>>()
/// })?;
/// assert_eq!(upper, ["ALPHA", "BETA", "GAMMA"]);
///
/// // Owned items and a `'static` closure need no scope.
/// let lengths: Vec<usize> = upper.into_iter().par_map(&executor, |w| w.len()).collect::<Result<_, _>>()?;
/// assert_eq!(lengths, [5, 4, 5]);
/// # Ok(())
/// # }
/// ```
pub trait ParMapExt: IntoIterator + Sized {
    /// [`Executor::map`](crate::Executor::map) over `self` on an executor (`f`, items and
    /// results `'static`), or [`Scope::map`](crate::Scope::map) on a scope (they may borrow
    /// what outlives it): results in input order.
    fn par_map<'s, 'a, S, F, T>(self, on: &'s S, f: F) -> Map<'s, Self::IntoIter, T>
    where
        S: crate::Submitter<'a> + ?Sized,
        'a: 's,
        F: Fn(Self::Item) -> T + Send + Sync + 'a,
        Self::Item: Send + 'a,
        T: Send + Sync + 'a,
    {
        crate::executor::map_on(on, f, self)
    }

    /// [`par_map`](ParMapExt::par_map) with results in completion order.
    fn par_map_unordered<'s, 'a, S, F, T>(
        self,
        on: &'s S,
        f: F,
    ) -> MapUnordered<'s, Self::IntoIter, T>
    where
        S: crate::Submitter<'a> + ?Sized,
        'a: 's,
        F: Fn(Self::Item) -> T + Send + Sync + 'a,
        Self::Item: Send + 'a,
        T: Send + Sync + 'a,
    {
        crate::executor::map_unordered_on(on, f, self)
    }
}

impl<I: IntoIterator> ParMapExt for I {}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> Feed<'static, std::ops::Range<u32>, u32> {
        Feed::new(0..0, Box::new(|_| unreachable!()), 1)
    }

    #[test]
    fn adaptive_chunks_grow_for_quick_items_and_shrink_for_slow_ones() {
        let mut feed = feed();
        feed.learn(1, Duration::from_nanos(10));
        assert_eq!(feed.adaptive_chunk, MAX_GROWTH);
        for _ in 0..4 {
            feed.learn(
                feed.adaptive_chunk,
                Duration::from_nanos(10 * feed.adaptive_chunk as u64),
            );
        }
        assert_eq!(feed.adaptive_chunk, MAX_CHUNK);
        feed.learn(10, TARGET_CHUNK_TIME * 100);
        assert_eq!(feed.adaptive_chunk, 1);
        feed.learn(1, TARGET_CHUNK_TIME / 4);
        assert_eq!(feed.adaptive_chunk, 4);
    }
}
