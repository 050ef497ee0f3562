//! Shared by the process-pool test binaries: starts the fork server before `main`, and the
//! bound every wait in these tests uses.

use std::time::Duration;

/// Long enough for any of these tasks on a loaded machine; a hang shows up as `Timeout`.
pub const BOUND: Duration = Duration::from_secs(30);

/// The test harness runs tests on threads, so by the time a test builds a pool the program is
/// multi-threaded. An `.init_array` constructor runs before `main`, while the program still has
/// one thread, so the fork server (and every worker) starts from a clean image.
#[used]
#[unsafe(link_section = ".init_array")]
static START_FORK_SERVER: extern "C" fn() = {
    extern "C" fn start() {
        concurrent_futures::process::init().expect("could not start the fork server");
    }
    start
};

/// True if `pid` is gone: no process and no zombie (a zombie still has a `/proc` entry).
pub fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}
