//! The fork server: one small single-threaded process, forked from this program once, that
//! forks every worker on request, reaps them, and reports how each one ended.
//!
//! Why: a program that runs threads (the pool's own manager thread, rayon, the test harness)
//! must not fork workers itself, because a child keeps only the forking thread and every lock
//! another thread held stays locked in it forever. The server is forked while the program is
//! still single-threaded ([`init`](super::init) at the top of `main`), never starts a thread,
//! and so hands every worker a clean image: Python 3.14's `forkserver`, minus the `exec`.
//!
//! Channels: the program keeps one `SOCK_SEQPACKET` socket to the server (`main`), used only
//! to open one more channel per pool, so each pool's manager thread talks to the server alone
//! and hears only about its own workers. On a pool's channel the manager sends `SPAWN` (with
//! the two pipe ends of the new worker attached) and `KILL`; the server answers `SPAWNED` or
//! `SPAWN_FAILED` and reports `EXITED` (pid and raw wait status) for each worker it reaps.
//!
//! Lifetime: when a pool's channel closes, the server SIGKILLs whatever is left of that pool's
//! workers; when the program's end of `main` closes (the program exited or was killed), it
//! SIGKILLs all of its workers, reaps them, and exits. Workers die with the server
//! (`PR_SET_PDEATHSIG`), so nothing outlives the program.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use super::control::{CONTROL_BYTES, Control};
use super::sys::{self, Forked};
use super::worker;

/// Parent → server on `main`: open a pool channel (its server end attached).
const CONNECT: u8 = 1;
/// Parent → server: fork a worker. `a`: token, `b`: initializer address or 0; two fds
/// attached (the worker's request read end and result write end).
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

/// The program's end of the server's `main` channel and the server's pid, once it runs.
static SERVER: Mutex<Option<(OwnedFd, i32)>> = Mutex::new(None);

/// Starts the fork server if it is not running yet.
pub(super) fn start() -> io::Result<()> {
    let mut server = SERVER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if server.is_some() {
        return Ok(());
    }
    let (ours, theirs) = sys::seqpacket_pair()?;
    // A server forked by the main thread can die with it; one forked by another thread must
    // not (PR_SET_PDEATHSIG fires when the forking *thread* ends), and relies on end of file
    // on `main` instead, which comes when the whole program is gone.
    let die_with = sys::on_main_thread().then(sys::getpid);
    // SAFETY: the child runs only `serve`, which makes system calls and allocates (glibc
    // resets its allocator locks in a forked child) but takes no lock another thread could
    // hold except SERVER, which this thread holds and the child releases first. It leaves
    // only through `exit_now`. In a program that already runs threads, the workers inherit
    // the locks those threads held at this instant: `init` documents that hazard.
    match unsafe { sys::fork() }? {
        Forked::Child => {
            drop(ours);
            // Workers forked from here start with no server of their own, so a pool made in a
            // worker starts a fresh one instead of writing to a channel it does not own.
            drop(server);
            serve(theirs, die_with)
        }
        Forked::Parent(pid) => {
            *server = Some((ours, pid));
            // SAFETY: `stop` is an `extern "C" fn()` that stays valid for the life of the
            // program, as atexit requires. A failed registration (no memory) only means the
            // server is reaped by init instead.
            unsafe { libc::atexit(stop) };
            Ok(())
        }
    }
}

/// Opens a new channel to the server for one pool, starting the server if needed.
pub(super) fn connect() -> io::Result<OwnedFd> {
    start()?;
    let server = SERVER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (main, _) = server
        .as_ref()
        .ok_or_else(|| io::Error::other("no fork server"))?;
    let (ours, theirs) = sys::seqpacket_pair()?;
    let hello = Control {
        tag: CONNECT,
        a: 0,
        b: 0,
    };
    sys::send_with_fds(main, &hello.encode(), &[theirs.as_raw_fd()])?;
    Ok(ours)
}

/// Runs at exit: closes `main` so that the server kills and reaps its workers and exits, then
/// reaps the server, so that a program leaves no zombie behind (init would reap it, but only
/// after the program is gone). Bounded: a server that has not gone after a second (another
/// process still holds `main`, like a `fork` child that outlives the program) is killed; its
/// workers then die with it (`PR_SET_PDEATHSIG`).
extern "C" fn stop() {
    // `try_lock`: a thread that held the lock when another thread called `exit` will never
    // release it, and exit must not hang on it.
    let taken = SERVER.try_lock().ok().and_then(|mut server| server.take());
    let Some((main, pid)) = taken else {
        return;
    };
    drop(main);
    let exited = sys::pidfd_open(pid).is_ok_and(|pidfd| {
        let mut fds = [sys::pollfd(pidfd.as_raw_fd(), libc::POLLIN)];
        sys::poll(&mut fds, 1000).is_ok_and(|ready| ready > 0)
    });
    if !exited {
        sys::kill(pid, libc::SIGKILL);
    }
    sys::reap(pid, true);
}

