//! How a function travels to a process that is not a fork of this one (a fork server `exec`ed
//! from this executable, a rank of an MPI job): as its offset from an anchor function in the
//! executable, which names the same function in every process that runs the same executable.
//!
//! Each process loads the executable wherever address-space randomisation puts it, so an
//! address means nothing in another process; the distance between two functions of the same
//! image does not change. [`Image`] holds the anchor's address and where the executable's code
//! lies (from its program headers), so that an address outside it (a function of a shared
//! library, whose distance to the anchor differs from process to process) is refused on the
//! sending side and an offset that lands outside it is refused on the receiving side: never a
//! wild jump.

/// The anchor: any function of this crate would do, as long as it is in the executable. It is
/// never called; only its address is used.
#[inline(never)]
fn anchor() {}

/// Where this process loaded the executable's code.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Image {
    anchor: usize,
    /// The addresses of the executable's code: from the start of its first executable segment
    /// to the end of its last.
    code: (usize, usize),
}

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

impl Image {
    /// Locates the executable's code; `None` if this crate is not part of it (linked into a
    /// shared library, whose code lies elsewhere in each process) or if the program headers
    /// cannot be read.
    pub(crate) fn locate() -> Option<Image> {
        let code = executable_code()?;
        let anchor = anchor as fn() as usize;
        (code.0 <= anchor && anchor < code.1).then_some(Image { anchor, code })
    }

    /// The offset that names the function at `address` in every process running this
    /// executable, or `None` if the function is not in the executable.
    pub(crate) fn offset_of(&self, address: usize) -> Option<usize> {
        self.contains(address)
            .then(|| address.wrapping_sub(self.anchor))
    }

    /// The offsets of a task's trampoline and function, or the error its future gets when
    /// either is not in the executable (and so cannot be named `where_to`, in another process).
    pub(crate) fn offsets_of(
        &self,
        trampoline: usize,
        func: usize,
        where_to: &str,
    ) -> Result<(usize, usize), crate::Error> {
        self.offset_of(trampoline)
            .zip(self.offset_of(func))
            .ok_or_else(|| crate::Error::Serialization {
                message: format!(
                    "the function at {func:#x} is not in the executable (a shared library's?), \
                     so it cannot be named {where_to}"
                ),
            })
    }

    /// The address, in this process, of the function another process sent as `offset`, or
    /// `None` if it lands outside the executable's code.
    pub(crate) fn address_of(&self, offset: usize) -> Option<usize> {
        let address = self.anchor.wrapping_add(offset);
        self.contains(address).then_some(address)
    }

    fn contains(&self, address: usize) -> bool {
        self.code.0 <= address && address < self.code.1
    }
}

/// The span of the executable's executable segments in this process, from its program
/// headers, which the kernel maps with it and points at in the auxiliary vector: no call into
/// the dynamic loader, so it works in a static executable too, and costs nothing per lookup.
fn executable_code() -> Option<(usize, usize)> {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process.
    let (phdr, count) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
        )
    };
    if phdr == 0 || count == 0 {
        return None;
    }
    // SAFETY: AT_PHDR is the address of the executable's program headers, AT_PHNUM their
    // number; the kernel maps them for the life of the process.
    let headers =
        unsafe { std::slice::from_raw_parts(phdr as usize as *const Phdr, count as usize) };
    // Where the executable was loaded: the headers' run-time address minus the address the
    // file gives them (0 for an executable that is not position-independent and has none).
    let bias = headers
        .iter()
        .find(|header| header.p_type == libc::PT_PHDR)
        .map_or(0, |header| {
            (phdr as usize).wrapping_sub(header.p_vaddr as usize)
        });
    headers
        .iter()
        .filter(|header| header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0)
        .map(|header| {
            let start = bias.wrapping_add(header.p_vaddr as usize);
            (start, start + header.p_memsz as usize)
        })
        .reduce(|(start, end), (s, e)| (start.min(s), end.max(e)))
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
