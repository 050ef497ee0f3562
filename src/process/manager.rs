//! The manager thread: the one place in the parent that talks to worker processes.
//!
//! It multiplexes with `poll` a wake-up eventfd (submits, shutdown), the pool's fork-server
//! channel (spawn replies, exit reports, and writability while requests wait to go out), each
//! worker's result pipe, each worker's request pipe while it has bytes to write, and the
//! pidfds and result pipes of `fork` children. Every fd it writes to is non-blocking, and what
//! cannot be written yet waits (a worker's frames in its queue, server messages in an outbox),
//! so neither a child that dies with a large argument half-sent nor a busy fork server can
//! ever block it.
//!
//! Bookkeeping per worker is a FIFO of the tasks sent to it (at most the pipeline depth):
//! a worker answers in order, so the head is the task it runs, and after its death the head
//! is the task that killed it (or was killed for its time limit) while the others never
//! started and go back to the queue. A worker is forgotten only once the fork server has
//! reported its exit status, after whatever it wrote has been read; until then it holds one of
//! the pool's `max_workers` slots, retiring or not, so the pool never runs more processes
//! than that.
//!
//! Memory: a request frame is written straight from the task's own buffer (no copy into a
//! write buffer) and freed once its task has started, since only a task that never started
//! can be sent again; a large reply becomes the result's buffer without a copy; and a read
//! buffer that grew for a large frame is given back once that frame is consumed.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;

use super::control::{CONTROL_BYTES, Control};
use super::server::{EXITED, KILL, SPAWN, SPAWN_FAILED, SPAWNED};
use super::sys;
use super::worker::Settings;
use super::{OnWorkerDeath, SPIN};
use crate::remote::Slot;
use crate::remote::wire::{self, Failure, Reply};

/// A submitted task: its request frame, ready to write, and its slot.
pub(super) struct Task {
    pub(super) id: u64,
    pub(super) frame: Vec<u8>,
    pub(super) slot: Box<dyn Slot>,
}

/// A child made by `ProcessPool::fork`, watched until it ends.
pub(super) struct ForkJob {
    pub(super) pid: i32,
    pub(super) pidfd: OwnedFd,
    pub(super) result: OwnedFd,
    pub(super) slot: Box<dyn Slot>,
    pub(super) started: Instant,
    /// Killed for its time limit; its deadline no longer counts.
    pub(super) timed_out: bool,
}

/// What the pool handle and the manager share, under [`Shared::state`].
#[derive(Default)]
pub(super) struct State {
    /// Tasks not yet sent to a worker; still cancellable.
    pub(super) queue: VecDeque<Task>,
    /// New `fork` children for the manager to watch.
    pub(super) forks: Vec<ForkJob>,
    /// `fork` calls between their admission and handing their child over in `forks`; the
    /// manager stays until they have.
    pub(super) forking: usize,
    /// `shutdown` was called: finish what is queued, then let the workers go.
    pub(super) shutdown: bool,
    /// `terminate_workers` / `kill_workers` asked for this signal.
    pub(super) force: Option<libc::c_int>,
    /// Why the pool broke, once it has.
    pub(super) broken: Option<String>,
}

/// The state plus the eventfd that wakes the manager.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// An eventfd rather than a pipe: it lives as long as the pool handle, so a wake-up after
    /// the manager has gone (a second `shutdown`, a drop after `shutdown(wait = true)`) is a
    /// harmless write with no reader, never a write to a closed pipe and its SIGPIPE.
    wake: OwnedFd,
}

impl Shared {
    /// Locks the state, ignoring poisoning (no code panics while holding it).
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes the manager. A full counter means a wake-up is already pending, so the error is
    /// ignored: this never blocks a submitting thread.
    pub(super) fn wake(&self) {
        let _ = sys::write(&self.wake, &1_u64.to_ne_bytes());
    }
}

/// The pool's settings, as the manager needs them.
pub(super) struct Config {
    pub(super) workers: usize,
    pub(super) initializer: usize,
    pub(super) max_tasks_per_child: Option<usize>,
    pub(super) task_timeout: Option<Duration>,
    pub(super) on_worker_death: OnWorkerDeath,
    pub(super) pipeline_depth: usize,
    /// Threads of each worker's rayon pool.
    pub(super) worker_threads: usize,
    /// The largest frame body either side accepts.
    pub(super) max_frame_bytes: usize,
    /// Whether a worker's panics go through its panic hook.
    pub(super) print_panics: bool,
}

