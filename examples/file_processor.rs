//! Analyze or transform every file with a given extension under a folder, in parallel, with a
//! per-file timeout, retries, a progress bar and a summary.
//!
//! ```text
//! cargo run --release --example file_processor --features progress
//! cargo run --release --example file_processor --features progress -- upper
//! cargo run --release --example file_processor --features progress -- FOLDER EXTENSION MODE [OUTPUT]
//! ```
//!
//! MODE is `analyze` (lines, words and characters of each file) or a transform: `upper`,
//! `lower`, or `reverse` (each line's characters reversed). Transformed files go to OUTPUT,
//! mirroring the folder's layout; without OUTPUT, to a new folder under the system's
//! temporary directory, never next to the input. With no FOLDER (no arguments, or only a
//! MODE) the program makes a folder of sample files in a temporary directory, removed at the
//! end, so it always has something to show, including a file that cannot be decoded, one
//! that fails once and then succeeds, and one too slow for the timeout.
//!
//! Files are read and written on an [`IoPool`] through `par_map_unordered`, one file per task;
//! with the `progress` feature the results go through `.progress()`, a bar on standard error.
//! A file's failure is part of the summary, never the end of the program.
//!
//! The per-file timeout is checked between lines, by the task itself: a thread cannot be
//! stopped from outside (in Python neither: `future.result(timeout)` leaves the work running),
//! and a check inside the loop makes the file actually stop and its partial output go away.

use std::error::Error;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{IoPool, ParMapExt};

/// How many times a file is tried before it counts as failed.
const ATTEMPTS: u32 = 3;
/// The per-file (per-attempt) time limit for folders of your own.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The demo's time limit: short, so that its slow file shows a time-out quickly.
const DEMO_TIMEOUT: Duration = Duration::from_millis(200);

/// What to do with each file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Analyze,
    Upper,
    Lower,
    Reverse,
}

impl Mode {
    fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "analyze" => Mode::Analyze,
            "upper" => Mode::Upper,
            "lower" => Mode::Lower,
            "reverse" => Mode::Reverse,
            _ => return None,
        })
    }

    fn transform(self, line: &str) -> String {
        match self {
            Mode::Analyze => line.to_owned(),
            Mode::Upper => line.to_uppercase(),
            Mode::Lower => line.to_lowercase(),
            Mode::Reverse => line.chars().rev().collect(),
        }
    }
}

/// Everything a task needs; shared by all of them.
struct Job {
    mode: Mode,
    root: PathBuf,
    /// Where transforms write; `None` when analyzing.
    output: Option<PathBuf>,
    timeout: Duration,
    /// Failures the demo stages on purpose; `None` for folders of your own.
    faults: Option<DemoFaults>,
}

/// The demo's staged failures, so that the retry and time-out paths have something to do.
struct DemoFaults {
    /// Fails its first attempt with a transient error.
    flaky: PathBuf,
    /// Reads as slowly as a dying disk: too slow for the timeout, every time.
    slow: PathBuf,
}

/// What one file gave.
#[derive(Debug, Default)]
struct Counts {
    lines: usize,
    words: usize,
    chars: usize,
}

/// A file done: its counts, how many attempts it took, and where its output went.
#[derive(Debug)]
struct Done {
    path: PathBuf,
    counts: Counts,
    attempts: u32,
    written: Option<PathBuf>,
}

/// A file given up on, after `attempts` tries.
#[derive(Debug)]
struct Failed {
    path: PathBuf,
    attempts: u32,
    reason: Failure,
}

/// Why an attempt failed; only transient failures are tried again.
#[derive(Debug)]
enum Failure {
    TimedOut(Duration),
    /// An I/O error that may go away (the demo's flaky file, an interrupted read).
    Transient(String),
    /// Trying again cannot help (not UTF-8, permission denied, ...).
    Permanent(String),
}

