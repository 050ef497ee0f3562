//! Fetch several URLs at once on an [`IoPool`], and compare with fetching them one by one.
//!
//! `cargo run --release --example scraper`
//!
//! Waiting on a socket is the textbook case for a thread pool: the threads sleep in the kernel,
//! so a handful of them overlap the waits and the total time drops from the sum of the
//! responses to the slowest one. The example needs no internet: it starts its own small HTTP
//! server on 127.0.0.1 (any free port) that answers `/delay/N` after N milliseconds and
//! `/status/N` with status N, and fetches from it with a real blocking HTTP client, `ureq`.
//! The URLs give every outcome a scraper meets: 200, 404, 500, and a response slower than the
//! client's timeout. Each run prints how many requests it had in flight at most, which is
//! what the pool changes, and the times it measured.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, IoPool, ParMapExt};

/// The client gives up on a response after this long.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);

/// What one URL gave.
#[derive(Debug)]
enum Outcome {
    /// A 2xx response with its body's length.
    Ok { status: u16, bytes: usize },
    /// The server answered with an error status.
    HttpError { status: u16 },
    /// No full response within `CLIENT_TIMEOUT`.
    Timeout,
    /// Anything else: refused, reset, malformed.
    Failed(String),
}

/// Requests the client has in flight now, and the most at once since the last reset.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static PEAK_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn main() -> Result<(), Box<dyn Error>> {
    let server = start_server()?;
    println!("test server on http://{server}");

    let paths = [
        "/delay/200",
        "/delay/300",
        "/delay/250",
        "/delay/150",
        "/status/404",
        "/status/500",
        "/delay/2000", // slower than the client's timeout
    ];
    let urls: Vec<String> = paths
        .iter()
        .map(|path| format!("http://{server}{path}"))
        .collect();

    // One agent for all requests: it is cheap to clone and shares its connection pool.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(CLIENT_TIMEOUT))
        // A 404 is an answer to report, not an error of the client.
        .http_status_as_error(false)
        // The server is on loopback: a proxy from the environment must not get in the way.
        .proxy(None)
        .build()
        .into();

    println!("\nsequential:");
    let start = Instant::now();
    for url in &urls {
        report(url, &fetch(&agent, url));
    }
    let sequential = start.elapsed();
    let sequential_peak = PEAK_IN_FLIGHT.swap(0, Ordering::SeqCst);

    println!("\nconcurrent, on an IoPool of {} threads:", urls.len());
    let pool = IoPool::builder()
        .max_workers(urls.len())
        .thread_name_prefix("fetch")
        .build()?;
    let start = Instant::now();
    // Each URL is fetched on a pool thread; the results come back in input order. `par_map`
    // needs a `'static` closure, so each task gets its own clone of the agent.
    let fetched = urls
        .iter()
        .cloned()
        .par_map(&pool, {
            let agent = agent.clone();
            move |url| fetch(&agent, &url)
        })
        // One URL per task: a chunk of several would fetch them one after another.
        .chunksize(1);
    for (url, outcome) in urls.iter().zip(fetched) {
        // `Err` here would be a panic inside `fetch`: report it like any other failure.
        let outcome = outcome.unwrap_or_else(|error| Outcome::Failed(error.to_string()));
        report(url, &outcome);
    }
    let concurrent = start.elapsed();
    let concurrent_peak = PEAK_IN_FLIGHT.swap(0, Ordering::SeqCst);
    pool.shutdown(true, false);

    println!();
    for (name, elapsed, peak) in [
        ("sequential", sequential, sequential_peak),
        ("concurrent", concurrent, concurrent_peak),
    ] {
        println!(
            "{name}: {:.2} s, at most {peak} request(s) in flight at once",
            elapsed.as_secs_f64()
        );
    }
    println!(
        "speed-up: {:.2}x (sequential time / concurrent time)",
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );
    Ok(())
}

/// Counts a request in flight for as long as it lives.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK_IN_FLIGHT.fetch_max(now, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// GETs `url` and sorts what happened into an [`Outcome`].
fn fetch(agent: &ureq::Agent, url: &str) -> Outcome {
    let _counted = InFlight::start();
    match agent.get(url).call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            if !response.status().is_success() {
                return Outcome::HttpError { status };
            }
            match response.body_mut().read_to_string() {
                Ok(body) => Outcome::Ok {
                    status,
                    bytes: body.len(),
                },
                Err(ureq::Error::Timeout(_)) => Outcome::Timeout,
                Err(error) => Outcome::Failed(error.to_string()),
            }
        }
        Err(ureq::Error::Timeout(_)) => Outcome::Timeout,
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

fn report(url: &str, outcome: &Outcome) {
    let what = match outcome {
        Outcome::Ok { status, bytes } => format!("{status} OK, {bytes} bytes"),
        Outcome::HttpError { status } => format!("{status} error"),
        Outcome::Timeout => format!("timed out after {CLIENT_TIMEOUT:?}"),
        Outcome::Failed(reason) => format!("failed: {reason}"),
    };
    println!("  {url:<40} {what}");
}

/// Starts the test server on a free loopback port and returns its address. It serves until
/// the process exits, a thread per connection, like the simplest blocking servers.
fn start_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                // A client that hung up early (the timed-out request) is not the server's
                // problem: drop the error with the connection.
                let _ = serve(stream);
            });
        }
    });
    Ok(address)
}

/// Answers one request: `/delay/N` sleeps N ms then says so, `/status/N` answers status N,
/// anything else is a 404.
fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read the headers up to the blank line, so the client sees its request consumed.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }

    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let number = |prefix: &str| path.strip_prefix(prefix)?.parse::<u64>().ok();
    let (status, body) = if let Some(ms) = number("/delay/") {
        thread::sleep(Duration::from_millis(ms));
        (200, format!("slept {ms} ms\n"))
    } else if let Some(status) = number("/status/") {
        (status, format!("status {status}\n"))
    } else {
        (404, "no such page\n".to_owned())
    };

    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
