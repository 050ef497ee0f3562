//! `.progress()` on maps and `as_completed` (feature `progress`), without a terminal: the bar
//! counts every item it hands on, knows its total when the input does, leaves the final time-out
//! out of the count, and draws (and ticks on a thread of its own) only when standard error is a
//! terminal.

#![cfg(feature = "progress")]

mod common;

use std::time::Duration;

use common::{LONG, completed_after, pending, successful};
use concurrent_futures::{CpuPool, Error, Executor, IoPool, ParMapExt, as_completed};

#[test]
fn ordered_map_counts_up_to_its_exact_total() {
    let pool = CpuPool::new(2).unwrap();
    let mut squares = (0..1000_u64)
        .par_map(&pool, |x| x * x)
        .timeout(LONG)
        .progress();
    assert_eq!(squares.total(), Some(1000));
    assert_eq!(squares.position(), 0);
    let results: Vec<u64> = squares.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(results.len(), 1000);
    assert_eq!(squares.position(), 1000);
    // Ending the iteration does not move the count to the total: it stays the true count.
    assert_eq!(squares.next(), None);
    assert_eq!(squares.position(), 1000);
}

#[test]
fn unordered_map_counts_failed_items_too() {
    let pool = IoPool::new(4).unwrap();
    let mut results = pool
        .map_unordered(
            |x: u32| {
                assert!(x != 7, "seven");
                x
            },
            vec![1, 7, 3, 4, 5],
        )
        .timeout(LONG)
        .progress();
    assert_eq!(results.total(), Some(5));
    let failures = results.by_ref().filter(Result::is_err).count();
    assert_eq!(failures, 1);
    assert_eq!(results.position(), 5);
}

#[test]
fn an_input_of_unknown_length_counts_without_a_total() {
    let pool = CpuPool::new(2).unwrap();
    let evens = (0..100_u32).filter(|x| x % 2 == 0);
    let mut halves = evens.par_map(&pool, |x| x / 2).timeout(LONG).progress();
    assert_eq!(halves.total(), None);
    assert_eq!(halves.by_ref().count(), 50);
    assert_eq!(halves.position(), 50);
}

#[test]
fn a_map_started_before_progress_counts_what_is_left() {
    let pool = CpuPool::new(2).unwrap();
    let mut map = (0..10_u32).par_map(&pool, |x| x).chunksize(3).timeout(LONG);
    // The first `next()` submits every chunk and hands out one item of the first.
    assert_eq!(map.next(), Some(Ok(0)));
    let mut rest = map.progress();
    assert_eq!(rest.total(), Some(9));
    assert_eq!(rest.by_ref().count(), 9);
    assert_eq!(rest.position(), 9);
}

#[test]
fn as_completed_counts_futures_and_not_the_timeout() {
    let (_never, stuck) = pending();
    let futures = vec![
        successful(),
        completed_after(Duration::from_millis(10), Ok(1)),
        stuck,
    ];
    let mut completed = as_completed(futures, Some(Duration::from_millis(200))).progress();
    assert_eq!(completed.total(), Some(3));
    let items: Vec<_> = completed.by_ref().collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[2].as_ref().err(), Some(&Error::Timeout));
    assert_eq!(completed.position(), 2);
}

#[test]
fn as_completed_reaches_its_total_when_all_finish() {
    let pool = IoPool::new(4).unwrap();
    let futures: Vec<_> = (0..20_u32).map(|i| pool.submit(move || i)).collect();
    let mut completed = as_completed(futures, Some(LONG)).progress();
    let mut sum = 0;
    for future in completed.by_ref() {
        sum += future.unwrap().into_result().unwrap();
    }
    assert_eq!(sum, (0..20).sum());
    assert_eq!(completed.position(), completed.total().unwrap());
}

/// Set in the child that [`the_bar_draws_and_ticks_only_on_a_terminal`] runs with a chosen
/// standard error.
#[cfg(target_os = "linux")]
const CHILD: &str = "PROGRESS_TEST_CHILD";

/// What the child writes on standard error once its bar has ended.
#[cfg(target_os = "linux")]
const AFTER: &str = "the line after the bar";

/// What the child writes on standard error after dropping a second bar midway.
#[cfg(target_os = "linux")]
const AFTER_DROP: &str = "the line after the dropped bar";