impl Failure {
    fn is_transient(&self) -> bool {
        !matches!(self, Failure::Permanent(_))
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Failure::Transient(error.to_string())
            }
            _ => Failure::Permanent(error.to_string()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TimedOut(limit) => write!(f, "took longer than {limit:?}"),
            Failure::Transient(reason) | Failure::Permanent(reason) => f.write_str(reason),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Holds the demo's sample folder until the end of `main`, which removes it.
    let mut demo_dir = None;
    let (job, extension) = match args.as_slice() {
        [] => demo(Mode::Analyze, &mut demo_dir)?,
        [mode] => demo(parse_mode(mode)?, &mut demo_dir)?,
        [folder, extension, mode, rest @ ..] if rest.len() <= 1 => {
            let mode = parse_mode(mode)?;
            if !Path::new(folder).is_dir() {
                return Err(format!("{folder} is not a folder").into());
            }
            let output = match (mode, rest.first()) {
                (Mode::Analyze, _) => None,
                (_, Some(output)) => Some(PathBuf::from(output)),
                (_, None) => Some(
                    tempfile::Builder::new()
                        .prefix("file_processor-")
                        .tempdir()?
                        .keep(),
                ),
            };
            let job = Job {
                mode,
                root: PathBuf::from(folder),
                output,
                timeout: TIMEOUT,
                faults: None,
            };
            (job, extension.trim_start_matches('.').to_owned())
        }
        _ => {
            eprintln!("{USAGE}");
            return Err("wrong number of arguments".into());
        }
    };
    run(Arc::new(job), &extension)
}

const USAGE: &str = "usage: file_processor [MODE] | file_processor FOLDER EXTENSION MODE [OUTPUT]";
const MODES: &str = "MODE is analyze, upper, lower or reverse";

fn parse_mode(name: &str) -> Result<Mode, String> {
    Mode::parse(name).ok_or_else(|| format!("unknown mode '{name}': {MODES}"))
}

/// Makes the demo's sample folder (kept alive in `dir`) and the job over it.
fn demo(mode: Mode, dir: &mut Option<tempfile::TempDir>) -> io::Result<(Job, String)> {
    let temp = dir.insert(tempfile::tempdir()?);
    let root = temp.path().join("input");
    let sentence = "the quick brown fox jumps over the lazy dog";
    for i in 0..12 {
        // Some files in a subfolder: the walk goes down the tree.
        let folder = if i % 4 == 3 {
            root.join("more")
        } else {
            root.clone()
        };
        fs::create_dir_all(&folder)?;
        let text = format!("{sentence} {i}\n").repeat(50 * (i + 1));
        fs::write(folder.join(format!("sample_{i:02}.txt")), text)?;
    }
    fs::write(root.join("notes.md"), "not a .txt file: skipped\n")?;
    fs::write(root.join("latin1.txt"), b"caf\xe9 is not UTF-8\n")?;
    let flaky = root.join("flaky.txt");
    fs::write(&flaky, "fails once, then works\n")?;
    let slow = root.join("slow.txt");
    fs::write(&slow, format!("{sentence}\n").repeat(100))?;

    println!("demo: sample files in {} (removed at exit)", root.display());
    let output = (mode != Mode::Analyze).then(|| temp.path().join("output"));
    let job = Job {
        mode,
        root,
        output,
        timeout: DEMO_TIMEOUT,
        faults: Some(DemoFaults { flaky, slow }),
    };
    Ok((job, "txt".to_owned()))
}

fn run(job: Arc<Job>, extension: &str) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let mut files = Vec::new();
    let mut walk_errors = Vec::new();
    walk(&job.root, extension, &mut files, &mut walk_errors);
    files.sort();
    println!(
        "{:?} on {} .{extension} files under {}",
        job.mode,
        files.len(),
        job.root.display()
    );

    let pool = IoPool::builder().thread_name_prefix("file").build()?;
    let task_job = Arc::clone(&job);
    let results = files
        .into_iter()
        .par_map_unordered(&pool, move |path| process_with_retries(&task_job, path))
        // One file per task: files are few and slow next to the cost of a task.
        .chunksize(1);
    #[cfg(feature = "progress")]
    let results = results.progress();
    #[cfg(not(feature = "progress"))]
    println!("(run with `--features progress` for a progress bar)");

    let mut done = Vec::new();
    let mut failed = Vec::new();
    for result in results {
        match result {
            Ok(Ok(file)) => done.push(file),
            Ok(Err(failure)) => failed.push(failure),
            // The task itself failed (a panic in our code): a bug, but one file's.
            Err(error) => walk_errors.push(format!("a task failed: {error}")),
        }
    }
    summarize(&job, &mut done, &mut failed, &walk_errors, start.elapsed());
    Ok(())
}

/// Collects the files under `dir` whose extension is `extension`, recursively; a folder that
/// cannot be read is noted in `errors` and skipped.
fn walk(dir: &Path, extension: &str, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => return errors.push(format!("{}: {error}", dir.display())),
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(error) => {
                errors.push(format!("{}: {error}", dir.display()));
                continue;
            }
        };
        if path.is_dir() {
            walk(&path, extension, files, errors);
        } else if path.extension().is_some_and(|e| e == extension) {
            files.push(path);
        }
    }
}

/// Tries a file up to [`ATTEMPTS`] times, waiting a little longer before each new try.
fn process_with_retries(job: &Job, path: PathBuf) -> Result<Done, Failed> {
    let mut attempt = 1;
    loop {
        match process(job, &path, attempt) {
            Ok((counts, written)) => {
                return Ok(Done {
                    path,
                    counts,
                    attempts: attempt,
                    written,
                });
            }
            Err(reason) if !reason.is_transient() || attempt == ATTEMPTS => {
                return Err(Failed {
                    path,
                    attempts: attempt,
                    reason,
                });
            }
            Err(_) => {
                thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
                attempt += 1;
            }
        }
    }
}

