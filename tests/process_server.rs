//! The fork server's life: it starts clean from any thread with no `process::init` (a fresh
//! `exec` of this executable), survives the program's other forks, is replaced when it dies,
//! hands workers and `fork` children only their own fds, and never blocks on its channel.
//!
//! Tests that need a fresh program (the first pool of the program, a killed server) run in a
//! copy of this binary of their own (`process_common::in_own_program`).
#![cfg(target_os = "linux")]

mod process_common;

use std::os::fd::RawFd;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use concurrent_futures::{Error, FnExecutor, ProcessPool};
use process_common::{BOUND, ended, in_own_program};

/// Held by another thread of the program while the fork server starts.
static HELD: Mutex<()> = Mutex::new(());

/// Takes the lock and the stdout lock that another thread held when the first pool was built.
fn lock_and_print(x: u32) -> u32 {
    let _guard = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    println!("task {x} took the lock");
    x + 1
}

fn double(x: u64) -> u64 {
    x * 2
}

/// The worker's pid and its parent's: the fork server.
fn pid_and_parent(_: ()) -> (u32, u32) {
    (std::process::id(), std::os::unix::process::parent_id())
}

/// What this process has open besides stdin, stdout and stderr: the target of each fd.
fn open_fds(_: ()) -> Vec<String> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let fd: RawFd = entry.file_name().to_str().unwrap().parse().unwrap();
        // The directory being listed has an fd of its own, linked to /proc/<pid>/fd.
        match std::fs::read_link(entry.path()) {
            Ok(target) if fd > 2 && !target.starts_with("/proc") => {
                fds.push(format!("{fd} -> {}", target.display()));
            }
            _ => {}
        }
    }
    fds
}

#[test]
fn a_pool_built_while_another_thread_holds_locks_answers() {
    if !in_own_program("a_pool_built_while_another_thread_holds_locks_answers") {
        return;
    }
    // No `process::init`: the first pool starts the fork server while another thread holds
    // a mutex and the stdout lock, which the tasks take too.
    let (held, wait_held) = mpsc::channel();
    let (release, wait_release) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let guard = HELD.lock().unwrap();
        let stdout = std::io::stdout().lock();
        held.send(()).unwrap();
        let _ = wait_release.recv();
        drop(stdout);
        drop(guard);
    });
    wait_held.recv().unwrap();
    let pool = ProcessPool::new(2).unwrap();
    let futures: Vec<_> = (0..4).map(|x| pool.submit_fn(lock_and_print, x)).collect();
    // Let the pool start its workers while the locks are still held.
    std::thread::sleep(Duration::from_millis(200));
    release.send(()).unwrap();
    holder.join().unwrap();
    for (x, future) in futures.iter().enumerate() {
        assert_eq!(future.result_timeout(BOUND), Ok(&(x as u32 + 1)));
    }
}

#[test]
fn a_function_outside_the_executable_is_refused() {
    let pool = ProcessPool::new(1).unwrap();
    // A function of libc, a shared library: it lies elsewhere in every process, so it cannot
    // be named in the fork server's image. It is never called.
    // SAFETY: only the address is used; the pool refuses it before anything calls it.
    let foreign =
        unsafe { std::mem::transmute::<usize, fn(u64) -> u64>(libc::abs as *const () as usize) };
    assert!(matches!(
        pool.submit_fn(foreign, 1).result_timeout(BOUND),
        Err(Error::Serialization { .. })
    ));
    assert_eq!(pool.submit_fn(double, 21).result_timeout(BOUND), Ok(&42));
}

#[test]
fn forks_that_exit_leave_the_fork_server_alone() {
    if !in_own_program("forks_that_exit_leave_the_fork_server_alone") {
        return;
    }
    let pool = ProcessPool::new(1).unwrap();
    assert_eq!(pool.submit_fn(double, 1).result_timeout(BOUND), Ok(&2));
    let child = pool.fork(|| -> u8 { std::process::exit(3) });
    assert!(matches!(
        child.result_timeout(BOUND),
        Err(Error::WorkerDied { .. })
    ));
    // The program's own fork, leaving through `exit` and so running the atexit handlers.
    // SAFETY: the child calls only `exit`; glibc resets its stdio locks in a forked child.
    match unsafe { libc::fork() } {
        // SAFETY: exit has no preconditions.
        0 => unsafe { libc::exit(0) },
        -1 => panic!("fork failed"),
        // SAFETY: waitpid on our own child, with a valid status pointer.
        pid => assert_eq!(unsafe { libc::waitpid(pid, &mut 0, 0) }, pid),
    }
    assert_eq!(pool.submit_fn(double, 21).result_timeout(BOUND), Ok(&42));
    let again = ProcessPool::new(1).unwrap();
    assert_eq!(again.submit_fn(double, 4).result_timeout(BOUND), Ok(&8));
}