/// Whether a bar was visible and ticking depends on what file descriptor 2 is, which a test
/// cannot change for itself: it runs this test binary again, once with standard error on a
/// pipe and once on a pseudo-terminal, and looks at what the bar wrote and at the threads the
/// child ran (a drawn bar redraws on a thread of its own; a hidden one must not cost one).
#[cfg(target_os = "linux")]
#[test]
fn the_bar_draws_and_ticks_only_on_a_terminal() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};

    if std::env::var_os(CHILD).is_some() {
        return report_bar_threads();
    }
    let child = |stderr: Stdio| {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_bar_draws_and_ticks_only_on_a_terminal",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    /// The child's "threads A B" line: threads before the bar and while it lives.
    fn threads(stdout: &str) -> (usize, usize) {
        // libtest prints the test's name on the same line first.
        let line = stdout
            .lines()
            .find_map(|l| Some(l.split_once("threads ")?.1));
        let numbers: Vec<usize> = line
            .unwrap_or_else(|| panic!("no thread counts in:\n{stdout}"))
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        (numbers[0], numbers[1])
    }
    let finish = |child: std::process::Child| {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "child failed:\n{stdout}");
        (stdout, String::from_utf8_lossy(&output.stderr).into_owned())
    };

    // Standard error on a pipe: nothing drawn, no ticking thread.
    let (stdout, stderr) = finish(child(Stdio::piped()));
    assert!(!stderr.contains("3/3"), "drawn on a pipe: {stderr:?}");
    let (before, with_bar) = threads(&stdout);
    assert_eq!(with_bar, before, "a hidden bar started a thread:\n{stdout}");

    // On a terminal: drawn, and ticking on one more thread.
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: FFI; openpty writes the two descriptors it opens into `master` and `slave`, takes
    // no name buffer (null) and default terminal modes (null), and only reads `size`.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // The child gets the only copy of the terminal's side, so the master reads end-of-file
    // (EIO on Linux) once the child has exited.
    let running = child(Stdio::from(slave));
    let reader = std::thread::spawn(move || {
        let mut master = std::fs::File::from(master);
        let mut drawn = Vec::new();
        let mut buffer = [0; 4096];
        while let Ok(n @ 1..) = master.read(&mut buffer) {
            drawn.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&drawn).into_owned()
    });
    let (stdout, _) = finish(running);
    let drawn = reader.join().unwrap();
    assert!(drawn.contains("3/3"), "not drawn on a terminal: {drawn:?}");
    // The bar's last line ends before the program's next line starts (the terminal turns
    // "\n" into "\r\n").
    let (bar, _) = drawn
        .split_once(AFTER)
        .unwrap_or_else(|| panic!("no line after the bar: {drawn:?}"));
    assert!(
        bar.ends_with('\n'),
        "the next line starts on the bar's line: {drawn:?}"
    );
    let last_line = bar.trim_end().rsplit('\n').next().unwrap_or_default();
    assert!(
        last_line.contains("3/3"),
        "the bar's last state is gone: {drawn:?}"
    );
    // The same for a bar dropped before its iteration ended.
    let (dropped, _) = drawn
        .split_once(AFTER_DROP)
        .unwrap_or_else(|| panic!("no line after the dropped bar: {drawn:?}"));
    let dropped = &dropped[dropped.find(AFTER).unwrap() + AFTER.len()..];
    assert!(
        dropped.contains("1/3"),
        "the dropped bar was not drawn: {drawn:?}"
    );
    assert!(
        dropped.ends_with('\n'),
        "the next line starts on the dropped bar's line: {drawn:?}"
    );
    let (before, with_bar) = threads(&stdout);
    assert_eq!(with_bar, before + 1, "no ticking thread:\n{stdout}");
}

/// The child's side: a map with a bar, on no pool (so no other thread comes or goes), and the
/// number of threads of the process before the bar and while it lives.
#[cfg(target_os = "linux")]
fn report_bar_threads() {
    use concurrent_futures::InlineExecutor;
    let count = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let executor = InlineExecutor::new();
    let before = count();
    let mut map = [1, 2, 3].par_map(&executor, |x: i32| x + 1).progress();
    let with_bar = count();
    assert_eq!(map.by_ref().count(), 3);
    eprintln!("{AFTER}");
    println!("threads {before} {with_bar}");
    let mut dropped = [1, 2, 3].par_map(&executor, |x: i32| x + 1).progress();
    assert_eq!(dropped.next(), Some(Ok(2)));
    drop(dropped);
    eprintln!("{AFTER_DROP}");
}
