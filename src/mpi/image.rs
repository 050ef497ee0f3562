//! Which executable a rank runs: a hash of its bytes, which the ranks compare at start-up so
//! that a function's offset from the anchor ([`Image`](crate::remote::image::Image)) names the
//! same function on every rank.

use std::hash::Hasher;
use std::io::{self, Read};
use std::path::Path;

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