#[test]
fn a_killed_fork_server_is_replaced_by_the_next_pool() {
    if !in_own_program("a_killed_fork_server_is_replaced_by_the_next_pool") {
        return;
    }
    let pool = ProcessPool::new(1).unwrap();
    let (_, server) = *pool
        .submit_fn(pid_and_parent, ())
        .result_timeout(BOUND)
        .unwrap();
    assert_ne!(
        server,
        std::process::id(),
        "workers are not forks of the program"
    );
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    let start = std::time::Instant::now();
    while !ended(server) && start.elapsed() < BOUND {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The pool it served cannot go on.
    assert!(pool.submit_fn(double, 1).result_timeout(BOUND).is_err());
    let fresh = ProcessPool::new(1).unwrap();
    assert_eq!(fresh.submit_fn(double, 2).result_timeout(BOUND), Ok(&4));
    let (_, new_server) = *fresh
        .submit_fn(pid_and_parent, ())
        .result_timeout(BOUND)
        .unwrap();
    assert_ne!(new_server, server);
}

#[test]
fn a_pipe_opened_before_the_first_pool_sees_end_of_file() {
    if !in_own_program("a_pipe_opened_before_the_first_pool_sees_end_of_file") {
        return;
    }
    // Without close-on-exec, so that even an exec'd process would inherit it.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [read, write] = fds;
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.submit_fn(double, 1).result_timeout(BOUND), Ok(&2));
    assert_eq!(pool.fork(|| 5_u8).result_timeout(BOUND), Ok(&5));
    // SAFETY: `write` is ours, closed once.
    unsafe { libc::close(write) };
    let mut poll = libc::pollfd {
        fd: read,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut poll, 1, BOUND.as_millis() as i32) };
    assert_eq!(ready, 1, "nobody else may hold the write end");
    let mut byte = [0_u8; 1];
    // SAFETY: `byte` has room for one byte.
    assert_eq!(unsafe { libc::read(read, byte.as_mut_ptr().cast(), 1) }, 0);
}

#[test]
fn workers_and_fork_children_hold_only_their_own_fds() {
    // Another pool, whose pipes nobody else may hold.
    let other = ProcessPool::new(1).unwrap();
    assert_eq!(other.submit_fn(double, 1).result_timeout(BOUND), Ok(&2));
    let pool = ProcessPool::new(1).unwrap();
    let worker = pool
        .submit_fn(open_fds, ())
        .result_timeout(BOUND)
        .unwrap()
        .clone();
    // Its request and result pipes.
    assert_eq!(worker.len(), 2, "a worker's fds: {worker:?}");
    assert!(worker.iter().all(|fd| fd.contains("pipe:")), "{worker:?}");
    let child = pool
        .fork(|| open_fds(()))
        .result_timeout(BOUND)
        .unwrap()
        .clone();
    // Its result pipe, and the read end of the pipe whose end of file kills it.
    assert!(child.len() <= 2, "a fork child's fds: {child:?}");
    assert!(child.iter().all(|fd| fd.contains("pipe:")), "{child:?}");
}

/// The names of this process's environment variables.
fn variables(_: ()) -> Vec<String> {
    std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn workers_see_the_programs_environment_and_nothing_more() {
    let pool = ProcessPool::new(1).unwrap();
    let ours = variables(());
    let theirs = pool
        .submit_fn(variables, ())
        .result_timeout(BOUND)
        .unwrap()
        .clone();
    // Not the variable that made the server's process the server.
    let extra: Vec<&String> = theirs.iter().filter(|name| !ours.contains(name)).collect();
    assert!(
        extra.is_empty(),
        "a worker has variables the program has not: {extra:?}"
    );
    assert!(theirs.contains(&"PATH".to_owned()) || !ours.contains(&"PATH".to_owned()));
}
