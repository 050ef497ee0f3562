//! What travels between a pool and its worker processes: length-prefixed frames, postcard
//! for the values, and the trampoline that turns bytes into a call of a plain function.
//!
//! A request frame is `[u32 length][u64 task id][u64 trampoline address][u64 function address]
//! [postcard argument]`; a reply frame is `[u32 length][u64 task id][u8 kind][body]`, where the
//! body is the postcard result or a UTF-8 message. Lengths and integers are little-endian.
//!
//! The frame carries two numbers that name the trampoline and the function: their offsets
//! from an anchor in the executable ([`image`](super::image)), since the processes that run
//! them (the fork server's workers, MPI ranks) load the executable wherever address-space
//! randomisation puts it; the receiving side turns them back into addresses. The
//! trampoline is monomorphised for the concrete argument and result types, so
//! the worker needs no type information of its own; keeping it generic over `fn(A) -> R` lets a
//! chunk of items travel as one task whose argument is the chunk.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::Error;
use crate::executor::Payload;
use crate::map::Chunk;

use super::panics;

/// Bytes of a frame's length prefix.
pub(crate) const LEN_BYTES: usize = 4;
/// Bytes of a request's header after the length: task id, trampoline, function.
const REQUEST_HEADER: usize = 24;
/// Bytes of a reply's header after the length: task id and kind.
pub(crate) const REPLY_HEADER: usize = 9;

/// The monomorphised entry point a worker calls: function address and argument bytes in,
/// result bytes or a failure out.
pub(crate) type Trampoline = fn(usize, &[u8]) -> Result<Vec<u8>, Failure>;

/// Why a task produced no result bytes in the worker.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The function panicked: the panic message (and the worker's backtrace, if captured).
    Panicked(String),
    /// The argument did not deserialize or the result did not serialize.
    Serialization(String),
}

/// What a reply frame says; the kinds are the byte after the task id.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The postcard bytes of the result.
    Value(Vec<u8>),
    /// The task failed in the worker; the worker goes on.
    Failed(Failure),
    /// The initializer panicked with this message; the worker exits after sending it.
    InitFailed(String),
}

const KIND_VALUE: u8 = 0;
const KIND_PANICKED: u8 = 1;
const KIND_SERIALIZATION: u8 = 2;
const KIND_INIT_FAILED: u8 = 3;

/// Calls the `fn(A) -> R` at `func` on the argument in `arg`, catching panics at each step
/// (a user's `Deserialize` or `Serialize` can panic too).
pub(crate) fn trampoline<A: Payload, R: Payload>(
    func: usize,
    arg: &[u8],
) -> Result<Vec<u8>, Failure> {
    let arg: A = decode_in_worker(arg)?;
    // SAFETY: `func` was made by `remote::submit` from a value of exactly this type
    // `fn(A) -> R` (this trampoline is instantiated with the same `A` and `R` there), and the
    // receiving side turned its offset in the executable into an address of this process, in
    // the same executable (the fork server's workers) or one checked byte-identical (MPI
    // ranks), so it names the same function here.
    let func = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    run_and_encode(|| func(arg))
}

/// How a chunk's results travel back: each item's value or panic message, and the time the
/// chunk took in nanoseconds.
pub(crate) type ChunkWire<R> = (Vec<Result<R, String>>, u64);

/// [`trampoline`] for a chunk: calls the `fn(A) -> R` at `func` on every item of the
/// `Vec<A>` in `arg`, each item's panic caught on its own ([`Chunk::run`]).
pub(crate) fn chunk_trampoline<A: Payload, R: Payload>(
    func: usize,
    arg: &[u8],
) -> Result<Vec<u8>, Failure> {
    let items: Vec<A> = decode_in_worker(arg)?;
    // SAFETY: as in `trampoline`: `func` was made by `remote::submit_chunk` from a value of
    // exactly the type `fn(A) -> R`, and names the same function in this process.
    let func = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    run_and_encode(|| {
        let chunk = Chunk::run(func, items);
        let results = chunk
            .results
            .into_iter()
            .map(|result| result.map_err(message_of))
            .collect();
        let busy = u64::try_from(chunk.busy.as_nanos()).unwrap_or(u64::MAX);
        (results, busy) as ChunkWire<R>
    })
}

