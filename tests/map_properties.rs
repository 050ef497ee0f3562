//! Properties of `map`, `map_unordered`, `as_completed` and `wait`, checked with proptest over
//! random inputs (0–2000 items), executors (CpuPool and IoPool with 1–8 workers, the inline
//! executor, a thread per task), each either directly or through a `scope`, chunk sizes
//! (1–63), window sizes (1–63), per-item delays and panics.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use concurrent_futures::{
    CpuPool, Error, Executor, Future, InlineExecutor, IoPool, ParMapExt, Promise, ReturnWhen,
    Scope, Submitter, as_completed, wait,
};
use proptest::prelude::*;

/// One input item: its value, how long mapping it takes, whether mapping it panics.
#[derive(Clone, Debug)]
struct Item {
    value: u32,
    delay_us: u64,
    panics: bool,
}

fn item() -> impl Strategy<Value = Item> {
    (
        any::<u32>(),
        prop_oneof![8 => Just(0_u64), 1 => 1..200_u64],
        prop::bool::weighted(0.05),
    )
        .prop_map(|(value, delay_us, panics)| Item {
            value,
            delay_us,
            panics,
        })
}

/// Keeps the default panic hook for everything but the panics these properties cause on
/// purpose, which would otherwise print thousands of lines.
fn quiet_intended_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let intended = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|m| m.ends_with(" panics"));
            if !intended {
                default(info);
            }
        }));
    });
}

fn work(item: Item) -> u64 {
    if item.delay_us > 0 {
        std::thread::sleep(Duration::from_micros(item.delay_us));
    }
    if item.panics {
        panic!("item {} panics", item.value);
    }
    u64::from(item.value) * 3 + 1
}

fn expected(items: &[Item]) -> Vec<Result<u64, Error>> {
    items
        .iter()
        .map(|item| {
            if item.panics {
                Err(Error::Panicked {
                    message: format!("item {} panics", item.value),
                })
            } else {
                Ok(u64::from(item.value) * 3 + 1)
            }
        })
        .collect()
}

/// The executors under test, by number, so that proptest can pick one.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Cpu(usize),
    Io(usize),
    Inline,
    ThreadPerTask,
}

fn backend() -> impl Strategy<Value = Backend> {
    prop_oneof![
        4 => (1..=8_usize).prop_map(Backend::Cpu),
        4 => (1..=8_usize).prop_map(Backend::Io),
        1 => Just(Backend::Inline),
        1 => Just(Backend::ThreadPerTask),
    ]
}

impl Backend {
    /// How many chunks may already be running when a map is dropped, with `buffer` in flight:
    /// those may still count their items afterwards.
    fn running_at_most(self, buffer: usize) -> usize {
        match self {
            Backend::Cpu(workers) | Backend::Io(workers) => workers.min(buffer),
            // Runs each chunk inside `submit`: nothing is left running.
            Backend::Inline => 0,
            // Starts every submitted chunk at once.
            Backend::ThreadPerTask => buffer,
        }
    }
}

/// Runs `check` with a fresh executor of kind `backend`, given directly or, when `scoped`,
/// as a scope of it (the scope ends, joining its tasks, when `check` returns).
fn with_executor<R>(backend: Backend, scoped: bool, check: impl FnOnce(&dyn ErasedMap) -> R) -> R {
    fn on<E: Executor, R>(executor: E, scoped: bool, check: impl FnOnce(&dyn ErasedMap) -> R) -> R {
        if scoped {
            executor.scope(|s| check(&Scoped(s)))
        } else {
            check(&executor)
        }
    }
    quiet_intended_panics();
    match backend {
        Backend::Cpu(workers) => on(CpuPool::new(workers).unwrap(), scoped, check),
        Backend::Io(workers) => on(IoPool::new(workers).unwrap(), scoped, check),
        Backend::Inline => on(InlineExecutor::new(), scoped, check),
        Backend::ThreadPerTask => on(ThreadPerTask::default(), scoped, check),
    }
}

