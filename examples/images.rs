//! Thumbnails of a folder of PNG images with the `image` crate: one by one, then on a
//! [`CpuPool`] and on a [`ProcessPool`], with the images per second of each and the speed-ups.
//!
//! ```text
//! cargo run --release --example images
//! cargo run --release --example images -- --quick
//! cargo run --release --example images -- FOLDER [OUTPUT]
//! ```
//!
//! With no FOLDER the program draws its own input in a temporary folder, removed at the end:
//! gradients with noise on top, and one `.png` file that is not an image at all, to show a
//! file's failure reported by name while the others go on. `--quick` draws fewer and smaller
//! ones. With FOLDER it thumbnails the `.png` files directly in it. Each backend writes its
//! thumbnails (at most 128 pixels a side) to a subfolder of its own, named after it, under
//! OUTPUT; without OUTPUT, under a new folder in the system's temporary directory (the
//! demo's is removed at exit, one for your FOLDER is kept), never next to the input.
//!
//! The three backends run the same plain function through [`FnExecutor::map_fn`]: a function
//! pointer and serializable arguments (here, paths) are all that a worker process can be
//! sent, and every thread executor takes them too, so one helper measures every backend.
//! The `ProcessPool` run is Linux only, as the pool; elsewhere the example runs the other two.

use std::error::Error;
use std::fs;
use std::io;
use std::num::NonZero;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use concurrent_futures::ProcessPool;
use concurrent_futures::{CpuPool, FnExecutor, InlineExecutor, ParMapExt};
use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// The longest side of a thumbnail, in pixels.
const THUMBNAIL_SIDE: u32 = 128;

/// How many images the demo draws, how big, and how many times each backend goes over them.
#[derive(Clone, Copy)]
struct Demo {
    images: usize,
    width: u32,
    height: u32,
    /// Each backend's time is the median of its passes: a pass takes a fraction of a second,
    /// long enough for another program on the machine to skew one of them.
    passes: usize,
}

/// About two seconds in release mode, drawing included.
const DEMO: Demo = Demo {
    images: 48,
    width: 800,
    height: 600,
    passes: 3,
};
/// Small enough for a debug build (the test suite's).
const QUICK: Demo = Demo {
    images: 6,
    width: 160,
    height: 120,
    passes: 1,
};

const USAGE: &str = "usage: images [--quick] | images FOLDER [OUTPUT]";

/// One image to thumbnail: what crosses the pipe to a worker process.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Task {
    source: PathBuf,
    target: PathBuf,
}

/// The size of a thumbnail made, or why the image could not be made into one.
type Outcome = Result<(u32, u32), String>;

/// One backend's pass over every image.
struct Run {
    backend: &'static str,
    /// In input order, one per image.
    outcomes: Vec<Outcome>,
    elapsed: Duration,
}

impl Run {
    fn written(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.is_ok())
            .count()
    }

    fn images_per_second(&self) -> f64 {
        self.written() as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    // Workers are forked from a server started now, while this program runs no other thread.
    #[cfg(target_os = "linux")]
    concurrent_futures::process::init()?;

    let workers = thread::available_parallelism().map_or(2, NonZero::get);
    let cpu = CpuPool::new(workers)?;
    // Made before the timing starts: forking the workers is not part of any image's cost.
    #[cfg(target_os = "linux")]
    let processes = ProcessPool::new(workers)?;

    let args: Vec<String> = std::env::args().skip(1).collect();
    // Holds the demo's folder until the end of `main`, which removes it.
    let mut demo_dir = None;
    let (input, output, passes) = match args.as_slice() {
        [] => demo(&cpu, DEMO, &mut demo_dir)?,
        [flag] if flag == "--quick" => demo(&cpu, QUICK, &mut demo_dir)?,
        [folder, rest @ ..] if rest.len() <= 1 && !folder.starts_with('-') => {
            let input = PathBuf::from(folder);
            if !input.is_dir() {
                return Err(format!("{folder} is not a folder").into());
            }
            let output = match rest.first() {
                Some(output) => PathBuf::from(output),
                None => tempfile::Builder::new()
                    .prefix("thumbnails-")
                    .tempdir()?
                    .keep(),
            };
            // A folder of your own is timed once: it may be large.
            (input, output, 1)
        }
        _ => {
            eprintln!("{USAGE}");
            return Err("wrong arguments".into());
        }
    };

    let sources = png_files(&input)?;
    if sources.is_empty() {
        // Nothing to time: rates and speed-ups of no images mean nothing.
        println!("no .png files in {}", input.display());
        return Ok(());
    }
    println!(
        "thumbnails of {} PNG files in {}, at most {THUMBNAIL_SIDE} pixels a side, \
         {workers} workers, {passes} {}",
        sources.len(),
        input.display(),
        if passes == 1 { "pass" } else { "passes" }
    );
    let runs = [
        // The baseline: each task runs in this thread, as it is submitted.
        thumbnails_on(
            &InlineExecutor::new(),
            "sequential",
            &sources,
            &output,
            passes,
        )?,
        thumbnails_on(&cpu, "CpuPool", &sources, &output, passes)?,
        #[cfg(target_os = "linux")]
        thumbnails_on(&processes, "ProcessPool", &sources, &output, passes)?,
    ];
    report(&runs);
    let kept = if demo_dir.is_some() {
        "removed at exit"
    } else {
        "kept"
    };
    println!(
        "thumbnails in {}/{{sequential,CpuPool,ProcessPool}} ({kept})",
        output.display()
    );
    Ok(())
}

