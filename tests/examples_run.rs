//! Runs every example once, as `cargo run --example NAME` would, so that none of them rots: each
//! must exit successfully and print the outcomes it exists to show. Output is checked for what
//! does not depend on timing; how fast things went is the examples' business, not the tests'.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Time for one example, including building it if `cargo test` did not already.
const BOUND: Duration = Duration::from_secs(300);

/// The examples that need the `examples` feature (their `required-features` in Cargo.toml).
const NEED_EXAMPLES_FEATURE: [&str; 2] = ["scraper", "images"];

/// Runs example `name` with `args` and returns its standard output; panics with both streams
/// if it fails or outlives [`BOUND`].
fn run_example(name: &str, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", "--example", name]);
    // The same features as this test, so cargo reuses the examples it has just built, plus
    // what the example requires.
    if cfg!(feature = "progress") {
        command.args(["--features", "progress"]);
    }
    if cfg!(feature = "mpi") {
        command.args(["--features", "mpi"]);
    }
    if cfg!(feature = "examples") || NEED_EXAMPLES_FEATURE.contains(&name) {
        command.args(["--features", "examples"]);
    }
    let mut child = command
        .arg("--")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    // Drain both pipes while waiting, so a chatty example cannot block on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).map(|_| text)
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));

    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {name} still running after {BOUND:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("reader").expect("UTF-8 stdout");
    let stderr = stderr.join().expect("reader").expect("UTF-8 stderr");
    assert!(
        status.success(),
        "example {name} failed with {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

fn assert_contains(output: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            output.contains(needle),
            "{needle:?} missing from:\n{output}"
        );
    }
}

#[test]
fn quickstart() {
    assert_contains(&run_example("quickstart", &[]), &["Hello, world!"]);
}

#[test]
fn scraper_reports_every_kind_of_outcome() {
    let output = run_example("scraper", &[]);
    assert_contains(
        &output,
        &[
            "sequential:",
            "concurrent, on an IoPool",
            "200 OK",
            "/status/404        404 error",
            "/status/500        500 error",
            "/delay/2000        timed out",
            "sequential: ",
            "concurrent: ",
            "speed-up: ",
        ],
    );
    // What the pool changes, and not a speed: one request at a time, then several at once.
    let peak = |run: &str| -> usize {
        let line = output
            .lines()
            .find(|line| line.starts_with(&format!("{run}: ")))
            .unwrap_or_else(|| panic!("no {run} summary in:\n{output}"));
        let count = line
            .split("at most ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok());
        count.unwrap_or_else(|| panic!("no count in {line:?}"))
    };
    assert_eq!(peak("sequential"), 1, "{output}");
    assert!(peak("concurrent") >= 2, "{output}");
}

#[test]
fn callbacks_carry_each_page_through_every_stage() {
    let output = run_example("callbacks", &[]);
    assert_eq!(
        output.matches("saved; pipeline done").count(),
        4,
        "{output}"
    );
    assert_eq!(output.matches(" saved as ").count(), 4, "{output}");
    assert_contains(&output, &["missing  not saved: fetch: 404 not found"]);
}

#[test]
fn wait_and_as_completed_shows_each_condition() {
    let output = run_example("wait_and_as_completed", &[]);
    assert_contains(
        &output,
        &[
            "wait(FirstCompleted)",
            "wait(FirstException)",
            "error: task panicked: disk full",
            "wait(AllCompleted) with a 400 ms timeout",
            "cancel the 900 ms task? false",
            "timed out",
            "(of 4) futures unfinished",
        ],
    );
}

#[test]
fn file_processor_demo_retries_times_out_and_reports_bad_files() {
    let output = run_example("file_processor", &[]);
    assert_contains(
        &output,
        &[
            "Analyze on 15 .txt files",
            "FAILED latin1.txt after 1 try",
            "FAILED slow.txt after 3 tries: took longer than",
            "(1 after a retry), 2 failed",
        ],
    );
    assert!(!output.contains("notes.md"), "{output}");
}

#[test]
fn file_processor_transforms_a_folder_into_another() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::write(input.join("a.log"), "abc def\nxyz\n").unwrap();
    std::fs::write(input.join("sub/b.log"), "hello\n").unwrap();
    std::fs::write(input.join("c.txt"), "other extension\n").unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();

    let printed = run_example(
        "file_processor",
        &[&path(&input), "log", "reverse", &path(&output)],
    );
    assert_contains(&printed, &["2 ok", "0 failed"]);
    let read = |p: &str| std::fs::read_to_string(output.join(p)).unwrap();
    assert_eq!(read("a.log"), "fed cba\nzyx\n");
    assert_eq!(read("sub/b.log"), "olleh\n");
    assert!(!output.join("c.txt").exists());
    // The input folder is left as it was.
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 3);
}

#[cfg(target_os = "linux")]
const IMAGE_BACKENDS: &[&str] = &["sequential", "CpuPool", "ProcessPool"];
/// Elsewhere the example has no `ProcessPool` to run.
#[cfg(not(target_os = "linux"))]
const IMAGE_BACKENDS: &[&str] = &["sequential", "CpuPool"];

