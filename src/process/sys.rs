//! Thin wrappers over the system calls the process pool needs (pipes, `poll`, fd passing,
//! `fork`, signals), so that the other modules stay free of `unsafe` and of errno handling.
//!
//! Every wrapper retries on `EINTR` where that is the right thing, and returns `io::Result`.
//! File descriptors are owned through [`OwnedFd`], so a forgotten close is impossible in the
//! parent; the children leave with `_exit` and never run destructors.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Turns a `-1` return into the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a byte count of `-1` into the thread's `errno`.
fn check_size(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Repeats `call` while it fails with `EINTR`.
fn retry<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A pipe, `(read end, write end)`, both close-on-exec so that programs a task `exec`s do not
/// keep a worker's channel open.
pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets: message boundaries are kept and fds can
/// travel with a message, which is what the fork server's channels need.
pub(super) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets close-on-exec on `fd`.
pub(super) fn set_cloexec(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Closes every fd of this process except stdin, stdout, stderr and `keep` (at most five):
/// what a freshly forked or exec'd child of this crate does first, so that it holds no copy
/// of another pool's pipes or of the program's files. Allocates nothing, so it is fine in a
/// fork of a program that runs threads.
///
/// The fds closed here may still be owned by an `OwnedFd` of the image this process is a copy
/// of: the caller must never drop those (they would close a number that may be reused).
pub(super) fn close_fds_except(keep: &[RawFd]) {
    let mut kept = [RawFd::MAX; 8];
    assert!(keep.len() <= kept.len() - 3, "too many fds to keep");
    kept[..3].copy_from_slice(&[0, 1, 2]);
    kept[3..3 + keep.len()].copy_from_slice(keep);
    kept.sort_unstable();
    let mut first: libc::c_uint = 0;
    for fd in kept {
        let Ok(fd) = libc::c_uint::try_from(fd) else {
            continue;
        };
        if fd > first {
            close_range(first, fd - 1);
        }
        first = first.max(fd.saturating_add(1));
    }
    close_range(first, libc::c_uint::MAX);
}

/// Closes the fds from `first` to `last`, both included.
fn close_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: close_range takes integers only; closing fds has no memory-safety effect here,
    // since the caller of `close_fds_except` never uses the closed ones again.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if ret == -1 {
        // No close_range (Linux before 5.9): close them one by one, up to the fd limit.
        // SAFETY: sysconf has no preconditions.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
        let end = libc::c_uint::try_from(max).unwrap_or(1 << 20).min(last);
        for fd in first..=end {
            // SAFETY: as above; EBADF for fds that are not open is ignored.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}

/// `fcntl` command that sets the signal an `O_ASYNC` file sends (`<asm-generic/fcntl.h>`; the
/// libc crate does not export it).
const F_SETSIG: libc::c_int = 10;

/// Reopens the read end `read` of a pipe as an open file of this process alone, and asks the
/// kernel to SIGKILL this process when the pipe's last write end closes (`O_ASYNC` with
/// `F_SETSIG`: the "readable" signal a pipe sends its readers when its writers are gone). The
/// returned fd must stay open for that to hold.
pub(super) fn die_when_writers_close(read: RawFd) -> io::Result<OwnedFd> {
    // The file must be this process's own: an inherited fd shares its owner (F_SETOWN) with
    // every other process that inherited it, and only one of them would be signalled.
    let path = std::ffi::CString::new(format!("/proc/self/fd/{read}"))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = check(unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: open returned a new fd that nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl on that fd with integer arguments only.
    unsafe {
        check(libc::fcntl(fd.as_raw_fd(), libc::F_SETOWN, libc::getpid()))?;
        check(libc::fcntl(fd.as_raw_fd(), F_SETSIG, libc::SIGKILL))?;
        check(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            libc::O_ASYNC | libc::O_NONBLOCK,
        ))?;
    }
    Ok(fd)
}

/// Makes reads and writes on `fd` return `WouldBlock` instead of blocking.
pub(super) fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// `read(2)`: 0 means end of file.
pub(super) fn read(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes.
    retry(|| check_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }))
}

/// `write(2)`: may write less than `buf.len()` on a non-blocking fd.
pub(super) fn write(fd: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes.
    retry(|| check_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) }))
}

/// Writes all of `buf` to a blocking fd.
pub(super) fn write_all(fd: &impl AsRawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

/// `poll(2)` with a timeout in milliseconds (`-1`: none). An `EINTR` counts as "nothing
/// ready": every caller loops anyway.
pub(super) fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid slice of pollfd structs for the kernel to update.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match check(n) {
        Ok(n) => Ok(n.unsigned_abs() as usize),
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(error) => Err(error),
    }
}

/// A `pollfd` asking for `events` on `fd`.
pub(super) fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// The most fds one message carries (a spawn request carries two).
const MAX_FDS: usize = 2;