/// Why the manager killed a worker, which decides what its head task gets.
#[derive(Clone, PartialEq, Eq)]
enum Killed {
    /// The task with this id, its head then, ran past `task_timeout`.
    Timeout(u64),
    /// `terminate_workers`, `kill_workers`, or the pool broke.
    Stopped,
    /// It sent something that is not a reply to its head task; what, in words.
    Protocol(String),
}

struct InFlight {
    id: u64,
    /// Kept so that the task can go to another worker if this one dies before starting it;
    /// emptied once the task has started and is fully written, when that can no longer be.
    frame: Vec<u8>,
    slot: Box<dyn Slot>,
    /// When it became the head, i.e. started running.
    since: Instant,
}

struct Worker {
    token: u64,
    /// Known once the server answered the spawn request.
    pid: Option<i32>,
    /// `None` once closed: the worker reads end of file after what was sent and exits.
    request: Option<OwnedFd>,
    /// `None` after end of file.
    result: Option<OwnedFd>,
    /// How many tasks of `in_flight`, from the front, are written whole; the next one's
    /// first `sent` bytes are written.
    written: usize,
    sent: usize,
    /// Bytes read from `result` that do not yet make a whole frame.
    input: Vec<u8>,
    in_flight: VecDeque<InFlight>,
    dispatched: usize,
    /// Takes no more tasks; its request pipe closes once its tasks are written.
    retiring: bool,
    killed: Option<Killed>,
    /// A signal to send as soon as the pid is known.
    kill_pending: Option<libc::c_int>,
    init_failed: Option<String>,
}

/// Frees the head task's frame once it is written whole (`written > 0`): the head is
/// running, so it will never be sent again, and a large argument should not stay resident
/// while it runs. (A function of the two fields, not a method, so that the worker's request
/// fd can stay borrowed meanwhile.)
fn release_head_frame(in_flight: &mut VecDeque<InFlight>, written: usize) {
    if written > 0
        && let Some(head) = in_flight.front_mut()
    {
        head.frame = Vec::new();
    }
}

/// A `fork` child and what it has written so far.
struct Watched {
    job: ForkJob,
    input: Vec<u8>,
    /// Still reading its result pipe: false after end of file or once it sent too much.
    reading: bool,
    /// Why its reply was refused, if it was.
    refused: Option<String>,
}

/// A message for the fork server that could not be sent yet, with the fds it carries (kept
/// open until the message is sent).
struct Outgoing {
    message: [u8; CONTROL_BYTES],
    fds: Vec<OwnedFd>,
}

/// A read buffer above this capacity is given back once it is (almost) empty: a large frame
/// should not keep its memory for the rest of the worker's life.
const KEEP_BUFFER: usize = 1 << 20;

/// The manager thread's state.
pub(super) struct Manager {
    shared: Arc<Shared>,
    /// The pool's fork-server channel (non-blocking); `None` once the server is gone.
    server: Option<OwnedFd>,
    /// Messages for the server that it was not ready to take, in order.
    outbox: VecDeque<Outgoing>,
    config: Config,
    workers: Vec<Worker>,
    /// Tasks taken back from a dead worker before they started (already marked running).
    ready: VecDeque<Task>,
    forks: Vec<Watched>,
    next_token: u64,
    /// `shutdown` was called: no new work arrives; workers are replaced only while some is
    /// left, then they all retire.
    shutting_down: bool,
    /// Broken, or its workers were terminated: nothing runs any more, the pool winds down.
    halted: bool,
    /// Where reads land before they join a worker's input: allocated once, not per read.
    scratch: Vec<u8>,
}

/// Creates the shared state and the manager for a pool whose fork-server channel is `server`.
pub(super) fn new(server: OwnedFd, config: Config) -> io::Result<(Arc<Shared>, Manager)> {
    sys::set_nonblocking(&server)?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: sys::eventfd()?,
    });
    let manager = Manager {
        shared: Arc::clone(&shared),
        server: Some(server),
        outbox: VecDeque::new(),
        config,
        workers: Vec::new(),
        ready: VecDeque::new(),
        forks: Vec::new(),
        next_token: 0,
        shutting_down: false,
        halted: false,
        scratch: vec![0; 64 * 1024],
    };
    Ok((shared, manager))
}