/// Draws the demo's images (kept alive in `dir`) and returns its input and output folders and
/// its number of passes.
fn demo(
    pool: &CpuPool,
    size: Demo,
    dir: &mut Option<tempfile::TempDir>,
) -> Result<(PathBuf, PathBuf, usize), Box<dyn Error>> {
    let temp = dir.insert(tempfile::tempdir()?);
    let input = temp.path().join("input");
    fs::create_dir(&input)?;
    // Drawing and encoding take about as long as the thumbnails themselves: in parallel too.
    let folder = input.clone();
    let drawn = (0..size.images).par_map(pool, move |index| {
        let path = folder.join(format!("gradient_{index:02}.png"));
        draw(index, size)
            .save(path)
            .map_err(|error| error.to_string())
    });
    for result in drawn {
        result??;
    }
    fs::write(
        input.join("broken.png"),
        "not a PNG: a file that fails on its own\n",
    )?;
    println!(
        "demo: {} images of {}x{} drawn in {}",
        size.images,
        size.width,
        size.height,
        input.display()
    );
    Ok((input, temp.path().join("output"), size.passes))
}

/// A gradient that differs from image to image, with noise on top: noise is what makes a PNG
/// cost something to decode, as a photograph does; a smooth gradient alone compresses to
/// almost nothing.
fn draw(index: usize, size: Demo) -> RgbImage {
    let tint = (index * 37 % 256) as u8;
    // xorshift32: cheap, and the same noise on every run.
    let mut state = 0x9e37_79b9_u32 ^ index as u32;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 48) as u8
    };
    RgbImage::from_fn(size.width, size.height, |x, y| {
        let red = (x * 255 / size.width) as u8;
        let green = (y * 255 / size.height) as u8;
        Rgb([
            red.saturating_add(noise()),
            green.saturating_add(noise()),
            tint.saturating_add(noise()),
        ])
    })
}

/// The `.png` files directly in `folder` (any case of the extension), sorted by name.
fn png_files(folder: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(folder)? {
        let path = entry?.path();
        let is_png = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("png"));
        if is_png && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Thumbnails every image on `backend` into `output/name`, `passes` times (each pass writes
/// the same files again), and prints the count and each failure by file name.
fn thumbnails_on<E: FnExecutor>(
    backend: &E,
    name: &'static str,
    sources: &[PathBuf],
    output: &Path,
    passes: usize,
) -> io::Result<Run> {
    let folder = output.join(name);
    fs::create_dir_all(&folder)?;
    let tasks = || {
        sources.iter().map(|source| Task {
            source: source.clone(),
            // `png_files` only lists files, which have names.
            target: folder.join(source.file_name().unwrap_or_default()),
        })
    };

    let mut times = Vec::with_capacity(passes);
    let mut outcomes = Vec::new();
    for _ in 0..passes {
        let start = Instant::now();
        outcomes = backend
            .map_fn(make_thumbnail, tasks())
            // One image per task: an image takes milliseconds, a task microseconds.
            .chunksize(1)
            // The task itself failing (a panic, a worker process dying) is that file's failure.
            .map(|result| result.unwrap_or_else(|error| Err(format!("the task failed: {error}"))))
            .collect();
        times.push(start.elapsed());
    }
    times.sort();
    let run = Run {
        backend: name,
        outcomes,
        elapsed: times[times.len() / 2],
    };

    let failed = sources.len() - run.written();
    println!(
        "{name}: {} thumbnails written, {failed} failed",
        run.written()
    );
    for (source, outcome) in sources.iter().zip(&run.outcomes) {
        if let Err(reason) = outcome {
            let file = source.file_name().unwrap_or_default().to_string_lossy();
            println!("  {file}: {reason}");
        }
    }
    Ok(run)
}

/// Runs in a pool thread or in a worker process: reads one image, shrinks it and writes the
/// thumbnail. Errors come back as text, which crosses a process boundary as is.
fn make_thumbnail(task: Task) -> Outcome {
    let image = image::open(&task.source).map_err(|error| error.to_string())?;
    let thumbnail = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    thumbnail
        .save(&task.target)
        .map_err(|error| error.to_string())?;
    Ok((thumbnail.width(), thumbnail.height()))
}

fn report(runs: &[Run]) {
    // Every backend runs the same function on the same files: anything else is a bug.
    let same = runs.iter().all(|run| run.outcomes == runs[0].outcomes);
    println!(
        "every backend made {} thumbnails",
        if same { "the same" } else { "DIFFERENT" }
    );

    println!(
        "\n{:<12} {:>9} {:>9} {:>9}",
        "backend", "seconds", "images/s", "speed-up"
    );
    let baseline = runs[0].images_per_second();
    for run in runs {
        println!(
            "{:<12} {:>9.3} {:>9.1} {:>8.2}x",
            run.backend,
            run.elapsed.as_secs_f64(),
            run.images_per_second(),
            run.images_per_second() / baseline
        );
    }
}