/// Sends one message on a `SOCK_SEQPACKET` socket, with `fds` attached (`SCM_RIGHTS`).
pub(super) fn send_with_fds(socket: &OwnedFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS, "at most {MAX_FDS} fds per message");
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut control = [0_u64; 8]; // aligned room for one cmsghdr with MAX_FDS ints
    // SAFETY: an all-zero msghdr is a valid empty message; fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = std::mem::size_of_val(fds) as libc::c_uint;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(payload) } as _;
        // SAFETY: msg_control points at `control`, which is larger than CMSG_SPACE(payload)
        // and 8-aligned, so the first header and its data fit; we write exactly that much.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(header).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    // SAFETY: `msg` points at live buffers (`iov`, `control`) for the whole call.
    retry(|| check_size(unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) }))
        .map(drop)
}

/// Receives one message from a `SOCK_SEQPACKET` socket into `buf`, appending the fds that came
/// with it to `fds` (close-on-exec). Returns the message length; 0 is end of file. With
/// `nonblocking`, an empty socket gives `WouldBlock` instead of waiting.
pub(super) fn recv_with_fds(
    socket: &OwnedFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    let flags = libc::MSG_CMSG_CLOEXEC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0_u64; 8];
    // SAFETY: an all-zero msghdr is a valid empty message; fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at live, writable buffers for the whole call.
    let n = retry(|| check_size(unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, flags) }))?;
    // SAFETY: the kernel filled `control` and set msg_controllen; the CMSG macros walk only
    // within it, and each SCM_RIGHTS int is an fd the kernel just installed for us alone.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    Ok(n)
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub(super) fn kill(pid: i32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions. Its result is ignored on purpose:
    // the only failure that can happen here is ESRCH, a process that already ended.
    unsafe { libc::kill(pid, signal) };
}

/// The outcome of [`fork`].
pub(super) enum Forked {
    /// In the parent, with the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// `fork(2)`.
///
/// # Safety
///
/// If the calling process runs other threads, the child has only the calling thread and every
/// lock another thread held stays locked forever in it: the caller must make sure that what
/// the child does cannot wait on such a lock (glibc resets its own malloc and stdio locks, so
/// allocating is fine), and that the child ends with [`exit_now`], never returning into code
/// that expects the parent's threads.
pub(super) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the contract above.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Ends this process at once with `code`, without running destructors or `atexit` handlers,
/// which belong to the parent's image and must not run twice. Flushes Rust's stdout first so
/// that what a task printed is not lost.
pub(super) fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Makes the kernel SIGKILL this process when the thread that forked it ends, and closes the
/// race where that happened before this call (then the parent is already someone else).
pub(super) fn die_with_parent(parent: i32) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a plain signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        exit_now(0);
    }
}

/// This process's id.
pub(super) fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Sets the disposition of `signal` to `SIG_DFL` or `SIG_IGN`.
pub(super) fn set_signal(signal: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: SIG_DFL and SIG_IGN are not function pointers, so no handler code is involved.
    unsafe { libc::signal(signal, handler) };
}

/// Blocks (`block = true`) or unblocks `signal` for the calling thread.
pub(super) fn mask_signal(signal: libc::c_int, block: bool) {
    // SAFETY: the sigset is initialised by sigemptyset before use; both calls only read and
    // write that local set and the thread's own mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// A `signalfd` that becomes readable when SIGCHLD arrives. SIGCHLD must be blocked.
pub(super) fn sigchld_fd() -> io::Result<OwnedFd> {
    // SAFETY: the sigset is initialised before signalfd reads it.
    let fd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    // SAFETY: signalfd returned a new fd (check rejects -1) that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(check(fd)?) })
}

/// Reaps one ended child without blocking: `Some((pid, raw status))`, or `None` when no child
/// has ended (or there are no children).
pub(super) fn reap_any() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for the kernel to fill.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Reaps `pid`, waiting for it if `block`: `Some(raw status)` once it has ended.
pub(super) fn reap(pid: i32, block: bool) -> Option<i32> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: `status` is a valid int for the kernel to fill.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return (ret == pid).then_some(status);
    }
}

/// A pidfd for `pid`: readable once that process has ended.
pub(super) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: the pidfd_open system call takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = check(fd as libc::c_int)?;
    // SAFETY: the fd is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How a process ended, in words, from its raw `waitpid` status.
pub(super) fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a pointer to a static or thread-local string, valid until
        // the next call on this thread; it is copied out at once.
        let name = unsafe {
            let text = libc::strsignal(signal);
            if text.is_null() {
                String::from("unknown signal")
            } else {
                std::ffi::CStr::from_ptr(text)
                    .to_string_lossy()
                    .into_owned()
            }
        };
        format!("killed by signal {signal} ({name})")
    } else {
        format!("ended with raw wait status {status}")
    }
}

/// A non-blocking, close-on-exec `eventfd`: a counter that `write` adds to and `read` takes
/// and resets; readable while non-zero. A write never raises SIGPIPE, reader or not.
pub(super) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes two integers and returns a new fd or -1.
    let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: the fd is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