#[test]
fn images_demo_thumbnails_on_every_backend() {
    let output = run_example("images", &["--quick"]);
    for backend in IMAGE_BACKENDS {
        assert_contains(
            &output,
            &[&format!("{backend}: 6 thumbnails written, 1 failed")],
        );
    }
    assert_eq!(
        output
            .matches("broken.png: Format error decoding Png")
            .count(),
        3,
        "{output}"
    );
    assert_contains(
        &output,
        &["every backend made the same thumbnails", "images/s"],
    );
}

/// Makes its input with the `image` crate, which only the `examples` feature brings (CI's
/// `cargo test --all-features` runs it).
#[cfg(feature = "examples")]
#[test]
fn images_thumbnails_a_folder_into_another() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir(&input).unwrap();
    let names = ["a.png", "b.png", "c.PNG"];
    for (i, name) in (0u32..).zip(names) {
        // A busy pattern, so that the original does not compress to less than its thumbnail.
        let image = image::RgbImage::from_fn(300 + i, 200, |x, y| {
            let v = (x ^ y.wrapping_mul(31)).wrapping_mul(2_654_435_761);
            image::Rgb([(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8])
        });
        image.save(input.join(name)).unwrap();
    }
    std::fs::write(input.join("bad.png"), "not an image\n").unwrap();
    std::fs::write(input.join("notes.txt"), "not a .png file: skipped\n").unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();

    let printed = run_example("images", &[&path(&input), &path(&output)]);
    for backend in IMAGE_BACKENDS {
        assert_contains(
            &printed,
            &[&format!("{backend}: 3 thumbnails written, 1 failed")],
        );
        for name in names {
            let thumbnail = output.join(backend).join(name);
            let (width, height) = image::image_dimensions(&thumbnail).unwrap();
            assert_eq!(width.max(height), 128, "{}", thumbnail.display());
            let size = |p: &Path| std::fs::metadata(p).unwrap().len();
            assert!(size(&thumbnail) < size(&input.join(name)), "{name}");
        }
        assert!(!output.join(backend).join("bad.png").exists());
    }
    assert_eq!(printed.matches("bad.png: ").count(), 3, "{printed}");
    assert!(!printed.contains("notes.txt"), "{printed}");
    // The input folder is left as it was.
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 5);
}

// `compare` runs a ProcessPool column, and `soak` drives a ProcessPool and reads `/proc`.
#[cfg(target_os = "linux")]
#[test]
fn compare_prints_every_backend_and_workload() {
    let table = run_example("compare", &["--quick"]);
    assert_contains(
        &table,
        &[
            "round trip",
            "gather 10k",
            "par_map 1M",
            "cpu 32x10ms",
            "io 200x10ms",
            "borrowed map 1M",
        ],
    );
    // A row per backend; a plain loop has no round trip or gather to time.
    let row = |backend: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|line| line.starts_with(backend))
            .unwrap_or_else(|| panic!("no {backend} row in:\n{table}"));
        // A cell is "—", or a number and its unit, for ours followed by "(ratio x)".
        let mut cells: Vec<String> = Vec::new();
        let mut words = line[backend.len()..].split_whitespace().peekable();
        while let Some(word) = words.next() {
            if word.parse::<f64>().is_ok() {
                let mut cell = format!("{word} {}", words.next().unwrap_or_default());
                if let Some(ratio) = words.next_if(|w| w.starts_with('(')) {
                    cell = format!("{cell} {ratio}");
                }
                cells.push(cell);
            } else {
                cells.push(word.to_owned());
            }
        }
        cells
    };
    for backend in [
        "CpuPool",
        "IoPool",
        "ProcessPool",
        "rayon",
        "thread::scope",
        "CPython",
    ] {
        assert_eq!(row(backend).len(), 5, "{backend}:\n{table}");
    }
    let sequential = row("sequential");
    assert_eq!(sequential[..2], ["—", "—"], "{table}");
    assert!(sequential[2..].iter().all(|cell| cell != "—"), "{table}");
    // Ours carry their ratio to the best peer.
    assert!(
        row("CpuPool").iter().all(|cell| cell.ends_with("x)")),
        "{table}"
    );

    let json = run_example("compare", &["--quick", "--json"]);
    assert!(
        json.trim_start().starts_with('[') && json.trim_end().ends_with(']'),
        "{json}"
    );
    // One object per measured cell: 5 workloads on 6 backends (CPython is skipped in quick
    // mode), less the sequential round trip and gather, and the borrowed map's two.
    assert_eq!(json.matches("\"median_seconds\":").count(), 30, "{json}");
}

#[test]
fn compare_fits_100_columns() {
    let output = run_example("compare", &["--quick"]);
    for line in output.lines() {
        let columns = line.chars().count();
        assert!(columns <= 100, "{columns} columns: {line:?}\n{output}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn soak_runs_clean_for_a_few_seconds() {
    // CI runs it for a minute (.ci/run); here it must build, run and pass, every kind included.
    let args: Vec<&str> = "--seconds 3 --seed 1".split(' ').collect();
    let output = run_example("soak", &args);
    assert_contains(&output, &["start: RSS", "end:   RSS", "lost 0; wrong 0"]);
    let last = output.lines().last().unwrap_or_default();
    assert!(last.starts_with("soak: PASS"), "{output}");
}
