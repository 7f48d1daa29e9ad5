//! `localci execute <job> --watch` on the host side: which runs may be watched (one job, in a
//! git repository), and the watcher that turns file-system events of the checkout's files into
//! debounced [`Change`]s for the engine.
//!
//! The watcher uses the `notify` crate (inotify on Linux, FSEvents on macOS) on the folders
//! that hold files of the checkout, one by one (not recursively: an ignored `node_modules/` or
//! `target/` of many thousand folders costs nothing), and adds the folders that appear. Events
//! under `.git/`, localci's own `.localci/` and the run's artifact and cache folders are not
//! changes; nor are reads. After the first event it waits until [`QUIET`] passes without one
//! (at most [`LONGEST_WAIT`]), then asks git which of the paths it ignores
//! (`git check-ignore`): a change of ignored files only reruns nothing.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Prepared;
use crate::diagnostic::Diagnostic;
use crate::engine::{Change, Changes, EngineError};
use crate::frontend::Front;
use crate::report::Events;

/// Events closer together than this are one change (an editor's save, a `git checkout`).
const QUIET: Duration = Duration::from_millis(200);
/// A stream of events that never pauses still makes a change after this long.
const LONGEST_WAIT: Duration = Duration::from_secs(2);
/// Changed paths named in a change (the count says how many there were).
const NAMED: usize = 10;

/// Checks that the prepared run can be watched; returns the folder to watch.
pub(super) fn check(front: &Front, prepared: &Prepared) -> Result<PathBuf, Vec<Diagnostic>> {
    if !prepared.single {
        return Err(vec![
            Diagnostic::bare("--watch reruns one job, not a workflow").with_hint(
                "name the job to watch: localci execute <job> --watch (localci list shows the jobs)",
            ),
        ]);
    }
    front.repo.root.clone().ok_or_else(|| {
        vec![
            Diagnostic::bare(
                "--watch needs a git repository: it watches the files the checkout sends",
            )
            .with_hint("run `git init` in the project, then localci execute <job> --watch"),
        ]
    })
}

/// A running watcher; dropping it stops watching.
pub(crate) struct Watcher {
    task: JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to watch: the repository, and the folders under it that are localci's own output.
pub(crate) struct Watched {
    pub(crate) root: PathBuf,
    pub(crate) own: Vec<PathBuf>,
}

/// Starts watching `watched.root`; a change comes on the returned channel. `events` says what
/// is watched and warns when the watcher fails later.
pub(crate) fn start(watched: Watched, events: Events) -> Result<(Watcher, Changes), EngineError> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let inner = notify::recommended_watcher(move |event| {
        let _ = raw_tx.send(event);
    })
    .map_err(|e| setup_error(&watched.root, &e))?;
    let inner = Arc::new(Mutex::new(inner));
    let folders = checkout_folders(&watched.root).map_err(|e| {
        EngineError::Setup(format!(
            "--watch: cannot list the files of {}: {e}",
            watched.root.display()
        ))
    })?;
    let mut added = 0usize;
    for folder in &folders {
        let mut w = inner.lock().expect("never poisoned");
        match w.watch(folder, RecursiveMode::NonRecursive) {
            Ok(()) => added += 1,
            // Listed but gone since: nothing there to watch.
            Err(e) if matches!(&e.kind, notify::ErrorKind::PathNotFound) => {}
            Err(e) => return Err(setup_error(folder, &e)),
        }
    }
    events.info(format!(
        "Watching {added} folder(s) of {} for changes to the checkout's files",
        watched.root.display()
    ));
    let (tx, rx) = watch::channel(Change::default());
    let task = tokio::spawn(debounce(raw_rx, tx, inner, watched, events));
    Ok((Watcher { task }, rx))
}

fn setup_error(path: &Path, e: &notify::Error) -> EngineError {
    EngineError::Setup(format!(
        "--watch: cannot watch {}: {e} (on Linux, raise fs.inotify.max_user_watches if the limit was reached)",
        path.display()
    ))
}

