//! The runs kept in the repository's `.localci/runs/<run>/`: a `run.json` record per run
//! (workflow, build, each job's status and where its workspace layers and test results are),
//! each job's artifacts and test results, its log, and the workspace layers. Later runs read
//! them: `--rerun-failed` reuses the jobs that passed, `localci execute <job>` attaches the
//! workspace of the latest workflow run, `circleci tests split --split-by=timings` reads the
//! timings of earlier results. Also the local build-number counter. Synchronous std I/O;
//! records are written atomically (temp file + rename). The repository is untrusted: every
//! folder and file below it is opened without following symlinks ([`SafeDir`]).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::safe_path::SafeDir;

/// The record of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// `None` for a run of one job.
    pub workflow: Option<String>,
    /// Seconds since the epoch.
    pub started: u64,
    /// Milliseconds since the epoch: tells apart runs started in the same second (a trivial
    /// job takes less than one). 0 in records of older versions.
    #[serde(default)]
    pub started_ms: u64,
    pub branch: Option<String>,
    pub tag: Option<String>,
    /// `CIRCLE_WORKFLOW_WORKSPACE_ID`: the id of the run whose workspace this one continues.
    pub workspace_id: String,
    pub jobs: BTreeMap<String, JobRecord>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `success`, `failed`, `canceled`, `not_run`, `on_hold`, `skipped`, or `running`.
    pub status: String,
    /// Its workspace layers folder (in this run's folder, or an earlier run's when reused).
    pub layers: Option<PathBuf>,
    /// Where its test results were stored.
    pub results: Option<PathBuf>,
}

/// `.localci/` of one repository.
#[derive(Clone, Debug)]
pub struct RunStore {
    /// The repository (trusted as given; nothing below it is).
    repo: PathBuf,
    root: PathBuf,
}

const RECORD: &str = "run.json";

impl RunStore {
    /// The store of the repository (or folder) at `repo`.
    pub fn new(repo: &Path) -> RunStore {
        RunStore {
            repo: repo.to_path_buf(),
            root: repo.join(".localci"),
        }
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.root.join("runs").join(folder_name(run))
    }

    /// A job's folder (artifacts, test results); `node` for the nodes of a parallel job.
    pub fn job_dir(&self, run: &str, job: &str, node: Option<u32>) -> PathBuf {
        let dir = self.run_dir(run).join(folder_name(job));
        match node {
            Some(n) => dir.join(format!("node-{n}")),
            None => dir,
        }
    }

    /// A job's workspace layers.
    pub fn layers_dir(&self, run: &str, job: &str) -> PathBuf {
        self.run_dir(run).join("workspace").join(folder_name(job))
    }

    /// A job's (node's) log, what `CIRCLE_BUILD_URL` points at.
    pub fn log_path(&self, run: &str, job: &str, node: Option<u32>) -> PathBuf {
        let name = match node {
            Some(n) => format!("{}-node-{n}.log", folder_name(job)),
            None => format!("{}.log", folder_name(job)),
        };
        self.run_dir(run).join("logs").join(name)
    }

    /// A folder below the repository, created without following symlinks.
    fn safe_dir(&self, path: &Path) -> io::Result<SafeDir> {
        SafeDir::create(path, &self.repo)
    }

    /// Opens a job's log for writing (created, or emptied), without following symlinks.
    pub fn open_log(&self, run: &str, job: &str, node: Option<u32>) -> io::Result<File> {
        let path = self.log_path(run, job, node);
        let dir = self.safe_dir(path.parent().expect("a log is in a folder"))?;
        let file = dir.open_rw(path.file_name().expect("a log has a name"), 0o644)?;
        file.set_len(0)?;
        Ok(file)
    }

    /// Writes the record atomically.
    pub fn save(&self, record: &RunRecord) -> io::Result<()> {
        let dir = self.safe_dir(&self.run_dir(&record.id))?;
        let text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        let tmp = format!(".{RECORD}.{}.tmp", std::process::id());
        dir.remove(OsStr::new(&tmp))?;
        {
            let mut file = dir.create_file(OsStr::new(&tmp), 0o644)?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        dir.rename(OsStr::new(&tmp), &dir, OsStr::new(RECORD))
    }

    /// Every readable record, newest first (a symlink on the way is not followed).
    pub fn records(&self) -> Vec<RunRecord> {
        let Ok(anchor) = SafeDir::open_anchor(&self.repo) else {
            return Vec::new();
        };
        let Ok(Some(runs)) = anchor.open_dirs(Path::new(".localci/runs")) else {
            return Vec::new();
        };
        let mut records: Vec<RunRecord> = runs
            .names()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| read_record(&runs, name))
            .collect();
        records.sort_by(|a: &RunRecord, b| {
            (b.started, b.started_ms, &b.id).cmp(&(a.started, a.started_ms, &a.id))
        });
        records
    }

