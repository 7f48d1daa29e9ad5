//! Each job's (node's) own log file: the run's events of that job, rendered as a one-job run
//! prints them (no colors, no prefixes, no live block), written beside the other reporter.
//! `CIRCLE_BUILD_URL` points at it. A log that cannot be written is given up silently: the
//! run and its main output matter more.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;

use super::event::{Event, JobRef};
use super::terminal::Terminal;

/// Opens a job's log; `None` for no log.
pub type LogPaths = Box<dyn Fn(&JobRef) -> Option<File> + Send>;

pub(super) struct JobLogs {
    paths: LogPaths,
    open: HashMap<JobRef, Option<Terminal<BufWriter<File>>>>,
}

impl JobLogs {
    pub(super) fn new(paths: LogPaths) -> JobLogs {
        JobLogs {
            paths,
            open: HashMap::new(),
        }
    }

    pub(super) fn handle(&mut self, event: &Event) {
        let Some(job) = event.job() else {
            return;
        };
        let paths = &self.paths;
        let log = self
            .open
            .entry(job.clone())
            .or_insert_with(|| open(paths(job)?));
        if let Some(log) = log {
            log.handle(event);
        }
    }

    pub(super) fn flush(&mut self) {
        for log in self.open.values_mut().flatten() {
            log.flush();
        }
    }
}

fn open(file: File) -> Option<Terminal<BufWriter<File>>> {
    Some(Terminal::new(BufWriter::new(file), false))
}

impl Drop for JobLogs {
    fn drop(&mut self) {
        for log in self.open.values_mut().flatten() {
            log.finish();
            log.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Stream;

    #[test]
    fn each_job_gets_its_own_plain_log() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut logs = JobLogs::new(Box::new(move |job: &JobRef| {
            File::create(root.join(format!("{job}.log"))).ok()
        }));
        for (job, line) in [("a", "from a"), ("b", "from b"), ("a", "again a")] {
            logs.handle(&Event::Output {
                job: JobRef::new(job, None),
                step: 0,
                stream: Stream::Stdout,
                line: line.into(),
            });
        }
        drop(logs);
        let a = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
        assert_eq!(a, "from a\nagain a\n");
        let b = std::fs::read_to_string(dir.path().join("b.log")).unwrap();
        assert_eq!(b, "from b\n");
    }
}
