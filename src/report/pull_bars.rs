//! The live display of an image pull, as `docker pull` shows it: one line per layer with its
//! id and Docker's status, plus a byte bar while the layer is downloaded or extracted. Drawn
//! by indicatif in the live view's block (stderr when it is a terminal, else nowhere), beside
//! the job lines. It only draws: the reporter decides when, and nothing here knows about jobs
//! or registries.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Statuses after which a layer has all its bytes (Docker sends them without a byte count).
const TRANSFERRED: [&str; 2] = ["Verifying Checksum", "Download complete"];
/// Statuses that end a layer: no bar any more, only the status.
const DONE: [&str; 2] = ["Pull complete", "Already exists"];

/// The layers of the pulls in progress, in the order Docker announced them.
pub struct PullBars {
    multi: MultiProgress,
    layers: HashMap<String, Layer>,
    status_only: ProgressStyle,
    transfer: ProgressStyle,
}

struct Layer {
    bar: ProgressBar,
    /// The image whose pull last reported this layer (images can share a layer).
    image: String,
    /// Whether the bar style (rather than the status-only one) is in use.
    transferring: bool,
}

impl PullBars {
    /// Layer lines in `multi` (shared with the job lines); `color` makes layer ids bold.
    pub fn new(multi: MultiProgress, color: bool) -> PullBars {
        let prefix = if color { "{prefix:.bold}" } else { "{prefix}" };
        let style = |template: String| {
            ProgressStyle::with_template(&template)
                .expect("the templates are valid")
                .progress_chars("=> ")
        };
        PullBars {
            multi,
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

    /// Shows one progress report of `layer` of `image`.
    pub fn update(
        &mut self,
        image: &str,
        layer: &str,
        status: &str,
        bytes: (Option<u64>, Option<u64>),
    ) {
        let (current, total) = bytes;
        if !self.layers.contains_key(layer) {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(self.status_only.clone());
            bar.set_prefix(layer.to_string());
            let entry = Layer {
                bar,
                image: String::new(),
                transferring: false,
            };
            self.layers.insert(layer.to_string(), entry);
        }
        let entry = self.layers.get_mut(layer).expect("inserted above");
        image.clone_into(&mut entry.image);
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

    /// Removes the lines of `image`'s pull: it ended, either way.
    pub fn end(&mut self, image: &str) {
        let ended: Vec<String> = self
            .layers
            .iter()
            .filter(|(_, l)| l.image == image)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            if let Some(layer) = self.layers.remove(&id) {
                self.remove(&layer);
            }
        }
    }

    /// Removes every layer line.
    pub fn clear(&mut self) {
        for (_, layer) in std::mem::take(&mut self.layers) {
            self.remove(&layer);
        }
    }

    fn remove(&self, layer: &Layer) {
        layer.bar.finish_and_clear();
        self.multi.remove(&layer.bar);
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

    use indicatif::ProgressDrawTarget;

    fn bars() -> PullBars {
        PullBars::new(
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            false,
        )
    }

    #[test]
    fn a_layer_gets_a_bar_while_bytes_move_and_loses_it_when_done() {
        let mut b = bars();
        b.update("img", "fa71c512a4f3", "Pulling fs layer", (None, None));
        assert_eq!(
            b.line("fa71c512a4f3"),
            Some(("Pulling fs layer".into(), 0, Some(0), false))
        );
        b.update(
            "img",
            "fa71c512a4f3",
            "Downloading",
            (Some(65_536), Some(6_291_456)),
        );
        assert_eq!(
            b.line("fa71c512a4f3"),
            Some(("Downloading".into(), 65_536, Some(6_291_456), true))
        );
        // Docker throttles byte counts: the last one seen is often far from the end.
        b.update("img", "fa71c512a4f3", "Download complete", (None, None));
        assert_eq!(
            b.line("fa71c512a4f3"),
            Some(("Download complete".into(), 6_291_456, Some(6_291_456), true))
        );
        b.update("img", "fa71c512a4f3", "Pull complete", (None, None));
        let (status, _, _, transferring) = b.line("fa71c512a4f3").unwrap();
        assert_eq!((status.as_str(), transferring), ("Pull complete", false));
    }

    #[test]
    fn layers_that_exist_stay_status_lines_and_clear_empties_the_display() {
        let mut b = bars();
        b.update("img", "7cd02be59f18", "Already exists", (None, None));
        b.update("img", "0b1ecb2a5c22", "Waiting", (None, None));
        assert_eq!(
            b.line("7cd02be59f18"),
            Some(("Already exists".into(), 0, Some(0), false))
        );
        assert!(!b.is_empty());
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.line("0b1ecb2a5c22"), None);
    }

    #[test]
    fn the_end_of_one_pull_leaves_the_other_pulls_lines() {
        // Two jobs of a workflow pulling at once.
        let mut b = bars();
        b.update("a", "7cd02be59f18", "Waiting", (None, None));
        b.update("b", "0b1ecb2a5c22", "Waiting", (None, None));
        b.end("a");
        assert_eq!(b.line("7cd02be59f18"), None);
        assert!(b.line("0b1ecb2a5c22").is_some());
        b.end("b");
        assert!(b.is_empty());
    }
}
