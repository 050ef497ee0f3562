//! How a function travels between ranks that are not forks of each other: as its offset from
//! an anchor function in the executable, and only between ranks that run the same executable.
//!
//! Each rank loads the executable wherever address-space randomisation puts it, so an address
//! means nothing on another rank; the distance between two functions of the same image does
//! not change. [`Image`] holds the anchor's address and the bounds of the object it lies in
//! (from `dladdr`), so that an address outside the executable (a function of a shared library,
//! whose distance to the anchor differs from rank to rank) is refused on the sending side and
//! an offset that lands outside it is refused on the receiving side: never a wild jump.
//! [`executable_hash`] lets the ranks check at start-up that they all run the same bytes.

use std::hash::Hasher;
use std::io::{self, Read};
use std::path::Path;

/// The anchor: any function of this crate would do, as long as it is in the executable. It is
/// never called; only its address is used.
#[inline(never)]
fn anchor() {}

/// Where this process loaded the executable.
#[derive(Clone, Copy, Debug)]
pub(super) struct Image {
    anchor: usize,
    /// The load address of the object the anchor lies in (`dli_fbase`).
    base: usize,
}

impl Image {
    /// Locates the executable; `None` if `dladdr` cannot say which object the anchor is in
    /// (a fully static binary without the dynamic loader's bookkeeping).
    pub(super) fn locate() -> Option<Image> {
        let anchor = anchor as fn() as usize;
        let base = object_base(anchor)?;
        Some(Image { anchor, base })
    }

    /// The offset that names the function at `address` on every rank, or `None` if the
    /// function is not in the executable.
    pub(super) fn offset_of(&self, address: usize) -> Option<usize> {
        (object_base(address)? == self.base).then(|| address.wrapping_sub(self.anchor))
    }

    /// The address, in this process, of the function another rank sent as `offset`, or `None`
    /// if it lands outside the executable.
    pub(super) fn address_of(&self, offset: usize) -> Option<usize> {
        let address = self.anchor.wrapping_add(offset);
        (object_base(address)? == self.base).then_some(address)
    }
}

/// The load address of the object `address` lies in, as the dynamic loader knows it.
fn object_base(address: usize) -> Option<usize> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: `dladdr` only reads the loader's tables and writes `info`, which is a valid,
    // zeroed `Dl_info`; any address may be asked about, mapped or not.
    let found = unsafe { libc::dladdr(address as *const libc::c_void, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: `dladdr` succeeded, so it filled `info` in (and it was zeroed before anyway).
    let base = unsafe { info.assume_init() }.dli_fbase as usize;
    (base != 0).then_some(base)
}

/// A hash of the bytes of this process's executable (`/proc/self/exe`), which every rank
/// compares with rank 0's before the first task: two ranks with the same hash run the same
/// build, so the same offset names the same function on both.
///
/// # Errors
///
/// The error of opening or reading the executable.
pub(super) fn executable_hash() -> io::Result<u64> {
    hash_file(Path::new("/proc/self/exe"))
}

fn hash_file(path: &Path) -> io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    // `DefaultHasher::new` has fixed keys: the same on every rank that runs the same build,
    // which is all that is asked of it (ranks that run different builds differ anyway).
    let mut hasher = std::hash::DefaultHasher::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.write(&buf[..n]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(x: u32) -> u32 {
        x + 1
    }

    #[test]
    fn an_offset_names_the_same_function_again() {
        let image = Image::locate().expect("the test binary is dynamically linked");
        let address = sample as fn(u32) -> u32 as usize;
        let offset = image
            .offset_of(address)
            .expect("sample is in the executable");
        assert_eq!(image.address_of(offset), Some(address));
    }

    #[test]
    fn functions_outside_the_executable_are_refused() {
        let image = Image::locate().expect("the test binary is dynamically linked");
        // `write` lives in libc, another object: its distance to the anchor differs per rank.
        let libc_function = libc::write as *const () as usize;
        assert_eq!(image.offset_of(libc_function), None);
        // An offset that lands in no object at all, or in libc, is refused on arrival.
        assert_eq!(image.address_of(usize::MAX / 2), None);
        let into_libc = libc_function.wrapping_sub(image.anchor);
        assert_eq!(image.address_of(into_libc), None);
    }

    #[test]
    fn the_hash_is_of_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            hash_file(&path).unwrap()
        };
        let big = vec![7_u8; 3 << 20];
        let mut changed = big.clone();
        changed[(3 << 20) - 1] = 8;
        assert_eq!(write("a", &big), write("b", &big));
        assert_ne!(write("a", &big), write("c", &changed));
        assert!(hash_file(&dir.path().join("missing")).is_err());
        assert_eq!(executable_hash().unwrap(), executable_hash().unwrap());
    }
}