    /// Removes the staging folders that killed runs left in the job folders of earlier runs
    /// (their copies never finished); a live run's are kept (see `staging`).
    pub fn sweep_staging(&self) -> usize {
        let Ok(anchor) = SafeDir::open_anchor(&self.repo) else {
            return 0;
        };
        let Ok(Some(runs)) = anchor.open_dirs(Path::new(".localci/runs")) else {
            return 0;
        };
        let mut removed = 0;
        for run in runs.names().unwrap_or_default() {
            let Ok(Some(run)) = runs.open_dirs(Path::new(&run)) else {
                continue;
            };
            for job in run.names().unwrap_or_default() {
                let Ok(Some(job)) = run.open_dirs(Path::new(&job)) else {
                    continue;
                };
                removed += super::staging::sweep(&job).unwrap_or(0);
                for node in job.names().unwrap_or_default() {
                    if node.to_string_lossy().starts_with("node-")
                        && let Ok(Some(node)) = job.open_dirs(Path::new(&node))
                    {
                        removed += super::staging::sweep(&node).unwrap_or(0);
                    }
                }
            }
        }
        removed
    }

    /// The next local build number (`CIRCLE_BUILD_NUM`): grows by one per job, across runs,
    /// never empty. The counter file is locked while it is read and written.
    pub fn next_build_num(&self) -> io::Result<u64> {
        let dir = self.safe_dir(&self.root)?;
        let mut file = dir.open_rw(OsStr::new("build-num"), 0o644)?;
        file.lock()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let next = text.trim().parse::<u64>().unwrap_or(0) + 1;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(format!("{next}\n").as_bytes())?;
        file.sync_all()?;
        Ok(next)
    }
}

/// A run's record, when its folder and file are real (no symlink) and it parses.
fn read_record(runs: &SafeDir, name: &OsStr) -> Option<RunRecord> {
    let dir = runs.open_dirs(Path::new(name)).ok()??;
    let mut file = dir.open_file(OsStr::new(RECORD)).ok()??;
    let mut bytes = Vec::new();
    // A record is small; a huge one is not ours.
    (&mut file).take(16 << 20).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A name as one safe folder name: a job name like `../x` or `a/b` (legal in a workflow
/// `name:`) must not lead out of the run's folder.
pub fn folder_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        clean.replace('.', "_") + "_"
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_the_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        for (id, started) in [("a", 10), ("b", 30), ("c", 20)] {
            let mut record = RunRecord {
                id: id.into(),
                workflow: Some("ci".into()),
                started,
                ..RunRecord::default()
            };
            record.jobs.insert(
                "build".into(),
                JobRecord {
                    status: "success".into(),
                    ..JobRecord::default()
                },
            );
            store.save(&record).unwrap();
        }
        let ids: Vec<String> = store.records().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["b", "c", "a"], "newest first");
        // Two runs in the same second: the milliseconds tell, whatever their ids.
        for (id, ms) in [("y", 30_200), ("z", 30_100)] {
            let record = RunRecord {
                id: id.into(),
                started: 30,
                started_ms: ms,
                ..RunRecord::default()
            };
            store.save(&record).unwrap();
        }
        let ids: Vec<String> = store.records().into_iter().map(|r| r.id).collect();
        assert_eq!(ids[..2], ["y", "z"], "the later in the same second first");
    }

    #[test]
    fn symlinks_in_the_store_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join(".localci")).unwrap();
        let store = RunStore::new(dir.path());
        assert!(store.next_build_num().is_err());
        let record = RunRecord {
            id: "x".into(),
            ..RunRecord::default()
        };
        assert!(store.save(&record).is_err());
        assert!(store.open_log("x", "build", None).is_err());
        assert!(store.records().is_empty());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn build_numbers_grow() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        assert_eq!(store.next_build_num().unwrap(), 1);
        assert_eq!(store.next_build_num().unwrap(), 2);
        assert_eq!(RunStore::new(dir.path()).next_build_num().unwrap(), 3);
    }

    #[test]
    fn job_names_cannot_leave_the_run_folder() {
        assert_eq!(folder_name("../../etc"), ".._.._etc");
        assert_eq!(folder_name(".."), "___");
        assert_eq!(folder_name("a/b"), "a_b");
        assert_eq!(folder_name("test-3.12"), "test-3.12");
        assert_eq!(folder_name(""), "_");
    }
}