type Raw = notify::Result<notify::Event>;

/// Turns raw events into changes until the watcher is dropped.
async fn debounce(
    mut raw: mpsc::UnboundedReceiver<Raw>,
    tx: watch::Sender<Change>,
    inner: Arc<Mutex<notify::RecommendedWatcher>>,
    watched: Watched,
    events: Events,
) {
    let mut seq = 0u64;
    while let Some(first) = raw.recv().await {
        let mut batch = Batch::default();
        batch.add(first, &watched, &events);
        if batch.is_empty() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + LONGEST_WAIT;
        loop {
            let quiet = tokio::time::sleep(QUIET);
            tokio::select! {
                next = raw.recv() => match next {
                    Some(event) => batch.add(event, &watched, &events),
                    None => return,
                },
                () = quiet => break,
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        let root = watched.root.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let paths = not_ignored(&root, batch.paths)?;
            let folders = not_ignored(&root, batch.new_folders)?;
            Ok::<_, std::io::Error>((paths, folders))
        })
        .await;
        let (paths, folders) = match checked {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                events.warning(format!("--watch: git check-ignore failed: {e}"));
                continue;
            }
            Err(_) => return,
        };
        watch_new_folders(&inner, &watched, &folders);
        if paths.is_empty() && !batch.rescan {
            continue;
        }
        seq += 1;
        let shown = paths
            .iter()
            .take(NAMED)
            .map(|p| p.display().to_string())
            .collect();
        let change = Change {
            seq,
            paths: shown,
            count: paths.len(),
        };
        if tx.send(change).is_err() {
            return; // every job stopped watching
        }
    }
}

/// The paths of one debounced change, relative to the root.
#[derive(Default)]
struct Batch {
    paths: BTreeSet<PathBuf>,
    /// Folders that appeared: watched too once git says they are not ignored.
    new_folders: BTreeSet<PathBuf>,
    /// The watcher lost events (its queue overflowed): something changed.
    rescan: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.rescan
    }

    fn add(&mut self, event: Raw, watched: &Watched, events: &Events) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                events.warning(format!("--watch: {e}"));
                self.rescan = true;
                return;
            }
        };
        if event.need_rescan() {
            self.rescan = true;
        }
        if !is_change(&event.kind) {
            return;
        }
        for path in &event.paths {
            let Some(rel) = relevant(path, watched) else {
                continue;
            };
            if matches!(event.kind, EventKind::Create(_)) && path.is_dir() {
                self.new_folders.insert(rel.clone());
            }
            self.paths.insert(rel);
        }
    }
}

/// Writes, creations, removals, renames and metadata changes; not reads (the checkout reads
/// every file it sends, and that must not start a rerun).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Other => false,
    }
}

/// `path` relative to the root when it may be a file of the checkout: not git's own data, not
/// localci's output.
fn relevant(path: &Path, watched: &Watched) -> Option<PathBuf> {
    if watched.own.iter().any(|own| path.starts_with(own)) {
        return None;
    }
    let rel = path.strip_prefix(&watched.root).ok()?;
    match rel.components().next() {
        None => None,
        Some(Component::Normal(first)) if first == ".git" || first == ".localci" => None,
        Some(_) => Some(rel.to_path_buf()),
    }
}

/// The root and every folder that holds a file of the checkout (tracked, or untracked and not
/// ignored), absolute.
fn checkout_folders(root: &Path) -> std::io::Result<BTreeSet<PathBuf>> {
    let listed = git(root, &crate::git::CHECKOUT_FILES, None)?;
    let mut folders = BTreeSet::from([root.to_path_buf()]);
    for rel in crate::git::checkout_paths(&listed) {
        for parent in rel.ancestors().skip(1) {
            if parent.as_os_str().is_empty() || !folders.insert(root.join(parent)) {
                break;
            }
        }
    }
    Ok(folders)
}