/// The server's state: its channels and the workers it has not reaped yet.
struct Server {
    main: OwnedFd,
    sigchld: OwnedFd,
    /// Pool channels, by an id of their own (positions shift as channels close).
    clients: Vec<(u64, OwnedFd)>,
    /// Unreaped workers and the channel that asked for each.
    children: Vec<(i32, u64)>,
    next_client: u64,
}

/// The server's main loop; never returns.
fn serve(main: OwnedFd, die_with: Option<i32>) -> ! {
    if let Some(parent) = die_with {
        sys::die_with_parent(parent);
    }
    // Ctrl-C goes to the whole process group; the program decides what it means, and the
    // server and workers die with the program anyway.
    sys::set_signal(libc::SIGINT, libc::SIG_IGN);
    sys::mask_signal(libc::SIGCHLD, true);
    let Ok(sigchld) = sys::sigchld_fd() else {
        sys::exit_now(1)
    };
    let mut server = Server {
        main,
        sigchld,
        clients: Vec::new(),
        children: Vec::new(),
        next_client: 0,
    };
    loop {
        let mut fds = vec![
            sys::pollfd(server.main.as_raw_fd(), libc::POLLIN),
            sys::pollfd(server.sigchld.as_raw_fd(), libc::POLLIN),
        ];
        fds.extend(
            server
                .clients
                .iter()
                .map(|(_, socket)| sys::pollfd(socket.as_raw_fd(), libc::POLLIN)),
        );
        if sys::poll(&mut fds, -1).is_err() {
            server.exit();
        }
        if fds[1].revents != 0 {
            server.reap();
        }
        if fds[0].revents != 0 {
            server.accept();
        }
        let ready: Vec<u64> = fds[2..]
            .iter()
            .zip(&server.clients)
            .filter(|(fd, _)| fd.revents != 0)
            .map(|(_, (id, _))| *id)
            .collect();
        for id in ready {
            server.serve_client(id);
        }
    }
}

impl Server {
    /// A message on `main`: a new pool channel, or end of file (the program is gone).
    fn accept(&mut self) {
        let mut buf = [0; CONTROL_BYTES];
        let mut fds = Vec::new();
        match sys::recv_with_fds(&self.main, &mut buf, &mut fds, false) {
            Ok(n) if n > 0 => {
                if let Some(socket) = fds.pop() {
                    self.clients.push((self.next_client, socket));
                    self.next_client += 1;
                }
            }
            _ => self.exit(),
        }
    }

    /// One message from a pool's channel.
    fn serve_client(&mut self, id: u64) {
        let Some(index) = self.clients.iter().position(|(client, _)| *client == id) else {
            return;
        };
        let mut buf = [0; CONTROL_BYTES];
        let mut fds = Vec::new();
        let received = sys::recv_with_fds(&self.clients[index].1, &mut buf, &mut fds, false);
        let message = match received {
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
                    self.spawn(id, index, a, b as usize, request, result);
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

    /// Forks one worker for channel `id` (at `index`) and tells the channel its pid.
    fn spawn(
        &mut self,
        id: u64,
        index: usize,
        token: u64,
        initializer: usize,
        request: OwnedFd,
        result: OwnedFd,
    ) {
        let server_pid = sys::getpid();
        // SAFETY: this process is single-threaded (the server never starts a thread), so the
        // child is a complete copy and may do anything; it ends through `worker::run`, which
        // never returns.
        let reply = match unsafe { sys::fork() } {
            Ok(Forked::Child) => {
                // Close the other pools' channels: a worker holding one would hide the
                // server's death from that pool. `main` and the signalfd stay open; they are
                // the server's ends, whose copies nobody waits on.
                self.clients.clear();
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
        let _ = sys::send_with_fds(&self.clients[index].1, &reply.encode(), &[]);
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
            if let Some((_, socket)) = self.clients.iter().find(|(client, _)| *client == owner) {
                let _ = sys::send_with_fds(socket, &report.encode(), &[]);
            }
        }
    }

    /// The program is gone: kill and reap every worker, then exit.
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