/// One attempt at one file: counts its lines, words and characters, and writes its transform
/// when the mode has one. Output goes to a `.part` file renamed at the end, so a failed
/// attempt leaves nothing half-written behind.
fn process(job: &Job, path: &Path, attempt: u32) -> Result<(Counts, Option<PathBuf>), Failure> {
    let deadline = Instant::now() + job.timeout;
    let slow = match &job.faults {
        Some(faults) if faults.flaky == path && attempt == 1 => {
            return Err(Failure::Transient(
                "resource busy (staged by the demo)".into(),
            ));
        }
        Some(faults) => faults.slow == path,
        None => false,
    };

    let mut reader = BufReader::new(File::open(path)?);
    let target = match &job.output {
        Some(output) => Some(output_path(output, &job.root, path)?),
        None => None,
    };
    let part = target.as_ref().map(|target| target.with_extension("part"));
    let mut writer = match &part {
        Some(part) => Some(BufWriter::new(File::create(part)?)),
        None => None,
    };

    let outcome = (|| {
        let mut counts = Counts::default();
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            if slow {
                thread::sleep(Duration::from_millis(10));
            }
            if Instant::now() > deadline {
                return Err(Failure::TimedOut(job.timeout));
            }
            counts.lines += 1;
            counts.words += line.split_whitespace().count();
            counts.chars += line.chars().count();
            if let Some(writer) = &mut writer {
                let content = line.trim_end_matches(['\n', '\r']);
                writeln!(writer, "{}", job.mode.transform(content))?;
            }
            line.clear();
        }
        if let Some(writer) = &mut writer {
            writer.flush()?;
        }
        Ok(counts)
    })();

    match (outcome, part, target) {
        (Ok(counts), Some(part), Some(target)) => {
            fs::rename(part, &target)?;
            Ok((counts, Some(target)))
        }
        (Ok(counts), _, _) => Ok((counts, None)),
        (Err(failure), part, _) => {
            if let Some(part) = part {
                // Best effort: a leftover `.part` file is harmless and obviously unfinished.
                let _ = fs::remove_file(part);
            }
            Err(failure)
        }
    }
}

/// Where the transform of `path` (a file under `root`) goes under `output`, with its folder
/// made.
fn output_path(output: &Path, root: &Path, path: &Path) -> io::Result<PathBuf> {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let target = output.join(relative);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    Ok(target)
}

fn summarize(
    job: &Job,
    done: &mut [Done],
    failed: &mut [Failed],
    other_errors: &[String],
    elapsed: Duration,
) {
    // Results came in completion order; the report reads better in path order.
    done.sort_by(|a, b| a.path.cmp(&b.path));
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    let name = |path: &Path| {
        path.strip_prefix(&job.root)
            .unwrap_or(path)
            .display()
            .to_string()
    };

    println!(
        "\n{:<28} {:>7} {:>8} {:>9}  tries",
        "file", "lines", "words", "chars"
    );
    let mut total = Counts::default();
    for file in done.iter() {
        let Counts {
            lines,
            words,
            chars,
        } = file.counts;
        println!(
            "{:<28} {lines:>7} {words:>8} {chars:>9}  {}",
            name(&file.path),
            file.attempts
        );
        total.lines += lines;
        total.words += words;
        total.chars += chars;
    }
    println!(
        "{:<28} {:>7} {:>8} {:>9}",
        "total", total.lines, total.words, total.chars
    );

    for file in failed.iter() {
        println!(
            "FAILED {} after {} {}: {}",
            name(&file.path),
            file.attempts,
            if file.attempts == 1 { "try" } else { "tries" },
            file.reason
        );
    }
    for error in other_errors {
        println!("ERROR {error}");
    }

    let retried = done.iter().filter(|file| file.attempts > 1).count();
    let files = done.len() + failed.len();
    println!(
        "\nsummary: {} ok ({retried} after a retry), {} failed, {} other errors; \
         {files} files in {:.2} s ({:.0} files/s)",
        done.len(),
        failed.len(),
        other_errors.len(),
        elapsed.as_secs_f64(),
        files as f64 / elapsed.as_secs_f64()
    );
    if let Some(output) = &job.output {
        let written = done.iter().filter(|file| file.written.is_some()).count();
        println!("{written} transformed files in {}", output.display());
        if let Some(first) = done.iter().find_map(|file| file.written.as_ref()) {
            let preview = fs::read_to_string(first).unwrap_or_default();
            let first_line = preview.lines().next().unwrap_or("");
            println!("{}: {first_line}", first.display());
        }
    }
}
