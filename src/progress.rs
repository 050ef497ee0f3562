//! [`Progress`]: a terminal progress bar over a map or [`as_completed`](crate::as_completed),
//! like tqdm's `thread_map` (feature `progress`).

use std::fmt;
use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;

/// The bar when the number of items is known: count, rate and time left.
const BAR_TEMPLATE: &str =
    "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} ({per_sec:1}, ETA {eta}) {msg}";
/// The bar when it is not (an input of unknown length): a spinner, the count and the rate.
const SPINNER_TEMPLATE: &str = "{spinner} {elapsed_precise} {pos} done ({per_sec:1}) {msg}";

/// How often a drawn bar redraws by itself, so that the spinner and the clock move while
/// the consumer waits for a slow item.
const TICK: Duration = Duration::from_millis(100);

/// An iterator that counts the items of a [`Map`](crate::Map),
/// [`MapUnordered`](crate::MapUnordered) or [`AsCompleted`](crate::AsCompleted) on a progress
/// bar, made by their `.progress()`.
///
/// The bar draws on standard error with the count, the rate and, when the total is known, the
/// time left; when standard error is not a terminal (a pipe, a file, a test) nothing is drawn
/// and the count is still kept. The total is what was left to yield when `.progress()` was
/// called: an [`AsCompleted`](crate::AsCompleted)'s remaining futures, or a map's remaining
/// items when its input knows its exact length (an `ExactSizeIterator` such as a `Vec`'s or a
/// range's); otherwise the bar is a spinner with a counter.
///
/// Every item counts, failed ones included, except the single `Err(Error::Timeout)` that ends
/// an iteration whose deadline passed: that item is not a task, so the bar stops where it
/// was and says "timed out". When the iteration ends, or the iterator is dropped before, the
/// bar stays on screen as it is, followed by a line break, so that what the program prints
/// next starts on a line of its own.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, InlineExecutor, ParMapExt};
///
/// # fn main() -> Result<(), Error> {
/// let executor = InlineExecutor::new();
/// let mut squares = (1..=4_u64).par_map(&executor, |x| x * x).progress();
/// assert_eq!(squares.total(), Some(4));
/// let sum: u64 = squares.by_ref().sum::<Result<u64, _>>()?;
/// assert_eq!((sum, squares.position()), (30, 4));
/// # Ok(())
/// # }
/// ```
pub struct Progress<I> {
    inner: I,
    bar: ProgressBar,
}

impl<I> Progress<I> {
    /// Wraps `inner`, with a bar of `total` items if it is known.
    pub(crate) fn new(inner: I, total: Option<usize>) -> Self {
        let total = total.map(|n| n as u64);
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
            .with_style(style(total.is_some()));
        // A ticking bar costs a thread; a hidden one has nothing to redraw.
        if !bar.is_hidden() {
            bar.enable_steady_tick(TICK);
        }
        Progress { inner, bar }
    }

    /// How many items have been yielded through the bar.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// How many items the bar expects, if known (see the type's docs).
    pub fn total(&self) -> Option<u64> {
        self.bar.length()
    }

    /// The indicatif bar itself, to set a message (`bar().set_message(..)`) or a style.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Leaves the bar on screen as it is (`abandon`, not `finish`, which would move the count
    /// to the total), with `message` if given, then ends its line: indicatif leaves the cursor
    /// after the bar, where the program's next line would otherwise start. Once only.
    fn end(&self, message: Option<&'static str>) {
        if self.bar.is_finished() {
            return;
        }
        match message {
            Some(message) => self.bar.abandon_with_message(message),
            None => self.bar.abandon(),
        }
        // `abandon` has drawn the bar's last state and stopped its ticking thread, so nothing
        // draws after this line break. Nothing to end on a hidden bar.
        if !self.bar.is_hidden() {
            let _ = writeln!(std::io::stderr());
        }
    }
}

impl<I> Drop for Progress<I> {
    fn drop(&mut self) {
        self.end(None);
    }
}

/// The style for a bar of known or unknown length. The templates are constants that a unit
/// test parses, so the fallback to indicatif's default style is only a guard.
fn style(known_total: bool) -> ProgressStyle {
    if known_total {
        ProgressStyle::with_template(BAR_TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar())
    } else {
        ProgressStyle::with_template(SPINNER_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }
}

impl<I, T> Iterator for Progress<I>
where
    I: Iterator<Item = Result<T, Error>>,
{
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        match &item {
            // The deadline's one error ends the iteration; the items it cut off never ran.
            Some(Err(Error::Timeout)) => self.end(Some("timed out")),
            Some(_) => self.bar.inc(1),
            None => self.end(None),
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<I: fmt::Debug> fmt::Debug for Progress<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("inner", &self.inner)
            .field("position", &self.position())
            .field("total", &self.total())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(SPINNER_TEMPLATE).is_ok());
    }
}
