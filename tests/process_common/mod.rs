//! Shared by the process-pool test binaries: the bound every wait in these tests uses, and a
//! way to run one test in a program of its own (for what must happen in a fresh program: the
//! first pool, a killed program, a killed fork server).

#![allow(dead_code)] // each test binary uses part of this

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for any of these tasks on a loaded machine; a hang shows up as `Timeout`.
pub const BOUND: Duration = Duration::from_secs(30);

/// How long a test run in a program of its own may take before it counts as hung.
pub const PROGRAM_BOUND: Duration = Duration::from_secs(120);

/// The variable that tells a copy of a test binary which test it runs alone.
const ALONE: &str = "CONCURRENT_FUTURES_TEST_ALONE";

/// True if `pid` is gone: no process and no zombie (a zombie still has a `/proc` entry).
pub fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// True if `pid` has ended: gone, or a zombie waiting for its parent to reap it.
pub fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// In a worker (which holds only stdin, stdout, stderr and its two pipes): the fd of its pipe
/// opened with `access` (`O_RDONLY`: the request pipe, `O_WRONLY`: the result pipe).
pub fn worker_pipe(access: i32) -> i32 {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(fd) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_pipe = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|target| target.to_string_lossy().starts_with("pipe:"));
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|flags| i32::from_str_radix(flags.trim(), 8).ok());
        if fd > 2 && is_pipe && flags.is_some_and(|flags| flags & libc::O_ACCMODE == access) {
            found.push(fd);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "the worker's pipes opened with {access}: {found:?}"
    );
    found[0]
}

/// True in the copy of the test binary that [`own_program`] made to run `test`.
pub fn alone(test: &str) -> bool {
    std::env::var_os(ALONE).is_some_and(|alone| alone == test)
}

/// This test binary again, running only `test`, with [`in_own_program`] true there.
pub fn own_program(test: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            test,
            "--nocapture",
            "--quiet",
            "--test-threads",
            "1",
        ])
        .env(ALONE, test)
        .stdin(Stdio::null());
    command
}

/// In the copy of the test binary that runs `test` alone, true: the caller runs the test's
/// body. Anywhere else, runs that copy, asserts that it passed within [`PROGRAM_BOUND`]
/// (killing it if not), and returns false.
pub fn in_own_program(test: &str) -> bool {
    if alone(test) {
        return true;
    }
    let mut child = own_program(test)
        .spawn()
        .expect("could not start the test's program");
    let deadline = Instant::now() + PROGRAM_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    match status {
        Some(status) => assert!(
            status.success(),
            "`{test}` failed in its own program: {status}"
        ),
        None => panic!("`{test}` hung in its own program: killed after {PROGRAM_BOUND:?}"),
    }
    false
}