impl Manager {
    /// The thread's body: runs until the pool is shut down or broken and every child is gone.
    ///
    /// A panic here would be a bug of this crate; it must still not leave anyone waiting, so
    /// it breaks the pool: the tasks the manager held fail as their promises drop, queued and
    /// later ones get [`Error::Broken`], and the workers die as the server channel closes.
    pub(super) fn run(self) {
        let shared = Arc::clone(&self.shared);
        let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve()))
        else {
            return;
        };
        let reason = format!(
            "the pool's manager thread panicked: {}",
            wire::panic_message(payload)
        );
        let queued = {
            let mut state = shared.lock();
            state.broken.get_or_insert(reason.clone());
            std::mem::take(&mut state.queue)
        };
        for task in queued {
            task.slot.finish(Err(Error::Broken {
                reason: reason.clone(),
            }));
        }
    }

    fn serve(mut self) {
        // A write to a dead worker's pipe must give EPIPE, not kill the program; blocking the
        // signal in this thread alone leaves the program's own SIGPIPE handling untouched.
        sys::mask_signal(libc::SIGPIPE, true);
        self.top_up();
        loop {
            self.intake();
            self.dispatch();
            self.flush();
            self.send_outbox();
            if self.done() {
                return;
            }
            self.wait();
        }
    }

    /// Takes new `fork` children and acts on `terminate_workers` / `kill_workers`.
    fn intake(&mut self) {
        let (forks, force, shutdown) = {
            let mut state = self.shared.lock();
            (
                std::mem::take(&mut state.forks),
                state.force.take(),
                state.shutdown,
            )
        };
        self.forks.extend(forks.into_iter().map(|job| Watched {
            job,
            input: Vec::new(),
            reading: true,
            refused: None,
        }));
        self.shutting_down |= shutdown;
        if let Some(signal) = force {
            self.halted = true;
            let waiting = std::mem::take(&mut self.ready);
            let error = self.halt_error();
            for task in waiting {
                task.slot.finish(Err(error.clone()));
            }
            for index in 0..self.workers.len() {
                self.stop_worker(index, signal);
            }
            for watched in &self.forks {
                sys::kill(watched.job.pid, signal);
            }
        }
    }

    /// Sends tasks to workers with room, least loaded first.
    fn dispatch(&mut self) {
        loop {
            let depth = self.config.pipeline_depth;
            let Some(index) = (0..self.workers.len())
                .filter(|&i| {
                    let worker = &self.workers[i];
                    !worker.retiring && worker.in_flight.len() < depth
                })
                .min_by_key(|&i| self.workers[i].in_flight.len())
            else {
                break;
            };
            let Some(task) = self.next_task() else {
                break;
            };
            let worker = &mut self.workers[index];
            worker.in_flight.push_back(InFlight {
                id: task.id,
                frame: task.frame,
                slot: task.slot,
                since: Instant::now(),
            });
            worker.dispatched += 1;
            if self
                .config
                .max_tasks_per_child
                .is_some_and(|max| worker.dispatched >= max)
            {
                // It keeps its slot until its exit is reported; its replacement starts then.
                worker.retiring = true;
            }
        }
        if self.shutting_down && !self.has_work() {
            for worker in &mut self.workers {
                worker.retiring = true;
            }
        }
    }

    /// True while tasks wait for a worker.
    fn has_work(&self) -> bool {
        !self.ready.is_empty() || !self.shared.lock().queue.is_empty()
    }

    /// The next task to run: a requeued one first, else the oldest submitted one that was not
    /// cancelled (marking it running, after which it can no longer be cancelled). A frame
    /// over `max_frame_bytes` fails its task here: the worker would refuse it.
    fn next_task(&mut self) -> Option<Task> {
        if let Some(task) = self.ready.pop_front() {
            return Some(task);
        }
        loop {
            let mut task = self.shared.lock().queue.pop_front()?;
            if !task.slot.start() {
                continue;
            }
            let body = task.frame.len().saturating_sub(wire::LEN_BYTES);
            if body > self.config.max_frame_bytes {
                task.slot.finish(Err(Error::Serialization {
                    message: format!(
                        "the argument is too large to send: a frame of {body} bytes, over the \
                         pool's max_frame_bytes ({})",
                        self.config.max_frame_bytes
                    ),
                }));
                continue;
            }
            return Some(task);
        }
    }

    /// Writes pending frames without blocking, straight from each task's buffer, and closes
    /// the request pipes of retiring workers once everything has been written.
    fn flush(&mut self) {
        for worker in &mut self.workers {
            let Some(request) = &worker.request else {
                continue;
            };
            while let Some(task) = worker.in_flight.get(worker.written) {
                let frame_len = task.frame.len();
                match sys::write(request, &task.frame[worker.sent..]) {
                    Ok(n) => {
                        worker.sent += n;
                        if worker.sent == frame_len {
                            worker.written += 1;
                            worker.sent = 0;
                            release_head_frame(&mut worker.in_flight, worker.written);
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // EPIPE: the worker is gone; its exit report will settle its tasks.
                        worker.request = None;
                        break;
                    }
                }
            }
            if worker.retiring && worker.written == worker.in_flight.len() {
                worker.request = None;
            }
        }
    }

    /// True when worker `worker` has bytes waiting for its request pipe.
    fn writing(worker: &Worker) -> bool {
        worker.request.is_some() && worker.written < worker.in_flight.len()
    }

    /// True when there is nothing left to do: shut down or halted, and every task and child
    /// is settled.
    fn done(&self) -> bool {
        (self.shutting_down || self.halted)
            && self.workers.is_empty()
            && self.forks.is_empty()
            && !self.has_work()
            && {
                let state = self.shared.lock();
                state.forks.is_empty() && state.forking == 0
            }
    }

    /// Blocks in `poll` until something happens or the nearest task deadline, then handles
    /// every ready fd.
    fn wait(&mut self) {
        let server_events = if self.outbox.is_empty() {
            libc::POLLIN
        } else {
            libc::POLLIN | libc::POLLOUT
        };
        let mut fds = vec![
            sys::pollfd(self.shared.wake.as_raw_fd(), libc::POLLIN),
            sys::pollfd(
                self.server.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                server_events,
            ),
        ];
        for worker in &self.workers {
            let result = worker.result.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            fds.push(sys::pollfd(result, libc::POLLIN));
            let writing = worker.request.as_ref().filter(|_| Self::writing(worker));
            fds.push(sys::pollfd(
                writing.map_or(-1, AsRawFd::as_raw_fd),
                libc::POLLOUT,
            ));
        }
        for watched in &self.forks {
            fds.push(sys::pollfd(watched.job.pidfd.as_raw_fd(), libc::POLLIN));
            let result = watched.job.result.as_raw_fd();
            fds.push(sys::pollfd(
                if watched.reading { result } else { -1 },
                libc::POLLIN,
            ));
        }
        if self.poll(&mut fds).is_err() {
            // poll fails only on a bad argument or lack of memory: retry after a pause
            // rather than spin or give up on the children.
            std::thread::sleep(Duration::from_millis(10));
            return;
        }
        // Read the readiness before handling anything: handling removes workers and so
        // would shift positions. Workers are then found again by token, forks by pid.
        let workers_ready: Vec<u64> = self
            .workers
            .iter()
            .zip(fds[2..].chunks(2))
            .filter(|(_, pair)| pair[0].revents != 0)
            .map(|(worker, _)| worker.token)
            .collect();
        let fork_fds = &fds[2 + 2 * self.workers.len()..];
        let forks_ready: Vec<(i32, bool, bool)> = self
            .forks
            .iter()
            .zip(fork_fds.chunks(2))
            .filter(|(_, pair)| pair[0].revents != 0 || pair[1].revents != 0)
            .map(|(watched, pair)| (watched.job.pid, pair[0].revents != 0, pair[1].revents != 0))
            .collect();
        if fds[0].revents != 0 {
            let mut drain = [0; 8];
            let _ = sys::read(&self.shared.wake, &mut drain);
        }
        for token in workers_ready {
            if let Some(index) = self.position(token) {
                self.read_results(index);
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            self.read_server();
        } else if fds[1].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            self.server_lost();
        }
        for (pid, ended, readable) in forks_ready {
            if readable {
                self.read_fork(pid);
            }
            if ended {
                self.finish_fork(pid);
            }
        }
        self.enforce_timeouts();
    }

    /// `poll` on `fds`, spinning first while workers hold tasks: a result is then likely
    /// within microseconds, and sleeping would add a cross-core wake-up (about 40 µs on the
    /// machine this was measured on) to every round trip. The spin yields the CPU at each
    /// turn (`sched_yield`), so on a busy machine the workers run instead of it; an idle pool
    /// never spins.
    fn poll(&self, fds: &mut [libc::pollfd]) -> io::Result<usize> {
        let due: usize = self.workers.iter().map(|w| w.in_flight.len()).sum();
        if due >= 2 {
            let until = Instant::now() + SPIN;
            loop {
                let ready = sys::poll(fds, 0)?;
                if ready > 0 || Instant::now() >= until {
                    if ready > 0 {
                        return Ok(ready);
                    }
                    break;
                }
                std::thread::yield_now();
            }
        }
        sys::poll(fds, self.poll_timeout())
    }

    /// Milliseconds until the nearest task deadline, or -1 for none.
    fn poll_timeout(&self) -> libc::c_int {
        let Some(limit) = self.config.task_timeout else {
            return -1;
        };
        let heads = self.workers.iter().filter(|w| w.killed.is_none());
        let starts = heads
            .filter_map(|worker| worker.in_flight.front().map(|head| head.since))
            .chain(
                self.forks
                    .iter()
                    .filter(|watched| !watched.job.timed_out)
                    .map(|watched| watched.job.started),
            );
        match starts.min() {
            None => -1,
            Some(start) => {
                let left = (start + limit).saturating_duration_since(Instant::now());
                // Round up so that the deadline has passed when poll returns.
                left.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int
            }
        }
    }

    /// Kills the workers and `fork` children whose running task is past its time limit.
    fn enforce_timeouts(&mut self) {
        let Some(limit) = self.config.task_timeout else {
            return;
        };
        let now = Instant::now();
        for index in 0..self.workers.len() {
            let worker = &self.workers[index];
            let late = worker
                .in_flight
                .front()
                .filter(|head| now.duration_since(head.since) >= limit);
            if let Some(head) = late
                && worker.killed.is_none()
            {
                self.kill_worker(index, Killed::Timeout(head.id), libc::SIGKILL);
            }
        }
        for watched in &mut self.forks {
            let job = &mut watched.job;
            if !job.timed_out && now.duration_since(job.started) >= limit {
                job.timed_out = true;
                sys::kill(job.pid, libc::SIGKILL);
            }
        }
    }

    fn position(&self, token: u64) -> Option<usize> {
        self.workers.iter().position(|worker| worker.token == token)
    }

    /// Handles every message waiting on the fork-server channel.
    fn read_server(&mut self) {
        loop {
            let Some(server) = &self.server else {
                return;
            };
            let mut buf = [0; CONTROL_BYTES];
            let mut fds = Vec::new();
            match sys::recv_with_fds(server, &mut buf, &mut fds, true) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Ok(n) if n > 0 => {
                    if let Some(message) = Control::decode(&buf[..n]) {
                        self.on_server_message(message);
                    }
                }
                _ => return self.server_lost(),
            }
        }
    }

    fn on_server_message(&mut self, message: Control) {
        match message.tag {
            SPAWNED => {
                let Some(index) = self.position(message.a) else {
                    return;
                };
                let pid = message.b as i32;
                let worker = &mut self.workers[index];
                worker.pid = Some(pid);
                if let Some(signal) = worker.kill_pending.take() {
                    self.send_kill(pid, signal);
                }
            }
            SPAWN_FAILED => {
                let Some(index) = self.position(message.a) else {
                    return;
                };
                let error = io::Error::from_raw_os_error(message.b as i32);
                let worker = self.workers.remove(index);
                self.requeue(worker.in_flight);
                self.break_pool(format!("could not start a worker process: {error}"));
            }
            EXITED => {
                let pid = message.a as i32;
                if let Some(index) = self.workers.iter().position(|w| w.pid == Some(pid)) {
                    self.worker_exited(index, message.b as i32);
                }
            }
            _ => {}
        }
    }

    /// Queues a message for the fork server (with `fds` attached); the main loop sends it
    /// ([`send_outbox`](Self::send_outbox)), so that a dead server is noticed there and not
    /// in the middle of handling a worker.
    fn send_to_server(&mut self, message: Control, fds: Vec<OwnedFd>) {
        if self.server.is_some() {
            self.outbox.push_back(Outgoing {
                message: message.encode(),
                fds,
            });
        }
    }

    /// Sends queued server messages, in order, until the channel is full. Never blocks: the
    /// server may be busy sending to us, and a full channel then waits for `POLLOUT`.
    fn send_outbox(&mut self) {
        while let Some(next) = self.outbox.front() {
            let Some(server) = &self.server else {
                self.outbox.clear();
                return;
            };
            let fds: Vec<_> = next.fds.iter().map(AsRawFd::as_raw_fd).collect();
            match sys::send_with_fds(server, &next.message, &fds) {
                Ok(()) => {
                    // The server has its own copies now.
                    self.outbox.pop_front();
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.server_lost(),
            }
        }
    }

    /// The fork server is gone (killed from outside): its workers die with it
    /// (`PR_SET_PDEATHSIG`) and no exit report will come, so the pool breaks and forgets them
    /// now. The channel leaves the poll set: a hung-up fd would be reported on every turn.
    fn server_lost(&mut self) {
        if self.server.take().is_none() {
            return;
        }
        self.outbox.clear();
        self.break_pool(
            "the fork server died (killed from outside?): no worker can be started or reaped"
                .into(),
        );
        self.workers.clear();
    }

    /// Reads what worker `index` wrote and completes the tasks it answered.
    fn read_results(&mut self, index: usize) {
        let max = self.config.max_frame_bytes;
        let worker = &mut self.workers[index];
        let Some(result) = &worker.result else {
            return;
        };
        if !drain_into(result, &mut self.scratch, &mut worker.input) {
            worker.result = None;
        }
        let mut at = 0;
        while let Some(len) = wire::frame_len(&worker.input[at..]) {
            if len > max {
                // Its own replies are bounded by the same limit: this is not one.
                let why = format!(
                    "it sent a corrupt reply (a frame of {len} bytes, over the pool's \
                     max_frame_bytes of {max})"
                );
                return self.refuse_worker(index, why);
            }
            let end = at + wire::LEN_BYTES + len;
            if worker.input.len() < end {
                break;
            }
            let frame = take_frame(&mut worker.input, &mut at, end);
            let reply = wire::parse_reply(frame);
            let expected = worker.written > 0
                && matches!(&reply, Some((id, _)) if worker.in_flight.front().is_some_and(|h| h.id == *id));
            match reply {
                Some((_, Reply::InitFailed(message))) => worker.init_failed = Some(message),
                Some((_, reply)) if expected => {
                    let Some(task) = worker.in_flight.pop_front() else {
                        break;
                    };
                    worker.written -= 1;
                    release_head_frame(&mut worker.in_flight, worker.written);
                    if let Some(next) = worker.in_flight.front_mut() {
                        next.since = Instant::now();
                    }
                    task.slot.finish(match reply {
                        Reply::Value(bytes) => Ok(bytes),
                        Reply::Failed(Failure::Panicked(message)) => {
                            Err(Error::Panicked { message })
                        }
                        Reply::Failed(Failure::Serialization(message)) => {
                            Err(Error::Serialization { message })
                        }
                        Reply::InitFailed(_) => unreachable!("matched above"),
                    });
                }
                _ => {
                    // Not the answer to the task it runs: its channel cannot be trusted.
                    let why = "it sent a reply that answers none of its tasks".into();
                    return self.refuse_worker(index, why);
                }
            }
        }
        worker.input.drain(..at);
        release_if_large(&mut worker.input);
    }

    /// Worker `index` sent garbage: stops reading it (what follows could pass for a reply)
    /// and kills it; it then ends as a dead worker, its head task failing with `why`.
    fn refuse_worker(&mut self, index: usize, why: String) {
        let worker = &mut self.workers[index];
        worker.input = Vec::new();
        worker.result = None;
        self.kill_worker(index, Killed::Protocol(why), libc::SIGKILL);
    }

    /// Worker `index` has ended with raw wait status `status`: settle its tasks, then replace
    /// it or break the pool.
    fn worker_exited(&mut self, index: usize, status: i32) {
        // Whatever it wrote before dying is in the pipe already.
        self.read_results(index);
        let worker = self.workers.remove(index);
        let pid = worker.pid.unwrap_or(0);
        let status_text = sys::describe_status(status);
        let clean_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        let mut tasks = worker.in_flight;
        if let Some(message) = worker.init_failed {
            self.requeue(tasks);
            self.break_pool(format!(
                "the initializer panicked in worker {pid}: {message}"
            ));
            return;
        }
        let died = Error::WorkerDied {
            pid,
            status: match &worker.killed {
                Some(Killed::Protocol(why)) => format!("killed because {why}: {status_text}"),
                _ => status_text.clone(),
            },
        };
        let head = tasks.pop_front();
        if worker.killed == Some(Killed::Stopped) {
            for task in tasks {
                task.slot.finish(Err(died.clone()));
            }
        } else {
            // Never started: they run on another worker, or get `Broken` with the rest.
            self.requeue(tasks);
            let unexpected = worker.killed.is_none() && !(worker.retiring && clean_exit);
            if unexpected && self.config.on_worker_death == OnWorkerDeath::BreakPool {
                // Before the head hears of it, so that whoever sees its `WorkerDied` already
                // finds the pool broken.
                self.break_pool(format!("worker process {pid} died: {status_text}"));
            } else {
                self.top_up();
            }
        }
        if let Some(head) = head {
            // If the late task answered just before the kill landed, the head is the next
            // one, which only died of the kill.
            let error = match worker.killed {
                Some(Killed::Timeout(id)) if id == head.id => Error::TaskTimeout,
                _ => died,
            };
            head.slot.finish(Err(error));
        }
    }

    /// Puts tasks that a worker held but never started back at the front of the line; on a
    /// halted pool, where nothing will run them, fails them instead. (Only a task that never
    /// started comes back here, so its frame is still whole.)
    fn requeue(&mut self, tasks: VecDeque<InFlight>) {
        if self.halted {
            let error = self.halt_error();
            for task in tasks {
                task.slot.finish(Err(error.clone()));
            }
            return;
        }
        for task in tasks.into_iter().rev() {
            self.ready.push_front(Task {
                id: task.id,
                frame: task.frame,
                slot: task.slot,
            });
        }
    }

    /// What a task that can no longer run gets on a halted pool.
    fn halt_error(&self) -> Error {
        let reason = self.shared.lock().broken.clone();
        Error::Broken {
            reason: reason.unwrap_or_else(|| "the pool's workers were terminated".into()),
        }
    }

    /// Starts workers until the pool has its number of them, counting those that retire
    /// until their exit is reported (so that a pool never runs more than `max_workers`
    /// processes); after `shutdown`, only while tasks are left for them.
    fn top_up(&mut self) {
        if self.halted || (self.shutting_down && !self.has_work()) {
            return;
        }
        while !self.halted && self.workers.len() < self.config.workers {
            if let Err(error) = self.spawn() {
                self.break_pool(format!("could not start a worker process: {error}"));
                return;
            }
        }
    }

    /// Asks the fork server for one more worker, handing it the worker's pipe ends, with the
    /// worker's settings already waiting in its request pipe.
    fn spawn(&mut self) -> io::Result<()> {
        let (request_read, request_write) = sys::pipe()?;
        let (result_read, result_write) = sys::pipe()?;
        sys::set_nonblocking(&request_write)?;
        sys::set_nonblocking(&result_read)?;
        let settings = Settings {
            threads: self.config.worker_threads,
            max_frame_bytes: self.config.max_frame_bytes,
            print_panics: self.config.print_panics,
        };
        // A new pipe is empty and the settings are far below PIPE_BUF: written whole at once.
        sys::write(&request_write, &settings.encode())?;
        let token = self.next_token;
        self.next_token += 1;
        let message = Control {
            tag: SPAWN,
            a: token,
            b: self.config.initializer as u64,
        };
        self.send_to_server(message, vec![request_read, result_write]);
        self.workers.push(Worker {
            token,
            pid: None,
            request: Some(request_write),
            result: Some(result_read),
            written: 0,
            sent: 0,
            input: Vec::new(),
            in_flight: VecDeque::new(),
            dispatched: 0,
            retiring: false,
            killed: None,
            kill_pending: None,
            init_failed: None,
        });
        Ok(())
    }

    /// Signals worker `index` and remembers why.
    fn kill_worker(&mut self, index: usize, why: Killed, signal: libc::c_int) {
        let worker = &mut self.workers[index];
        worker.killed.get_or_insert(why);
        worker.retiring = true;
        match worker.pid {
            Some(pid) => self.send_kill(pid, signal),
            None => worker.kill_pending = Some(signal),
        }
    }

    /// Stops worker `index` for good: no more bytes to it, and `signal`.
    fn stop_worker(&mut self, index: usize, signal: libc::c_int) {
        self.workers[index].request = None;
        self.kill_worker(index, Killed::Stopped, signal);
    }

    fn send_kill(&mut self, pid: i32, signal: libc::c_int) {
        let message = Control {
            tag: KILL,
            a: pid as u64,
            b: signal as u64,
        };
        // If the server is gone, so is the worker.
        self.send_to_server(message, Vec::new());
    }

    /// Breaks the pool, CPython's way: every task not finished gets [`Error::Broken`], every
    /// worker is killed, later submits fail at once.
    fn break_pool(&mut self, reason: String) {
        self.halted = true;
        let queued = {
            let mut state = self.shared.lock();
            state.broken.get_or_insert_with(|| reason.clone());
            std::mem::take(&mut state.queue)
        };
        let broken = Error::Broken { reason };
        let requeued = std::mem::take(&mut self.ready);
        for task in queued.into_iter().chain(requeued) {
            task.slot.finish(Err(broken.clone()));
        }
        for index in 0..self.workers.len() {
            for task in std::mem::take(&mut self.workers[index].in_flight) {
                task.slot.finish(Err(broken.clone()));
            }
            self.stop_worker(index, libc::SIGKILL);
        }
    }

    /// Reads what `fork` child `pid` has written so far, while it runs: a result larger than
    /// the pipe's buffer only ends once it is read. A frame over `max_frame_bytes` is refused
    /// and the child killed.
    fn read_fork(&mut self, pid: i32) {
        let max = self.config.max_frame_bytes;
        let Some(watched) = self.forks.iter_mut().find(|w| w.job.pid == pid) else {
            return;
        };
        if !watched.reading {
            return;
        }
        if !drain_into(&watched.job.result, &mut self.scratch, &mut watched.input) {
            watched.reading = false;
        }
        if let Some(len) = wire::frame_len(&watched.input)
            && len > max
        {
            watched.refused = Some(format!(
                "the result is too large to send: a frame of {len} bytes, over the pool's \
                 max_frame_bytes ({max})"
            ));
            watched.reading = false;
            watched.input = Vec::new();
            sys::kill(pid, libc::SIGKILL);
        }
    }

    /// A `fork` child is done (its pidfd is readable): read the rest of its reply, reap it,
    /// settle it.
    fn finish_fork(&mut self, pid: i32) {
        self.read_fork(pid);
        let Some(at) = self.forks.iter().position(|w| w.job.pid == pid) else {
            return;
        };
        let Watched {
            job,
            input,
            refused,
            ..
        } = self.forks.swap_remove(at);
        let status = sys::reap(pid, true).unwrap_or(0);
        let reply = wire::frame_len(&input)
            .filter(|&len| input.len() == wire::LEN_BYTES + len)
            .and_then(|_| wire::parse_reply(input));
        job.slot.finish(match reply {
            Some((_, Reply::Value(bytes))) => Ok(bytes),
            Some((_, Reply::Failed(Failure::Panicked(message)))) => {
                Err(Error::Panicked { message })
            }
            Some((_, Reply::Failed(Failure::Serialization(message)))) => {
                Err(Error::Serialization { message })
            }
            _ if job.timed_out => Err(Error::TaskTimeout),
            _ => match refused {
                Some(message) => Err(Error::Serialization { message }),
                None => Err(Error::WorkerDied {
                    pid,
                    status: sys::describe_status(status),
                }),
            },
        });
    }
}

