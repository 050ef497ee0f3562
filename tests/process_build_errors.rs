//! `ProcessPool::new`, its builder and `process::init` return a `BuildError` that says what went
//! wrong: a zero option (named), an initializer that is not in the executable, pipes that
//! cannot be opened. Linux only, as the process pool.
#![cfg(target_os = "linux")]

mod process_common;

use std::error::Error as _;

use concurrent_futures::{BuildError, ProcessPool};
use process_common::in_own_program;

#[test]
fn zero_workers_and_every_zero_option_are_named() {
    let zero = |built: Result<ProcessPool, BuildError>| match built {
        Err(BuildError::Zero { option }) => option,
        other => panic!("expected BuildError::Zero, got {other:?}"),
    };
    assert_eq!(zero(ProcessPool::new(0)), "max_workers");
    let builder = || ProcessPool::builder().max_workers(1);
    assert_eq!(
        zero(builder().max_tasks_per_child(0).build()),
        "max_tasks_per_child"
    );
    assert_eq!(zero(builder().pipeline_depth(0).build()), "pipeline_depth");
    assert_eq!(zero(builder().worker_threads(0).build()), "worker_threads");
    assert_eq!(
        zero(builder().max_frame_bytes(0).build()),
        "max_frame_bytes"
    );
    assert_eq!(
        ProcessPool::new(0).unwrap_err().to_string(),
        "max_workers must be at least 1, not 0"
    );
}

#[test]
fn an_initializer_from_a_shared_library_is_refused() {
    // SAFETY: `dlsym` with a NUL-terminated name; it only looks the symbol up.
    let getpid = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"getpid".as_ptr()) };
    assert!(!getpid.is_null(), "getpid is in the C library");
    // SAFETY: a non-null address has the layout of a `fn()`; it is never called, since the
    // builder refuses it before any worker exists (a call would have the wrong ABI).
    let initializer = unsafe { std::mem::transmute::<*mut libc::c_void, fn()>(getpid) };
    let built = ProcessPool::builder()
        .max_workers(1)
        .initializer(initializer)
        .build();
    let error = built.unwrap_err();
    assert!(
        matches!(error, BuildError::InitializerNotInExecutable),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("not a function of the executable"),
        "{error}"
    );
}

#[test]
fn out_of_file_descriptors_is_a_pipe_error_with_its_cause() {
    // A fresh program: its first pool starts the fork server, which needs a socket pair.
    if !in_own_program("out_of_file_descriptors_is_a_pipe_error_with_its_cause") {
        return;
    }
    let open: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // A new fd takes the lowest free number; a limit at that number leaves none free.
    let lowest_free = (0..).find(|fd| !open.contains(fd)).unwrap();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit for the call to fill, then to read.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let lowered = libc::rlimit {
        rlim_cur: lowest_free,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above; only this process's soft limit changes, and it is restored below.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
    let built = ProcessPool::new(1);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let error = built.unwrap_err();
    let BuildError::Pipe(cause) = &error else {
        panic!("expected BuildError::Pipe, got {error:?}");
    };
    assert_eq!(cause.raw_os_error(), Some(libc::EMFILE));
    assert!(error.source().is_some());
    assert!(error.to_string().contains("open files"), "{error}");
    // With the limit back, the same program builds a pool.
    assert!(ProcessPool::new(1).is_ok());
}
