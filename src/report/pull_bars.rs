//! The live display of an image pull, as `docker pull` shows it: one line per layer with its
//! id and Docker's status, plus a byte bar while the layer is downloaded or extracted. Drawn
//! by indicatif on its own target (stderr when it is a terminal, else nowhere). It only
//! draws: the reporter decides when, and nothing here knows about jobs or registries.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Statuses after which a layer has all its bytes (Docker sends them without a byte count).
const TRANSFERRED: [&str; 2] = ["Verifying Checksum", "Download complete"];
/// Statuses that end a layer: no bar any more, only the status.
const DONE: [&str; 2] = ["Pull complete", "Already exists"];

/// The layers of the pull in progress, in the order Docker announced them.
pub struct PullBars {
    multi: MultiProgress,
    layers: HashMap<String, Layer>,
    status_only: ProgressStyle,
    transfer: ProgressStyle,
}

struct Layer {
    bar: ProgressBar,
    /// Whether the bar style (rather than the status-only one) is in use.
    transferring: bool,
}

impl PullBars {
    /// `color` makes layer ids bold.
    pub fn new(target: ProgressDrawTarget, color: bool) -> PullBars {
        let prefix = if color { "{prefix:.bold}" } else { "{prefix}" };
        let style = |template: String| {
            ProgressStyle::with_template(&template)
                .expect("the templates are valid")
                .progress_chars("=> ")
        };
        PullBars {
            multi: MultiProgress::with_draw_target(target),
            layers: HashMap::new(),
            status_only: style(format!("{prefix} {{msg}}")),
            // 12 + 1 + 18 + 1 + 25 + 1 + 19 ("64.00 KiB/6.00 MiB") fits in 80 columns.
            transfer: style(format!(
                "{prefix} {{msg:<18}} {{bar:25}} {{bytes}}/{{total_bytes}}"
            )),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Shows one progress report of `layer`.
    pub fn update(&mut self, layer: &str, status: &str, current: Option<u64>, total: Option<u64>) {
        if !self.layers.contains_key(layer) {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(self.status_only.clone());
            bar.set_prefix(layer.to_string());
            let entry = Layer {
                bar,
                transferring: false,
            };
            self.layers.insert(layer.to_string(), entry);
        }
        let entry = self.layers.get_mut(layer).expect("inserted above");
        match (current, total) {
            (Some(current), Some(total)) if total > 0 => {
                if !entry.transferring {
                    entry.bar.set_style(self.transfer.clone());
                    entry.transferring = true;
                }
                entry.bar.set_length(total);
                entry.bar.set_position(current.min(total));
            }
            _ if TRANSFERRED.contains(&status) => {
                if let Some(length) = entry.bar.length() {
                    entry.bar.set_position(length);
                }
            }
            _ if DONE.contains(&status) && entry.transferring => {
                entry.bar.set_style(self.status_only.clone());
                entry.transferring = false;
            }
            _ => {}
        }
        // Last: a new style is only drawn by the next change, and this is one.
        entry.bar.set_message(status.to_string());
    }

    /// Removes every line of the display, so what follows starts on a clean line.
    pub fn clear(&mut self) {
        if self.layers.is_empty() {
            return;
        }
        for (_, layer) in self.layers.drain() {
            layer.bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }

    #[cfg(test)]
    fn line(&self, layer: &str) -> Option<(String, u64, Option<u64>, bool)> {
        let entry = self.layers.get(layer)?;
        let bar = &entry.bar;
        Some((
            bar.message(),
            bar.position(),
            bar.length(),
            entry.transferring,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> PullBars {
        PullBars::new(ProgressDrawTarget::hidden(), false)
    }

    #[test]
    fn a_layer_gets_a_bar_while_bytes_move_and_loses_it_when_done() {
        let mut b = bars();
        b.update("fa71c512a4f3", "Pulling fs layer", None, None);
        assert_eq!(
            b.line("fa71c512a4f3"),
            Some(("Pulling fs layer".into(), 0, Some(0), false))
        );
        b.update("fa71c512a4f3", "Downloading", Some(65_536), Some(6_291_456));
        assert_eq!(
            b.line("fa71c512a4f3"),
            Some(("Downloading".into(), 65_536, Some(6_291_456), true))
        );
        // Docker throttles byte counts: the last one seen is often far from the end.
        b.update("fa71c512a4f3", "Download complete", None, None);
        assert_eq!(
            b.line("fa71c512a4f3"),
            Some(("Download complete".into(), 6_291_456, Some(6_291_456), true))
        );
        b.update("fa71c512a4f3", "Pull complete", None, None);
        let (status, _, _, transferring) = b.line("fa71c512a4f3").unwrap();
        assert_eq!((status.as_str(), transferring), ("Pull complete", false));
    }

    #[test]
    fn layers_that_exist_stay_status_lines_and_clear_empties_the_display() {
        let mut b = bars();
        b.update("7cd02be59f18", "Already exists", None, None);
        b.update("0b1ecb2a5c22", "Waiting", None, None);
        assert_eq!(
            b.line("7cd02be59f18"),
            Some(("Already exists".into(), 0, Some(0), false))
        );
        assert!(!b.is_empty());
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.line("0b1ecb2a5c22"), None);
    }
}