/// A scope seen through [`ErasedMap`]: its maps go through `Scope::map` and `par_map` on a
/// scope.
struct Scoped<'scope, 'env, E>(&'scope Scope<'scope, 'env, E>);

type Results<'a> = Box<dyn Iterator<Item = Result<u64, Error>> + 'a>;

/// The calls the properties make, behind a trait object so that one property body serves
/// every executor type.
trait ErasedMap {
    fn ordered<'a>(
        &'a self,
        items: Box<dyn Iterator<Item = Item> + 'a>,
        chunk: usize,
        buffer: usize,
    ) -> Results<'a>;
    fn unordered<'a>(
        &'a self,
        items: Box<dyn Iterator<Item = Item> + 'a>,
        chunk: usize,
        buffer: usize,
    ) -> Results<'a>;
    /// Consumes `take` items of a map over `0..items` whose tasks count their starts in
    /// `started`, drops it, returns the count at the drop, then shuts the executor down
    /// (waiting for whatever still runs).
    fn counted(
        &self,
        items: usize,
        chunk: usize,
        buffer: usize,
        take: usize,
        started: Arc<AtomicUsize>,
    ) -> usize;
}

/// `par_map` (or `par_map_unordered`) of [`work`] on `on`, a pool or a scope.
fn mapped<'s, 'a: 's, S: Submitter<'a>>(
    on: &'s S,
    items: Box<dyn Iterator<Item = Item> + 's>,
    chunk: usize,
    buffer: usize,
    ordered: bool,
) -> Results<'s> {
    if ordered {
        Box::new(items.par_map(on, work).chunksize(chunk).buffersize(buffer))
    } else {
        Box::new(
            items
                .par_map_unordered(on, work)
                .chunksize(chunk)
                .buffersize(buffer),
        )
    }
}

/// A slow identity that counts its starts in `started`.
fn counting(started: Arc<AtomicUsize>) -> impl Fn(usize) -> usize + Send + Sync + 'static {
    move |x| {
        started.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(20));
        x
    }
}

/// Takes `take` items of `map`, drops it, and returns how many tasks had started by then.
fn started_at_drop(mut map: impl Iterator, take: usize, started: &AtomicUsize) -> usize {
    for _ in 0..take {
        assert!(map.next().is_some());
    }
    drop(map);
    started.load(Ordering::SeqCst)
}

impl<E: Executor> ErasedMap for E {
    fn ordered<'a>(
        &'a self,
        items: Box<dyn Iterator<Item = Item> + 'a>,
        chunk: usize,
        buffer: usize,
    ) -> Results<'a> {
        mapped(self, items, chunk, buffer, true)
    }

    fn unordered<'a>(
        &'a self,
        items: Box<dyn Iterator<Item = Item> + 'a>,
        chunk: usize,
        buffer: usize,
    ) -> Results<'a> {
        mapped(self, items, chunk, buffer, false)
    }

    fn counted(
        &self,
        items: usize,
        chunk: usize,
        buffer: usize,
        take: usize,
        started: Arc<AtomicUsize>,
    ) -> usize {
        let map = self.map(counting(started.clone()), 0..items);
        let at_drop = started_at_drop(map.chunksize(chunk).buffersize(buffer), take, &started);
        self.shutdown(true, false);
        at_drop
    }
}

impl<E: Executor> ErasedMap for Scoped<'_, '_, E> {
    fn ordered<'a>(
        &'a self,
        items: Box<dyn Iterator<Item = Item> + 'a>,
        chunk: usize,
        buffer: usize,
    ) -> Results<'a> {
        mapped(self.0, items, chunk, buffer, true)
    }

    fn unordered<'a>(
        &'a self,
        items: Box<dyn Iterator<Item = Item> + 'a>,
        chunk: usize,
        buffer: usize,
    ) -> Results<'a> {
        mapped(self.0, items, chunk, buffer, false)
    }

    fn counted(
        &self,
        items: usize,
        chunk: usize,
        buffer: usize,
        take: usize,
        started: Arc<AtomicUsize>,
    ) -> usize {
        let map = self.0.map(counting(started.clone()), 0..items);
        // The scope's end waits for whatever still runs.
        started_at_drop(map.chunksize(chunk).buffersize(buffer), take, &started)
    }
}

