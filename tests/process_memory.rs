//! Memory of large payloads (issue 11, item 10): the parent does not keep a large argument's
//! or result's buffer once the task is done. (The peak while it travels is measured in
//! `benches/process.rs`.)
//!
//! One test in this binary on purpose: it compares this process's resident memory before and
//! after, which another test running at the same time would disturb.
#![cfg(target_os = "linux")]

mod process_common;

use concurrent_futures::{FnExecutor, ProcessPool};
use process_common::BOUND;

/// 40 MB: above glibc's largest mmap threshold (32 MB), so freeing it returns it to the
/// system at once, and only a buffer the pool kept can stay resident.
const PAYLOAD: usize = 40 << 20;

// Strings, which postcard copies whole (a `Vec<u8>` goes byte by byte, slow in a debug build).
fn length(text: String) -> usize {
    text.len()
}

fn text(len: usize) -> String {
    "a".repeat(len)
}

fn double(x: u64) -> u64 {
    x * 2
}

/// This process's resident memory in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_large_argument_and_result_do_not_stay_resident_after_their_task() {
    let pool = ProcessPool::new(1).unwrap();
    assert_eq!(pool.submit_fn(double, 1).result_timeout(BOUND), Ok(&2));
    let before = resident();
    assert_eq!(
        pool.submit_fn(length, text(PAYLOAD)).result_timeout(BOUND),
        Ok(&PAYLOAD)
    );
    assert_eq!(
        pool.submit_fn(text, PAYLOAD)
            .result_timeout(BOUND)
            .map(String::len),
        Ok(PAYLOAD)
    );
    for x in 0..200 {
        assert_eq!(
            pool.submit_fn(double, x).result_timeout(BOUND),
            Ok(&(x * 2))
        );
    }
    let kept = resident().saturating_sub(before);
    assert!(
        kept < PAYLOAD as u64 / 2,
        "{:.1} MB stayed resident after a {} MB argument and result",
        kept as f64 / f64::from(1 << 20),
        PAYLOAD >> 20
    );
}
