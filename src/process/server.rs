//! The fork server: one small single-threaded process, a fresh `exec` of this executable, that
//! forks every worker on request, reaps them, and reports how each one ended.
//!
//! Why: a program that runs threads (the pool's own manager thread, rayon, the test harness)
//! must not fork workers itself, because a child keeps only the forking thread and every lock
//! another thread held stays locked in it forever. Nor may it fork the server, for the same
//! reason. So the server is not a fork: the first pool (or [`init`](super::init)) runs
//! `/proc/self/exe` again, from whatever thread, with [`MARKER`] in its environment naming two
//! inherited fds: the server's end of the `main` channel and a pidfd of the program. This
//! crate's own pre-`main` constructor ([`BECOME_SERVER`], in `.init_array`) sees the marker
//! and runs the server loop instead of returning into the program's `main`, so the server and
//! every worker are copies of the program as the loader made it: statics at their initial
//! values, no thread, no lock held. Python 3.14's `forkserver`, down to the `exec`.
//!
//! The constructor runs before the program's own constructors (its section sorts before the
//! unprioritised `.init_array` that `#[ctor]`-style code uses) but after std's (`00099`, which
//! records `argv`), so neither the program's constructors nor its `main` (nor a test binary's
//! harness) ever run in the server. Functions travel to it as offsets from an anchor in the
//! executable ([`Image`](crate::remote::image::Image)), since the exec'd image lies elsewhere.
//!
//! Channels: the program keeps one `SOCK_SEQPACKET` socket to the server (`main`), used only
//! to open one more channel per pool, so each pool's manager thread talks to the server alone
//! and hears only about its own workers. On a pool's channel the manager sends `SPAWN` (with
//! the two pipe ends of the new worker attached) and `KILL`; the server answers `SPAWNED` or
//! `SPAWN_FAILED` and reports `EXITED` (pid and raw wait status) for each worker it reaps. The
//! server never blocks on a channel: its sockets are non-blocking, and what a pool's manager
//! has not read yet waits in that channel's outbox until `poll` says there is room.
//!
//! Lifetime: when a pool's channel closes, the server SIGKILLs whatever is left of that pool's
//! workers. It exits (killing and reaping all its workers first) when the program says `STOP`
//! at exit, closes `main`, or dies: the pidfd of the program becomes readable when the whole
//! program is gone, whichever thread started the server (`PR_SET_PDEATHSIG` would fire when
//! that *thread* ends), and whoever else holds a copy of `main`. Workers die with the server
//! (`PR_SET_PDEATHSIG` on a single-threaded parent, so its one thread's end is its end).
//! A server that dies is noticed by the next pool built (its pidfd, or `EPIPE` on `main`),
//! which starts a new one.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::{Mutex, MutexGuard, Once};

use super::control::{CONTROL_BYTES, Control};
use super::sys::{self, Forked};
use super::worker;
use crate::build_error::BuildError;
use crate::remote::image::Image;

/// Parent → server on `main`: open a pool channel (its server end attached).
const CONNECT: u8 = 1;
/// Parent → server: fork a worker. `a`: token, `b`: offset of the initializer in the
/// executable, or 0 for none; two fds attached (the worker's request read end and result
/// write end).
pub(super) const SPAWN: u8 = 2;
/// Parent → server: `a`: pid, `b`: signal. Only a child of this channel that has not been
/// reaped is signalled, so a recycled pid is never hit.
pub(super) const KILL: u8 = 3;
/// Server → parent: `a`: token, `b`: pid.
pub(super) const SPAWNED: u8 = 4;
/// Server → parent: `a`: token, `b`: errno of the failed fork.
pub(super) const SPAWN_FAILED: u8 = 5;
/// Server → parent: `a`: pid, `b`: raw wait status.
pub(super) const EXITED: u8 = 6;
/// Server → parent on `main`, once: the server runs.
const READY: u8 = 7;
/// Parent → server on `main`: the program is exiting; kill the workers and exit.
const STOP: u8 = 8;

/// The environment variable that makes an exec of this executable the fork server: the numbers
/// of the two fds it inherits, the server's end of `main` and a pidfd of the program.
const MARKER: &str = "CONCURRENT_FUTURES_FORK_SERVER";