fn sorted(mut results: Vec<Result<u64, Error>>) -> Vec<String> {
    let mut keys: Vec<String> = results.drain(..).map(|r| format!("{r:?}")).collect();
    keys.sort();
    keys
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ordered_map_equals_the_sequential_map(
        items in prop::collection::vec(item(), 0..2000),
        backend in backend(),
        scoped in any::<bool>(),
        chunk in 1..64_usize,
        buffer in 1..64_usize,
    ) {
        let got: Vec<_> = with_executor(backend, scoped, |e| e.ordered(Box::new(items.clone().into_iter()), chunk, buffer).collect());
        prop_assert_eq!(got, expected(&items));
    }

    #[test]
    fn unordered_map_is_a_permutation(
        items in prop::collection::vec(item(), 0..2000),
        backend in backend(),
        scoped in any::<bool>(),
        chunk in 1..64_usize,
        buffer in 1..64_usize,
    ) {
        let got: Vec<_> = with_executor(backend, scoped, |e| e.unordered(Box::new(items.clone().into_iter()), chunk, buffer).collect());
        prop_assert_eq!(sorted(got), sorted(expected(&items)));
    }

    #[test]
    fn the_input_is_pulled_at_most_a_window_ahead(
        len in 0..2000_usize,
        backend in backend(),
        scoped in any::<bool>(),
        chunk in 1..64_usize,
        buffer in 1..64_usize,
        unordered in any::<bool>(),
    ) {
        let pulled = Rc::new(Cell::new(0_usize));
        let counter = pulled.clone();
        let input = (0..len as u32)
            .map(|value| Item { value, delay_us: 0, panics: false })
            .inspect(move |_| counter.set(counter.get() + 1));
        let consumed = with_executor(backend, scoped, |e| {
            let results = if unordered {
                e.unordered(Box::new(input), chunk, buffer)
            } else {
                e.ordered(Box::new(input), chunk, buffer)
            };
            let mut consumed = 0;
            for result in results {
                prop_assert!(result.is_ok());
                consumed += 1;
                prop_assert!(
                    pulled.get() < consumed + buffer * chunk,
                    "pulled {} with {} consumed, window {}x{}", pulled.get(), consumed, buffer, chunk
                );
            }
            Ok(consumed)
        })?;
        prop_assert_eq!(consumed, len);
    }

    #[test]
    fn dropping_the_map_starts_nothing_new(
        len in 1..2000_usize,
        backend in backend(),
        scoped in any::<bool>(),
        chunk in 1..16_usize,
        buffer in 1..16_usize,
        take_fraction in 0.0..1.0_f64,
    ) {
        let take = ((len as f64) * take_fraction) as usize;
        let started = Arc::new(AtomicUsize::new(0));
        let at_drop = with_executor(backend, scoped, |e| e.counted(len, chunk, buffer, take, started.clone()));
        let after = started.load(Ordering::SeqCst);
        prop_assert!(at_drop >= take);
        // Only chunks already running at the drop may still count their items.
        prop_assert!(
            after <= at_drop + backend.running_at_most(buffer) * chunk,
            "{} started after the drop", after - at_drop
        );
    }
}

/// How a generated future ends.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Finished before the call.
    Ok,
    /// Failed before the call.
    Failed,
    /// Finished by another thread after the given delay.
    LaterOk(u64),
    /// Failed by another thread after the delay.
    LaterFailed(u64),
    /// Cancelled by another thread after the delay.
    LaterCancelled(u64),
    /// Never done while the property runs.
    Never,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        Just(Fate::Ok),
        Just(Fate::Failed),
        (0..2000_u64).prop_map(Fate::LaterOk),
        (0..2000_u64).prop_map(Fate::LaterFailed),
        (0..2000_u64).prop_map(Fate::LaterCancelled),
        Just(Fate::Never),
    ]
}

/// Futures with the given fates, the completer thread that carries the later ones out, and the
/// promises of the `Never` ones (kept alive so that they stay pending).
fn futures_with(
    fates: &[Fate],
) -> (
    Vec<Future<u32>>,
    std::thread::JoinHandle<()>,
    Vec<Promise<u32>>,
) {
    let mut futures = Vec::new();
    let mut later = Vec::new();
    let mut never = Vec::new();
    for (i, fate) in fates.iter().enumerate() {
        let (mut promise, future) = Promise::new();
        match *fate {
            Fate::Ok => promise.set_result(i as u32).unwrap(),
            Fate::Failed => promise
                .set_error(Error::Panicked {
                    message: format!("{i}"),
                })
                .unwrap(),
            Fate::LaterOk(us) => later.push((us, promise, future.clone(), Some(Ok(i as u32)))),
            Fate::LaterFailed(us) => later.push((
                us,
                promise,
                future.clone(),
                Some(Err(Error::Broken {
                    reason: format!("{i}"),
                })),
            )),
            Fate::LaterCancelled(us) => later.push((us, promise, future.clone(), None)),
            Fate::Never => never.push(promise),
        }
        futures.push(future);
    }
    later.sort_by_key(|(us, ..)| *us);
    let completer = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        for (us, mut promise, future, outcome) in later {
            let due = Duration::from_micros(us);
            if let Some(left) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(left);
            }
            match outcome {
                Some(Ok(value)) => promise.set_result(value).unwrap(),
                Some(Err(error)) => promise.set_error(error).unwrap(),
                None => assert!(future.cancel()),
            }
        }
    });
    (futures, completer, never)
}

