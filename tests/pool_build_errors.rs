//! Every thread pool reports a bad configuration the same way: `new` and `build` return
//! `Err(BuildError)`, never panic (CPython raises `ValueError` for `max_workers <= 0`). The
//! process pool's own errors are in `process_build_errors.rs` (Linux only).

use std::error::Error as _;

use concurrent_futures::{BuildError, CpuPool, IoPool};

fn assert_zero(built: Result<impl std::fmt::Debug, BuildError>, option: &str) {
    match built {
        Err(BuildError::Zero { option: named }) => assert_eq!(named, option),
        other => panic!("expected BuildError::Zero for {option}, got {other:?}"),
    }
}

// 19. test_max_workers_negative
#[test]
fn zero_threads_is_an_error_from_new_and_build() {
    assert_zero(CpuPool::new(0), "num_threads");
    assert_zero(CpuPool::builder().num_threads(0).build(), "num_threads");
    assert_zero(IoPool::new(0), "max_workers");
    assert_zero(IoPool::builder().max_workers(0).build(), "max_workers");
}

#[test]
fn the_message_names_the_option_and_the_fix() {
    let error = IoPool::new(0).unwrap_err();
    assert_eq!(error.to_string(), "max_workers must be at least 1, not 0");
    assert!(error.source().is_none());
    let error = CpuPool::new(0).unwrap_err();
    assert_eq!(error.to_string(), "num_threads must be at least 1, not 0");
}

#[test]
fn a_valid_size_builds() {
    assert_eq!(CpuPool::new(1).map(|pool| pool.num_threads()).ok(), Some(1));
    assert!(IoPool::new(1).is_ok());
}
