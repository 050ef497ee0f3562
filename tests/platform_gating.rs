//! The process and MPI pools are Linux only, and say so where a reader and the compiler look:
//! at their module declarations in `lib.rs`, and at the top of every process test file, so
//! that a non-Linux `cargo test` builds without them. The core and the thread pools make no
//! Linux-only call: `libc` is used only in the Linux-only modules.

use std::fs;
use std::path::Path;

const LINUX: &str = "#![cfg(target_os = \"linux\")]";

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_process_modules_are_declared_for_linux_only() {
    let lib = read("src/lib.rs");
    for declaration in ["pub mod process;", "mod remote;", "pub mod mpi;"] {
        let attribute = lib
            .lines()
            .zip(lib.lines().skip(1))
            .find(|(_, next)| *next == declaration)
            .map(|(attribute, _)| attribute)
            .unwrap_or_else(|| panic!("`{declaration}` not found in lib.rs"));
        assert!(
            attribute.starts_with("#[cfg(all(") && attribute.contains("target_os = \"linux\""),
            "`{declaration}` is not gated on Linux: {attribute}"
        );
    }
}

#[test]
fn every_process_test_file_is_linux_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut checked = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("process_") && name.ends_with(".rs") {
            let text = fs::read_to_string(&path).unwrap();
            let first_code = text.lines().find(|line| !line.starts_with("//!"));
            assert_eq!(first_code, Some(LINUX), "{name} is not gated on Linux");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} process test files found");
}

#[test]
fn libc_is_used_only_in_the_linux_only_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(&src)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let linux_only = ["process/", "remote/", "mpi/"]
                .iter()
                .any(|dir| relative.starts_with(dir));
            if !linux_only {
                let text = fs::read_to_string(&path).unwrap();
                assert!(!text.contains("libc::"), "src/{relative} calls libc");
            }
        }
    }
}
