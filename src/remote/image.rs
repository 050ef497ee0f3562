//! How a function travels to a process that is not a fork of this one (a fork server `exec`ed
//! from this executable, a rank of an MPI job): as its offset from an anchor function in the
//! executable, which names the same function in every process that runs the same executable.
//!
//! Each process loads the executable wherever address-space randomisation puts it, so an
//! address means nothing in another process; the distance between two functions of the same
//! image does not change. [`Image`] holds the anchor's address and the load address of the
//! executable (from `dladdr`), so that an address outside the executable (a function of a
//! shared library, whose distance to the anchor differs from process to process) is refused on
//! the sending side and an offset that lands outside it is refused on the receiving side:
//! never a wild jump.

/// The anchor: any function of this crate would do, as long as it is in the executable. It is
/// never called; only its address is used.
#[inline(never)]
fn anchor() {}

/// Where this process loaded the executable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Image {
    anchor: usize,
    /// The load address of the executable (`dli_fbase` of the anchor).
    base: usize,
}

impl Image {
    /// Locates the executable; `None` if this crate is not part of it (linked into a shared
    /// library, whose code lies elsewhere in each process) or if `dladdr` cannot say which
    /// object the anchor is in (a fully static binary without the loader's bookkeeping).
    pub(crate) fn locate() -> Option<Image> {
        let anchor = anchor as fn() as usize;
        let base = object_base(anchor)?;
        // SAFETY: getauxval reads the auxiliary vector the kernel gave this process; AT_ENTRY
        // is the executable's entry point, so its object is the executable.
        let entry = unsafe { libc::getauxval(libc::AT_ENTRY) } as usize;
        (object_base(entry)? == base).then_some(Image { anchor, base })
    }

    /// The offset that names the function at `address` in every process running this
    /// executable, or `None` if the function is not in the executable.
    pub(crate) fn offset_of(&self, address: usize) -> Option<usize> {
        (object_base(address)? == self.base).then(|| address.wrapping_sub(self.anchor))
    }

    /// The address, in this process, of the function another process sent as `offset`, or
    /// `None` if it lands outside the executable.
    pub(crate) fn address_of(&self, offset: usize) -> Option<usize> {
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
        // `write` lives in libc, another object: its distance to the anchor differs per process.
        let libc_function = libc::write as *const () as usize;
        assert_eq!(image.offset_of(libc_function), None);
        // An offset that lands in no object at all, or in libc, is refused on arrival.
        assert_eq!(image.address_of(usize::MAX / 2), None);
        let into_libc = libc_function.wrapping_sub(image.anchor);
        assert_eq!(image.address_of(into_libc), None);
    }
}
