//! The prefix that attributes a line to its job when several jobs run at once:
//! `build   | `, or `test[1] | ` for node 1 (`CIRCLE_NODE_INDEX`) of a parallel job, padded to
//! the widest job so the logs line up, and colored per job. It only formats; what gets a
//! prefix is the terminal reporter's decision.

use std::collections::HashMap;
use std::sync::Arc;

use super::event::JobRef;
use super::style::Paint;

/// Names longer than this are not padded further, so one long matrix name cannot push every
/// line far to the right (the name itself is never cut).
const MAX_WIDTH: usize = 32;

pub(crate) struct Prefixes {
    paint: Paint,
    width: usize,
    /// Color index of each job name, in the order jobs appeared; all nodes of a job share it.
    colors: HashMap<Arc<str>, usize>,
    /// Prefixes made so far, with the width they were padded to: one per output line would
    /// otherwise be formatted again and again.
    made: HashMap<JobRef, (usize, String)>,
}

impl Prefixes {
    pub(crate) fn new(paint: Paint) -> Prefixes {
        Prefixes {
            paint,
            width: 0,
            colors: HashMap::new(),
            made: HashMap::new(),
        }
    }

    /// Pads to the widest job the run announced, before any of them prints.
    pub(crate) fn announce(&mut self, jobs: &[String]) {
        for job in jobs {
            self.widen(job.chars().count());
            self.color_of(job);
        }
    }

    /// The job's name, padded and colored, without the separator (the live view uses it too).
    pub(crate) fn label(&mut self, job: &JobRef) -> String {
        let name = printable(&job.to_string());
        self.widen(name.chars().count());
        let color = self.color_of(&job.name);
        let padded = format!("{name:<width$}", width = self.width);
        self.paint.job(color, &padded)
    }

    /// `label | `: what goes in front of each of the job's lines.
    pub(crate) fn prefix(&mut self, job: &JobRef) -> &str {
        let fresh = self.made.get(job).is_some_and(|(w, _)| *w == self.width);
        if !fresh {
            let prefix = format!("{} | ", self.label(job));
            self.made.insert(job.clone(), (self.width, prefix));
        }
        &self.made[job].1
    }

    fn widen(&mut self, len: usize) {
        self.width = self.width.max(len.min(MAX_WIDTH));
    }

    fn color_of(&mut self, name: &str) -> usize {
        if let Some(&color) = self.colors.get(name) {
            return color;
        }
        let next = self.colors.len();
        self.colors.insert(Arc::from(name), next);
        next
    }
}

/// A job name comes from the config: a newline or an escape code in it must not break the
/// one-line-per-line rule or reach the terminal.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_padded_to_the_widest_announced_job_and_show_the_node() {
        let mut p = Prefixes::new(Paint::new(false));
        p.announce(&["build".into(), "integration".into()]);
        assert_eq!(p.prefix(&JobRef::new("build", None)), "build       | ");
        assert_eq!(p.prefix(&JobRef::new("test", Some(1))), "test[1]     | ");
        assert_eq!(p.prefix(&JobRef::new(&"x".repeat(40), None)).len(), 43);
        // The long name widened the column up to its cap, not beyond.
        assert_eq!(p.prefix(&JobRef::new("b", None)).len(), MAX_WIDTH + 3);
    }

    #[test]
    fn every_node_of_a_job_has_the_job_color_and_jobs_differ() {
        let mut p = Prefixes::new(Paint::new(true));
        let a0 = p.label(&JobRef::new("a", Some(0)));
        let a1 = p.label(&JobRef::new("a", Some(1)));
        let b = p.label(&JobRef::new("b", None));
        assert_eq!(a0[..5], a1[..5]);
        assert_ne!(a0[..5], b[..5]);
    }

    #[test]
    fn control_characters_of_a_job_name_never_reach_the_terminal() {
        let mut p = Prefixes::new(Paint::new(false));
        let label = p.label(&JobRef::new("a\nb\x1b[2J", None));
        assert_eq!(label, "a?b?[2J");
    }
}