/// Watches folders that appeared, and the folders in them that git does not ignore.
fn watch_new_folders(
    inner: &Mutex<notify::RecommendedWatcher>,
    watched: &Watched,
    folders: &[PathBuf],
) {
    let mut level: Vec<PathBuf> = folders.to_vec();
    while !level.is_empty() {
        let mut next = Vec::new();
        for rel in &level {
            let dir = watched.root.join(rel);
            let mut w = inner.lock().expect("never poisoned");
            // A folder gone again, or one beyond the watcher's limit: its files still reach
            // the container through the checkout of the next rerun.
            if w.watch(&dir, RecursiveMode::NonRecursive).is_err() {
                continue;
            }
            drop(w);
            if let Ok(children) = std::fs::read_dir(&dir) {
                next.extend(
                    children
                        .flatten()
                        .filter(|c| c.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|c| rel.join(c.file_name())),
                );
            }
        }
        next.retain(|p| relevant(&watched.root.join(p), watched).is_some());
        level = not_ignored(&watched.root, next.into_iter().collect()).unwrap_or_default();
    }
}

/// The paths git does not ignore (tracked paths never are), in order.
fn not_ignored(root: &Path, paths: BTreeSet<PathBuf>) -> std::io::Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = Vec::new();
    for p in &paths {
        input.extend_from_slice(p.to_string_lossy().as_bytes());
        input.push(0);
    }
    let out = git(root, &["check-ignore", "--stdin", "-z"], Some(&input))?;
    let ignored: BTreeSet<PathBuf> = out
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect();
    Ok(paths.into_iter().filter(|p| !ignored.contains(p)).collect())
}

/// Runs git in `root`; exit code 1 is an answer (`check-ignore`: nothing ignored).
fn git(root: &Path, args: &[&str], input: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    match out.status.code() {
        Some(0 | 1) => Ok(out.stdout),
        _ => Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched() -> Watched {
        Watched {
            root: PathBuf::from("/repo"),
            own: vec![PathBuf::from("/repo/out/artifacts")],
        }
    }

    #[test]
    fn git_data_and_localci_output_are_not_changes() {
        let w = watched();
        assert_eq!(
            relevant(Path::new("/repo/src/app.py"), &w),
            Some(PathBuf::from("src/app.py"))
        );
        assert_eq!(relevant(Path::new("/repo/.git/index"), &w), None);
        assert_eq!(relevant(Path::new("/repo/.localci/runs/x/log"), &w), None);
        assert_eq!(relevant(Path::new("/repo/out/artifacts/a.txt"), &w), None);
        assert_eq!(relevant(Path::new("/elsewhere/a"), &w), None);
        assert_eq!(relevant(Path::new("/repo"), &w), None);
        assert_eq!(
            relevant(Path::new("/repo/.gitignore"), &w),
            Some(PathBuf::from(".gitignore"))
        );
    }

    #[test]
    fn reads_are_not_changes_but_writes_are() {
        use notify::event::{CreateKind, ModifyKind, RemoveKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
    }

    #[test]
    fn ignored_paths_are_left_out_and_tracked_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(root)
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q"]);
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.rs"), "x").unwrap();
        std::fs::write(root.join("kept.log"), "tracked though ignored").unwrap();
        run(&["add", "-f", "kept.log", "src/a.rs", ".gitignore"]);
        let paths: BTreeSet<PathBuf> = ["src/a.rs", "target/debug/x", "new.log", "kept.log", "b"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let kept = not_ignored(root, paths).unwrap();
        assert_eq!(
            kept,
            ["b", "kept.log", "src/a.rs"].map(PathBuf::from).to_vec()
        );
        let folders = checkout_folders(root).unwrap();
        assert_eq!(
            folders,
            BTreeSet::from([root.to_path_buf(), root.join("src")])
        );
    }
}