/// The parent's side of [`chunk_trampoline`]: the chunk its reply describes.
pub(crate) fn chunk_from_wire<R>((results, busy): ChunkWire<R>) -> Chunk<R> {
    Chunk {
        results: results
            .into_iter()
            .map(|result| result.map_err(|message| Error::Panicked { message }))
            .collect(),
        busy: std::time::Duration::from_nanos(busy),
    }
}

/// The message an item's error carries across: the panic message itself.
fn message_of(error: Error) -> String {
    match error {
        Error::Panicked { message } => panics::locate(message),
        other => other.to_string(),
    }
}

/// Deserializes a task's argument in the worker, catching a panicking `Deserialize`.
fn decode_in_worker<A: Payload>(arg: &[u8]) -> Result<A, Failure> {
    match catch_unwind(|| postcard::from_bytes(arg)) {
        Ok(Ok(arg)) => Ok(arg),
        Ok(Err(error)) => Err(Failure::Serialization(format!(
            "the worker could not deserialize the argument: {error}"
        ))),
        Err(payload) => Err(Failure::Panicked(panic_message(payload))),
    }
}

/// Runs `f` and serializes what it returns, turning a panic (in `f` or in the result's
/// `Serialize`) or a serializer error into a [`Failure`]: the part of a task that happens in
/// the child, for pooled tasks and `fork` alike.
pub(crate) fn run_and_encode<R: Payload>(f: impl FnOnce() -> R) -> Result<Vec<u8>, Failure> {
    let result = catch_unwind(AssertUnwindSafe(f))
        .map_err(|payload| Failure::Panicked(panic_message(payload)))?;
    match catch_unwind(AssertUnwindSafe(|| postcard::to_allocvec(&result))) {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(Failure::Serialization(format!(
            "the worker could not serialize the result: {error}"
        ))),
        Err(payload) => Err(Failure::Panicked(panic_message(payload))),
    }
}

/// The message of a caught panic, as [`Error::Panicked`] would hold it, located
/// ([`panics::locate`]) in a worker that says where it is.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match Error::from_panic(payload) {
        Error::Panicked { message } => panics::locate(message),
        other => other.to_string(),
    }
}

/// Bytes in front of a request's argument: length and header.
pub(crate) const REQUEST_ROOM: usize = LEN_BYTES + REQUEST_HEADER;

/// Serializes a task's argument in the parent, catching a panicking `Serialize`, after
/// [`REQUEST_ROOM`] bytes of room for the frame's header: [`request_frame`] fills them in, and
/// a large argument is never copied into a frame of its own.
pub(crate) fn encode_argument<A: Payload>(arg: &A) -> Result<Vec<u8>, Error> {
    in_parent("serialize the argument", || {
        postcard::to_extend(arg, vec![0; REQUEST_ROOM])
    })
}

/// Deserializes a task's result in the parent, catching a panicking `Deserialize`.
pub(crate) fn decode_result<R: Payload>(bytes: &[u8]) -> Result<R, Error> {
    in_parent("deserialize the result", || postcard::from_bytes(bytes))
}

/// Runs a postcard call of the parent's side, turning its error or panic into
/// [`Error::Serialization`] that says what could not be done.
fn in_parent<T>(what: &str, call: impl FnOnce() -> postcard::Result<T>) -> Result<T, Error> {
    let message = match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(error)) => format!("could not {what}: {error}"),
        Err(payload) => format!("could not {what}: it panicked: {}", panic_message(payload)),
    };
    Err(Error::Serialization { message })
}

/// Builds a request frame in place from `arg` as [`encode_argument`] made it (the argument
/// after [`REQUEST_ROOM`] bytes of room), by writing the header into that room.
///
/// # Errors
///
/// [`Error::Serialization`] when the argument is larger than a frame can say (4 GiB).
pub(crate) fn request_frame(
    id: u64,
    trampoline: usize,
    func: usize,
    mut arg: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let body = arg.len() - LEN_BYTES;
    let len = u32::try_from(body).map_err(|_| Error::Serialization {
        message: format!(
            "the argument is too large to send ({} bytes)",
            body - REQUEST_HEADER
        ),
    })?;
    arg[..4].copy_from_slice(&len.to_le_bytes());
    arg[4..12].copy_from_slice(&id.to_le_bytes());
    arg[12..20].copy_from_slice(&(trampoline as u64).to_le_bytes());
    arg[20..28].copy_from_slice(&(func as u64).to_le_bytes());
    Ok(arg)
}