/// `futures` with some of them repeated, at random places.
fn with_duplicates(futures: &[Future<u32>], picks: &[prop::sample::Index]) -> Vec<Future<u32>> {
    let mut all = futures.to_vec();
    if !futures.is_empty() {
        for pick in picks {
            all.insert(
                pick.index(all.len() + 1),
                futures[pick.index(futures.len())].clone(),
            );
        }
    }
    all
}

fn when() -> impl Strategy<Value = ReturnWhen> {
    prop_oneof![
        Just(ReturnWhen::FirstCompleted),
        Just(ReturnWhen::FirstException),
        Just(ReturnWhen::AllCompleted)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn as_completed_yields_each_distinct_future_once(
        fates in prop::collection::vec(fate(), 0..100),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        timeout_ms in prop::option::of(0..5_u64),
    ) {
        // Without a time-out, what never finishes is left out, or the iterator never ends.
        let fates: Vec<Fate> = fates.into_iter().filter(|f| timeout_ms.is_some() || !matches!(f, Fate::Never)).collect();
        let (futures, completer, _never) = futures_with(&fates);
        let input = with_duplicates(&futures, &picks);
        let timeout = timeout_ms.map(Duration::from_millis);
        let mut seen = HashSet::new();
        let mut timeouts = 0;
        let mut iter = as_completed(input, timeout);
        for item in iter.by_ref() {
            match item {
                Ok(future) => {
                    prop_assert!(future.done());
                    let key = futures.iter().position(|f| *f == future).unwrap();
                    prop_assert!(seen.insert(key), "future {} yielded twice", key);
                }
                Err(error) => {
                    prop_assert_eq!(error, Error::Timeout);
                    timeouts += 1;
                }
            }
        }
        prop_assert!(timeouts <= 1);
        prop_assert_eq!(seen.len() + iter.unfinished(), futures.len());
        if timeout_ms.is_none() {
            prop_assert_eq!((iter.unfinished(), timeouts), (0, 0));
        }
        completer.join().unwrap();
    }

    #[test]
    fn wait_partitions_by_done_and_meets_its_condition(
        fates in prop::collection::vec(fate(), 0..100),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        when in when(),
        timeout_ms in prop::option::of(0..5_u64),
    ) {
        let (futures, completer, _never) = futures_with(&fates);
        let input = with_duplicates(&futures, &picks);
        let bounded: Vec<Future<u32>> = if timeout_ms.is_none() {
            // Without a time-out, leave out what never finishes, or ALL_COMPLETED waits forever.
            futures.iter().zip(&fates).filter(|(_, f)| !matches!(f, Fate::Never)).map(|(f, _)| f.clone()).collect()
        } else {
            input
        };
        let split = wait(&bounded, timeout_ms.map(Duration::from_millis), when);
        let mut distinct: Vec<&Future<u32>> = Vec::new();
        for future in &bounded {
            if !distinct.contains(&future) {
                distinct.push(future);
            }
        }
        prop_assert_eq!(split.done.len() + split.not_done.len(), distinct.len());
        prop_assert!(split.done.iter().all(|f| distinct.contains(&f) && f.done()));
        prop_assert!(split.not_done.iter().all(|f| distinct.contains(&f) && !split.done.contains(f)));
        for (future, fate) in futures.iter().zip(&fates) {
            if matches!(fate, Fate::Never) && distinct.contains(&future) {
                prop_assert!(split.not_done.contains(future));
            }
            if matches!(fate, Fate::Ok | Fate::Failed) && distinct.contains(&future) {
                prop_assert!(split.done.contains(future));
            }
        }
        if timeout_ms.is_none() && !distinct.is_empty() {
            match when {
                ReturnWhen::AllCompleted => prop_assert!(split.not_done.is_empty()),
                ReturnWhen::FirstCompleted => prop_assert!(!split.done.is_empty()),
                ReturnWhen::FirstException => prop_assert!(
                    split.not_done.is_empty() || split.done.iter().any(|f| f.exception_timeout(Duration::ZERO).is_ok_and(|e| e.is_some()))
                ),
            }
        }
        completer.join().unwrap();
    }
}
