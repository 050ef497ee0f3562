//! [`PendingSend`]: a non-blocking MPI send that owns its bytes until MPI is done with them.
//!
//! Why not a blocking send: a message above the transport's eager limit (a few KiB on shared
//! memory) is only delivered once the other side posts a receive. A worker posts one only
//! between tasks, so a blocking send of a large argument would stall rank 0's progress thread
//! for a whole task, and a worker blocked sending a large result to a rank 0 blocked sending
//! it the next argument would deadlock. rsmpi's safe non-blocking sends borrow their buffer
//! for a lexical scope, which a queue of sends that complete in any order cannot give; so this
//! calls `MPI_Isend` itself and keeps the `Vec` alive next to the request.

use std::mem::MaybeUninit;

use ::mpi::ffi;
use ::mpi::raw::AsRaw;
use ::mpi::topology::{Rank, SimpleCommunicator};
use ::mpi::traits::Equivalence;

/// A send in progress. Dropping it waits for the send to complete, so it must be dropped
/// before MPI is finalized (the owners declare their sends before the `Universe`).
pub(super) struct PendingSend {
    request: ffi::MPI_Request,
    /// Read by MPI until the request completes; only held here, never touched.
    _bytes: Vec<u8>,
    done: bool,
}

// SAFETY: an `MPI_Request` is a handle (an integer or a pointer MPI owns), not tied to the
// thread that made it; every send is made, tested and dropped by the one thread that makes
// all of this process's MPI calls, and is only moved along with the structure that holds it.
unsafe impl Send for PendingSend {}

impl PendingSend {
    /// Starts sending `bytes` to `rank` of `world` with `tag`.
    ///
    /// # Panics
    ///
    /// If `bytes` is longer than an MPI count can say (2 GiB); callers check first, see
    /// [`fits`].
    pub(super) fn start(world: &SimpleCommunicator, rank: Rank, tag: i32, bytes: Vec<u8>) -> Self {
        let count = i32::try_from(bytes.len()).expect("callers check that a message fits");
        let mut request = MaybeUninit::uninit();
        // SAFETY: the buffer is `count` initialised bytes described as `MPI_UINT8_T`; it
        // stays allocated and unmodified until the request completes, because `bytes` moves
        // into the returned value (moving a `Vec` does not move its heap buffer) and is only
        // freed by `drop`, which first waits for completion. `world` is a live communicator
        // and `request` is written by `MPI_Isend` before it is read.
        let request = unsafe {
            ffi::MPI_Isend(
                bytes.as_ptr().cast(),
                count,
                u8::equivalent_datatype().as_raw(),
                rank,
                tag,
                world.as_raw(),
                request.as_mut_ptr(),
            );
            request.assume_init()
        };
        PendingSend {
            request,
            _bytes: bytes,
            done: false,
        }
    }

    /// Whether MPI is done with the bytes; lets MPI make progress on the send.
    pub(super) fn is_done(&mut self) -> bool {
        if !self.done {
            let mut flag = 0;
            // SAFETY: `request` is the live request `start` made, not yet completed (a
            // completed one is never tested again), and the status is ignored.
            unsafe { ffi::MPI_Test(&mut self.request, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
            self.done = flag != 0;
        }
        self.done
    }
}

impl Drop for PendingSend {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: as in `is_done`; after the wait MPI no longer reads `bytes`, which are
            // freed right after this.
            unsafe { ffi::MPI_Wait(&mut self.request, ffi::RSMPI_STATUS_IGNORE) };
        }
    }
}

/// Whether a message of `len` bytes can be sent in one piece (its count is an `i32`).
pub(super) fn fits(len: usize) -> bool {
    i32::try_from(len).is_ok()
}