/// How long a new server may take to say it runs: an `exec` and the loader, on a loaded
/// machine.
const START_TIMEOUT_MS: libc::c_int = 30_000;

/// Runs before `main` in every program that links this crate and starts a pool; turns the
/// process into the fork server if [`MARKER`] says it was started as one, and does nothing
/// otherwise. Referenced from [`spawn`], so that the object holding it is linked into every
/// program that can start a server.
#[used]
#[unsafe(link_section = ".init_array.00100")]
static BECOME_SERVER: extern "C" fn() = become_server_if_marked;

extern "C" fn become_server_if_marked() {
    let Some(value) = std::env::var_os(MARKER) else {
        return;
    };
    // SAFETY: this runs before `main` and before the program's own constructors, while the
    // process has its one thread, so nothing reads the environment concurrently. Removed so
    // that workers, and what they start, do not see it.
    unsafe { std::env::remove_var(MARKER) };
    let fds = value
        .to_str()
        .and_then(|value| value.split_once(' '))
        .and_then(|(main, program)| Some((main.parse().ok()?, program.parse().ok()?)));
    // Never return into the program's `main` with a marker: it was started to serve.
    let Some((main, program)): Option<(RawFd, RawFd)> = fds else {
        sys::exit_now(2)
    };
    // Whatever else the program had open without close-on-exec is not the server's.
    sys::close_fds_except(&[main, program]);
    // SAFETY: the program passed these two fds open for this process (`spawn`), and nothing
    // else in it owns them.
    let (main, program) = unsafe { (OwnedFd::from_raw_fd(main), OwnedFd::from_raw_fd(program)) };
    if sys::set_cloexec(&main)
        .and_then(|()| sys::set_cloexec(&program))
        .is_err()
    {
        sys::exit_now(2)
    }
    serve(main, program)
}

/// A running server, as the program that started it knows it.
struct Running {
    /// The program's end of `main`.
    main: OwnedFd,
    pid: i32,
    /// Readable once the server has ended.
    pidfd: OwnedFd,
    /// The process that started it: a fork of that process inherits this record, but not the
    /// server (nor, in a `fork` child, these fds, which it closed).
    owner: i32,
}

/// The running server, once started.
static SERVER: Mutex<Option<Running>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Running>> {
    SERVER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the fork server if it is not running yet (or any more).
pub(super) fn start() -> Result<(), BuildError> {
    running(&mut lock()).map(drop)
}

/// Opens a new channel to the server for one pool, starting the server if needed, or a new
/// one if the last one died.
pub(super) fn connect() -> Result<OwnedFd, BuildError> {
    let mut server = lock();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let main = &running(&mut server)?.main;
        let (ours, theirs) = sys::seqpacket_pair().map_err(BuildError::Pipe)?;
        let hello = Control {
            tag: CONNECT,
            a: 0,
            b: 0,
        };
        match sys::send_with_fds(main, &hello.encode(), &[theirs.as_raw_fd()]) {
            Ok(()) => return Ok(ours),
            // It died after `running` looked: the next turn starts a new one (once: a server
            // that dies as it starts is an error to report, not to retry forever).
            Err(error)
                if attempts == 1
                    && matches!(error.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) =>
            {
                retire(&mut server);
            }
            Err(error) => return Err(BuildError::ForkServerStart(error)),
        }
    }
}

/// The live server of this process, started now if there is none.
fn running(server: &mut Option<Running>) -> Result<&Running, BuildError> {
    if server
        .as_ref()
        .is_some_and(|running| running.owner != sys::getpid())
    {
        // Inherited by a fork: that server is the parent's, and these fds are the parent's
        // copies or already closed; closing them now could close a reused number.
        std::mem::forget(server.take());
    }
    if server
        .as_ref()
        .is_some_and(|running| has_ended(&running.pidfd))
    {
        retire(server);
    }
    let running = match server.take() {
        Some(running) => running,
        None => {
            let running = spawn()?;
            static AT_EXIT: Once = Once::new();
            // SAFETY: `stop` is an `extern "C" fn()` that stays valid for the life of the
            // program, as atexit requires. A failed registration (no memory) only means the
            // server is stopped by the program's death instead.
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(stop);
            });
            running
        }
    };
    Ok(server.insert(running))
}

