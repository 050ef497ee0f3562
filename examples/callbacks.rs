//! A fetch → process → save pipeline chained with `add_done_callback`: each stage's callback
//! submits the next stage, and `main` only waits for the end.
//!
//! `cargo run --release --example callbacks`
//!
//! Fetching and saving block on I/O, so they run on an [`IoPool`]; processing burns CPU, so it
//! runs on a [`CpuPool`]. Nothing waits between the stages: a callback runs in the thread that
//! completed the future (the output shows which), hands the value to the next pool and
//! returns. `main` holds one [`Future`] per page, made with a [`Promise`] that the last stage
//! completes, and `wait`s on them. A failure at any stage (here a page that is not found)
//! skips the rest of its pipeline and ends up in that page's result; a [`Promise`] lost on
//! the way would fail its future with `Error::Broken` rather than leave `main` waiting.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{CpuPool, Executor, Future, IoPool, Promise, ReturnWhen, wait};

/// What a page's pipeline ends with: where it was saved, or why it stopped.
type Outcome = Result<Saved, String>;

/// The result of the last stage.
#[derive(Clone, Debug)]
struct Saved {
    path: PathBuf,
    words: usize,
}

/// What the callbacks need to submit the next stage; shared by every pipeline.
struct Stages {
    io: IoPool,
    cpu: CpuPool,
    out_dir: PathBuf,
    start: Instant,
}

impl Stages {
    /// Prints what just happened, when, and on which thread: callbacks run on the thread that
    /// completed the future.
    fn log(&self, page: &str, what: &str) {
        let thread = thread::current();
        println!(
            "{:>5} ms  {page:<8} {what:<28} on {}",
            self.start.elapsed().as_millis(),
            thread.name().unwrap_or("?")
        );
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = tempfile::tempdir()?;
    let stages = Arc::new(Stages {
        io: IoPool::builder()
            .max_workers(4)
            .thread_name_prefix("io")
            .build()?,
        cpu: CpuPool::builder()
            .num_threads(2)
            .thread_name(|i| format!("cpu_{i}"))
            .build()?,
        out_dir: out_dir.path().to_owned(),
        start: Instant::now(),
    });

    println!("saving to {} (removed at exit)", out_dir.path().display());
    let pages = ["alpha", "beta", "gamma", "missing", "delta"];
    let results: Vec<Future<Outcome>> = pages
        .iter()
        .map(|&page| {
            let (done, result) = Promise::new();
            fetch_stage(Arc::clone(&stages), page, done);
            result
        })
        .collect();
    stages.log("main", "submitted every fetch");

    // Every stage is short; the bound only keeps a bug from hanging the program.
    let split = wait(
        &results,
        Some(Duration::from_secs(10)),
        ReturnWhen::AllCompleted,
    );
    if !split.not_done.is_empty() {
        return Err(format!("{} pipelines did not finish in time", split.not_done.len()).into());
    }
    // Let the last callbacks return before the output folder is removed.
    stages.io.shutdown(true, false);
    stages.cpu.shutdown(true, false);

    println!();
    for (page, result) in pages.iter().zip(&results) {
        match result.result()? {
            Ok(saved) => println!(
                "{page:<8} saved as {} ({} words)",
                saved.path.file_name().unwrap_or_default().to_string_lossy(),
                saved.words
            ),
            Err(reason) => println!("{page:<8} not saved: {reason}"),
        }
    }
    Ok(())
}

/// Stage 1: fetch `page` on the I/O pool; its callback starts stage 2.
fn fetch_stage(stages: Arc<Stages>, page: &'static str, done: Promise<Outcome>) {
    let fetched = stages.io.submit(move || fetch(page));
    fetched.add_done_callback(move |fetched| match value(fetched) {
        Ok(text) => {
            stages.log(page, "fetched; submit process");
            process_stage(stages, page, text.clone(), done);
        }
        Err(reason) => {
            stages.log(page, "fetch failed; stop here");
            complete(done, Err(format!("fetch: {reason}")));
        }
    });
}

/// Stage 2: process the text on the CPU pool; its callback starts stage 3.
fn process_stage(stages: Arc<Stages>, page: &'static str, text: String, done: Promise<Outcome>) {
    let processed = stages.cpu.submit(move || process(&text));
    processed.add_done_callback(move |processed| match value(processed) {
        Ok(report) => {
            stages.log(page, "processed; submit save");
            save_stage(stages, page, report.clone(), done);
        }
        Err(reason) => complete(done, Err(format!("process: {reason}"))),
    });
}

/// Stage 3: save the report on the I/O pool; its callback completes the page's future.
fn save_stage(stages: Arc<Stages>, page: &'static str, report: Report, done: Promise<Outcome>) {
    let path = stages.out_dir.join(format!("{page}.txt"));
    let saved = stages.io.submit(move || save(&path, &report));
    saved.add_done_callback(move |saved| {
        stages.log(page, "saved; pipeline done");
        complete(
            done,
            value(saved).cloned().map_err(|e| format!("save: {e}")),
        );
    });
}

/// The value of a finished stage, or why there is none: the stage's own error, or the task's
/// (a panic, a shutdown).
fn value<T>(future: &Future<Result<T, String>>) -> Result<&T, String> {
    match future.result() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(reason)) => Err(reason.clone()),
        Err(error) => Err(error.to_string()),
    }
}

fn complete(mut done: Promise<Outcome>, outcome: Outcome) {
    // Fails only if `main` cancelled the page's future, and then nobody wants the outcome.
    let _ = done.set_result(outcome);
}

/// Pretends to download a page: a short sleep, like a network round trip.
fn fetch(page: &str) -> Result<String, String> {
    thread::sleep(Duration::from_millis(50 + 20 * page.len() as u64));
    if page == "missing" {
        return Err("404 not found".into());
    }
    Ok(format!("{page} ").repeat(1000 * page.len()))
}

/// What processing makes of a page.
#[derive(Clone, Debug)]
struct Report {
    words: usize,
    text: String,
}

/// CPU work on the page: count its words and upper-case it.
fn process(text: &str) -> Result<Report, String> {
    let words = text.split_whitespace().count();
    if words == 0 {
        return Err("empty page".into());
    }
    Ok(Report {
        words,
        text: text.to_uppercase(),
    })
}

fn save(path: &Path, report: &Report) -> Result<Saved, String> {
    std::fs::write(path, &report.text).map_err(|e| e.to_string())?;
    Ok(Saved {
        path: path.to_owned(),
        words: report.words,
    })
}