/// Takes the whole frame `input[at..end]` out of `input`, advancing `at` past it. A large
/// frame is moved out rather than copied: what follows it (at most one read's worth) is what
/// gets copied instead.
fn take_frame(input: &mut Vec<u8>, at: &mut usize, end: usize) -> Vec<u8> {
    if end - *at < KEEP_BUFFER {
        let frame = input[*at..end].to_vec();
        *at = end;
        return frame;
    }
    input.drain(..*at);
    let rest = input.split_off(end - *at);
    *at = 0;
    std::mem::replace(input, rest)
}

/// Gives back the memory of a read buffer that grew for a large frame, once it is mostly
/// empty.
fn release_if_large(input: &mut Vec<u8>) {
    if input.capacity() > KEEP_BUFFER && input.len() < KEEP_BUFFER / 4 {
        input.shrink_to(KEEP_BUFFER / 4);
    }
}

/// Appends what `fd` (non-blocking) holds now to `input`, reading through `scratch`. Returns
/// false at end of file or on an error, after which the fd has nothing more to give.
fn drain_into(fd: &OwnedFd, scratch: &mut [u8], input: &mut Vec<u8>) -> bool {
    loop {
        match sys::read(fd, scratch) {
            Ok(0) => return false,
            Ok(n) => input.extend_from_slice(&scratch[..n]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}
