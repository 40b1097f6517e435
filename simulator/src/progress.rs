//! The progress bar a run draws on stderr (indicatif), or a hidden one that costs nothing when
//! stderr is not a terminal, so piped and `--json` output stays clean.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `length` steps labelled `phase`; hidden unless `shown`.
pub fn bar(shown: bool, length: u64, phase: &str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {wide_bar} {msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(phase.to_owned());
    bar
}