/// True once the process of `pidfd` has ended.
fn has_ended(pidfd: &OwnedFd) -> bool {
    let mut fds = [sys::pollfd(pidfd.as_raw_fd(), libc::POLLIN)];
    sys::poll(&mut fds, 0).is_ok_and(|ready| ready > 0)
}

/// Forgets a server that has died, or must: kills and reaps it.
fn retire(server: &mut Option<Running>) {
    if let Some(running) = server.take() {
        sys::kill(running.pid, libc::SIGKILL);
        sys::reap(running.pid, true);
    }
}

/// Where this executable's code lies, which is how the program names functions to the
/// server's workers.
///
/// # Errors
///
/// [`BuildError::NotInExecutable`] if this crate is not in the executable (linked into a
/// shared library): the server runs the executable, which would not have this crate's
/// constructor.
pub(super) fn image() -> Result<Image, BuildError> {
    Image::locate().ok_or(BuildError::NotInExecutable)
}

/// Starts a server: `/proc/self/exe` with [`MARKER`], and waits until it says it runs.
fn spawn() -> Result<Running, BuildError> {
    std::hint::black_box(&BECOME_SERVER);
    image()?;
    let (main, theirs) = sys::seqpacket_pair().map_err(BuildError::Pipe)?;
    let program = sys::pidfd_open(sys::getpid()).map_err(BuildError::ForkServerStart)?;
    let inherited = [theirs.as_raw_fd(), program.as_raw_fd()];
    let mut command = std::process::Command::new("/proc/self/exe");
    // Only argv[0], so that the server's command line names the program and nothing in it
    // could be taken for an instruction.
    command
        .arg0(
            std::env::args_os()
                .next()
                .as_deref()
                .unwrap_or(OsStr::new("fork-server")),
        )
        .env(MARKER, format!("{} {}", inherited[0], inherited[1]));
    // SAFETY: the closure runs in the forked child before `exec` and only calls `fcntl`,
    // which is async-signal-safe, on two fds that are open in the child.
    unsafe {
        command.pre_exec(move || {
            for fd in inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let pid = command.spawn().map_err(BuildError::ForkServerStart)?.id() as i32;
    drop((theirs, program));
    // A pidfd of a child we have not reaped names that child, whatever happens to it.
    let pidfd = sys::pidfd_open(pid);
    let mut fds = [sys::pollfd(main.as_raw_fd(), libc::POLLIN)];
    let mut buf = [0; CONTROL_BYTES];
    let answered = sys::poll(&mut fds, START_TIMEOUT_MS).is_ok_and(|ready| ready > 0);
    let ready = answered
        && matches!(
            sys::recv_with_fds(&main, &mut buf, &mut Vec::new(), true),
            Ok(n) if Control::decode(&buf[..n]).is_some_and(|m| m.tag == READY)
        );
    let failure = match pidfd {
        Ok(pidfd) if ready => {
            return Ok(Running {
                main,
                pid,
                pidfd,
                owner: sys::getpid(),
            });
        }
        Err(error) => BuildError::ForkServerStart(error),
        // Something came instead of READY: end of file, the server ended as it started.
        Ok(_) if answered => BuildError::ForkServerStart(io::Error::other(
            "the fork server ended before it was ready",
        )),
        Ok(_) => BuildError::ForkServerTimeout,
    };
    sys::kill(pid, libc::SIGKILL);
    sys::reap(pid, true);
    Err(failure)
}

/// Runs at exit in the process that started the server: tells it to stop (it kills and reaps
/// its workers and exits), then reaps it, so that a program leaves no zombie behind.
/// Bounded: a server that has not gone after a second is killed; its workers then die with it
/// (`PR_SET_PDEATHSIG`). Inherited by every fork of the program, where it does nothing.
extern "C" fn stop() {
    // `try_lock`: a thread that held the lock when another thread called `exit` will never
    // release it, and exit must not hang on it.
    let Ok(mut server) = SERVER.try_lock() else {
        return;
    };
    if server
        .as_ref()
        .is_none_or(|running| running.owner != sys::getpid())
    {
        return;
    }
    let Some(running) = server.take() else {
        return;
    };
    let bye = Control {
        tag: STOP,
        a: 0,
        b: 0,
    };
    let _ = sys::send_with_fds(&running.main, &bye.encode(), &[]);
    drop(running.main);
    let mut fds = [sys::pollfd(running.pidfd.as_raw_fd(), libc::POLLIN)];
    if !sys::poll(&mut fds, 1000).is_ok_and(|ready| ready > 0) {
        sys::kill(running.pid, libc::SIGKILL);
    }
    sys::reap(running.pid, true);
}

/// A pool's channel, by an id of its own (positions shift as channels close).
struct Client {
    id: u64,
    socket: OwnedFd,
    /// Messages the pool's manager has not taken yet: the server never waits for it.
    outbox: VecDeque<[u8; CONTROL_BYTES]>,
}

/// The server's state: its channels and the workers it has not reaped yet.
struct Server {
    main: OwnedFd,
    program: OwnedFd,
    sigchld: OwnedFd,
    clients: Vec<Client>,
    /// Unreaped workers and the channel that asked for each.
    children: Vec<(i32, u64)>,
    next_client: u64,
}

/// The server's main loop; never returns.
fn serve(main: OwnedFd, program: OwnedFd) -> ! {
    // As in any Rust program (the runtime does this before `main`, which the server never
    // reaches): a write to a closed pipe is an error, not a death.
    sys::set_signal(libc::SIGPIPE, libc::SIG_IGN);
    // Ctrl-C goes to the whole process group; the program decides what it means, and the
    // server and workers die with the program anyway.
    sys::set_signal(libc::SIGINT, libc::SIG_IGN);
    // A program that ignores SIGCHLD would pass that on through `exec`, and its children
    // would then be reaped by the kernel before the server could report how they ended.
    sys::set_signal(libc::SIGCHLD, libc::SIG_DFL);
    sys::mask_signal(libc::SIGCHLD, true);
    let Ok(sigchld) = sys::sigchld_fd() else {
        sys::exit_now(1)
    };
    let ready = Control {
        tag: READY,
        a: 0,
        b: 0,
    };
    if sys::send_with_fds(&main, &ready.encode(), &[]).is_err() {
        sys::exit_now(1)
    }
    let mut server = Server {
        main,
        program,
        sigchld,
        clients: Vec::new(),
        children: Vec::new(),
        next_client: 0,
    };
    loop {
        let mut fds = vec![
            sys::pollfd(server.main.as_raw_fd(), libc::POLLIN),
            sys::pollfd(server.sigchld.as_raw_fd(), libc::POLLIN),
            sys::pollfd(server.program.as_raw_fd(), libc::POLLIN),
        ];
        fds.extend(server.clients.iter().map(|client| {
            let events = if client.outbox.is_empty() {
                libc::POLLIN
            } else {
                libc::POLLIN | libc::POLLOUT
            };
            sys::pollfd(client.socket.as_raw_fd(), events)
        }));
        if sys::poll(&mut fds, -1).is_err() || fds[2].revents != 0 {
            server.exit();
        }
        if fds[1].revents != 0 {
            server.reap();
        }
        if fds[0].revents != 0 {
            server.accept();
        }
        let ready: Vec<(u64, libc::c_short)> = fds[3..]
            .iter()
            .zip(&server.clients)
            .filter(|(fd, _)| fd.revents != 0)
            .map(|(fd, client)| (client.id, fd.revents))
            .collect();
        for (id, revents) in ready {
            if revents & !libc::POLLOUT != 0 {
                server.serve_client(id);
            }
            server.flush(id);
        }
    }
}

impl Server {
    /// A message on `main`: a new pool channel, `STOP`, or end of file (the program is gone).
    fn accept(&mut self) {
        let mut buf = [0; CONTROL_BYTES];
        let mut fds = Vec::new();
        match sys::recv_with_fds(&self.main, &mut buf, &mut fds, true) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Ok(n) if n > 0 && Control::decode(&buf[..n]).is_some_and(|m| m.tag == CONNECT) => {
                if let Some(socket) = fds.pop()
                    && sys::set_nonblocking(&socket).is_ok()
                {
                    self.clients.push(Client {
                        id: self.next_client,
                        socket,
                        outbox: VecDeque::new(),
                    });
                    self.next_client += 1;
                }
            }
            _ => self.exit(),
        }
    }

    /// Every message waiting on pool channel `id`.
    fn serve_client(&mut self, id: u64) {
        loop {
            let Some(index) = self.clients.iter().position(|client| client.id == id) else {
                return;
            };
            let mut buf = [0; CONTROL_BYTES];
            let mut fds = Vec::new();
            let received =
                sys::recv_with_fds(&self.clients[index].socket, &mut buf, &mut fds, true);
            let message = match received {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Ok(n) if n > 0 => Control::decode(&buf[..n]),
                _ => {
                    // The pool is gone: nobody will read its workers' pipes again.
                    self.clients.remove(index);
                    for (pid, _) in self.children.iter().filter(|(_, owner)| *owner == id) {
                        sys::kill(*pid, libc::SIGKILL);
                    }
                    return;
                }
            };
            match message {
                Some(Control { tag: SPAWN, a, b }) if fds.len() == 2 => {
                    let result = fds.pop();
                    let request = fds.pop();
                    if let (Some(request), Some(result)) = (request, result) {
                        self.spawn(id, a, b as usize, request, result);
                    }
                }
                Some(Control { tag: KILL, a, b }) => {
                    let owned = self
                        .children
                        .iter()
                        .any(|&(pid, owner)| i64::from(pid) == a as i64 && owner == id);
                    if owned {
                        sys::kill(a as i32, b as i32);
                    }
                }
                // Anything else is a bug on the other side; ignoring it keeps the server alive.
                _ => {}
            }
        }
    }

    /// Queues `message` for channel `id` and sends what the channel takes now.
    fn post(&mut self, id: u64, message: Control) {
        if let Some(client) = self.clients.iter_mut().find(|client| client.id == id) {
            client.outbox.push_back(message.encode());
        }
        self.flush(id);
    }

    /// Sends channel `id`'s outbox until it is empty or the socket is full.
    fn flush(&mut self, id: u64) {
        let Some(client) = self.clients.iter_mut().find(|client| client.id == id) else {
            return;
        };
        while let Some(message) = client.outbox.front() {
            match sys::send_with_fds(&client.socket, message, &[]) {
                Ok(()) => {
                    client.outbox.pop_front();
                }
                // Full: `poll` says when there is room. Gone: its end of file comes next.
                Err(_) => return,
            }
        }
    }

    /// Forks one worker for channel `id` and tells the channel its pid.
    fn spawn(
        &mut self,
        id: u64,
        token: u64,
        initializer: usize,
        request: OwnedFd,
        result: OwnedFd,
    ) {
        let server_pid = sys::getpid();
        // SAFETY: this process is single-threaded (the server never starts a thread), so the
        // child is a complete copy and may do anything; it ends through `worker::run`, which
        // never returns (so none of the server's fds, closed below, is closed twice).
        let reply = match unsafe { sys::fork() } {
            Ok(Forked::Child) => {
                // The worker keeps its two pipe ends: a worker holding another pool's channel
                // would hide the server's death from that pool.
                sys::close_fds_except(&[request.as_raw_fd(), result.as_raw_fd()]);
                sys::mask_signal(libc::SIGCHLD, false);
                worker::run(request, result, initializer, server_pid)
            }
            Ok(Forked::Parent(pid)) => {
                self.children.push((pid, id));
                Control {
                    tag: SPAWNED,
                    a: token,
                    b: pid as u64,
                }
            }
            Err(error) => Control {
                tag: SPAWN_FAILED,
                a: token,
                b: error.raw_os_error().unwrap_or(0) as u64,
            },
        };
        drop((request, result));
        self.post(id, reply);
    }

    /// Reaps every ended worker and reports it to the channel that asked for it.
    fn reap(&mut self) {
        let mut drain = [0_u8; 512];
        while matches!(sys::read(&self.sigchld, &mut drain), Ok(n) if n > 0) {}
        while let Some((pid, status)) = sys::reap_any() {
            let Some(at) = self.children.iter().position(|(child, _)| *child == pid) else {
                continue;
            };
            let (_, owner) = self.children.swap_remove(at);
            let report = Control {
                tag: EXITED,
                a: pid as u64,
                b: u64::from(status as u32),
            };
            self.post(owner, report);
        }
    }

    /// The program is gone or exiting: kill and reap every worker, then exit.
    fn exit(&mut self) -> ! {
        for (pid, _) in &self.children {
            sys::kill(*pid, libc::SIGKILL);
        }
        for (pid, _) in &self.children {
            sys::reap(*pid, true);
        }
        sys::exit_now(0)
    }
}