/// A request frame's body (after the length), split into its fields.
pub(crate) struct Request<'a> {
    pub(crate) id: u64,
    pub(crate) trampoline: usize,
    pub(crate) func: usize,
    pub(crate) arg: &'a [u8],
}

/// Splits a request body; `None` if it is too short to be one.
pub(crate) fn parse_request(body: &[u8]) -> Option<Request<'_>> {
    let word = |at: usize| body.get(at..at + 8).map(|b| u64_at(b) as usize);
    Some(Request {
        id: u64_at(body.get(0..8)?),
        trampoline: word(8)?,
        func: word(16)?,
        arg: body.get(REQUEST_HEADER..)?,
    })
}

/// Builds a reply frame.
pub(crate) fn reply_frame(id: u64, reply: &Reply) -> Vec<u8> {
    let (kind, body): (u8, &[u8]) = match reply {
        Reply::Value(bytes) => (KIND_VALUE, bytes),
        Reply::Failed(Failure::Panicked(message)) => (KIND_PANICKED, message.as_bytes()),
        Reply::Failed(Failure::Serialization(message)) => (KIND_SERIALIZATION, message.as_bytes()),
        Reply::InitFailed(message) => (KIND_INIT_FAILED, message.as_bytes()),
    };
    // A reply larger than 4 GiB cannot be framed: send the failure instead, which is short.
    let Ok(len) = u32::try_from(REPLY_HEADER + body.len()) else {
        let failure = Failure::Serialization(format!(
            "the result is too large to send ({} bytes)",
            body.len()
        ));
        return reply_frame(id, &Reply::Failed(failure));
    };
    let mut frame = Vec::with_capacity(LEN_BYTES + len as usize);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&id.to_le_bytes());
    frame.push(kind);
    frame.extend_from_slice(body);
    frame
}

/// Splits a whole reply frame (its length prefix included, which the caller has checked)
/// into task id and reply; `None` if malformed. A value's bytes stay in the frame's buffer,
/// the header cut off in place: a large result is never copied here.
pub(crate) fn parse_reply(mut frame: Vec<u8>) -> Option<(u64, Reply)> {
    let header = LEN_BYTES + REPLY_HEADER;
    let id = u64_at(frame.get(LEN_BYTES..LEN_BYTES + 8)?);
    let kind = *frame.get(LEN_BYTES + 8)?;
    let text = || String::from_utf8_lossy(&frame[header..]).into_owned();
    let reply = match kind {
        KIND_VALUE => {
            frame.drain(..header);
            Reply::Value(frame)
        }
        KIND_PANICKED => Reply::Failed(Failure::Panicked(text())),
        KIND_SERIALIZATION => Reply::Failed(Failure::Serialization(text())),
        KIND_INIT_FAILED => Reply::InitFailed(text()),
        _ => return None,
    };
    Some((id, reply))
}

/// The length in a frame's prefix, once `buf` holds the whole prefix.
pub(crate) fn frame_len(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; LEN_BYTES] = buf.get(..LEN_BYTES)?.try_into().ok()?;
    Some(u32::from_le_bytes(prefix) as usize)
}

/// The little-endian `u64` in the first 8 bytes of `bytes`.
pub(crate) fn u64_at(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut arg = vec![0; REQUEST_ROOM];
        arg.extend_from_slice(b"abc");
        let frame = request_frame(7, 11, 13, arg).unwrap();
        assert_eq!(frame_len(&frame), Some(frame.len() - LEN_BYTES));
        let request = parse_request(&frame[LEN_BYTES..]).unwrap();
        assert_eq!(
            (request.id, request.trampoline, request.func, request.arg),
            (7, 11, 13, &b"abc"[..])
        );
        let frame = reply_frame(9, &Reply::Failed(Failure::Panicked("boom".into())));
        match parse_reply(frame) {
            Some((9, Reply::Failed(Failure::Panicked(message)))) => assert_eq!(message, "boom"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn trampoline_calls_the_function() {
        fn double(x: u32) -> u64 {
            u64::from(x) * 2
        }
        let arg = encode_argument(&21_u32).unwrap();
        let arg = &arg[REQUEST_ROOM..];
        let bytes = trampoline::<u32, u64>(double as fn(u32) -> u64 as usize, arg).unwrap();
        assert_eq!(decode_result::<u64>(&bytes), Ok(42));
    }
}
