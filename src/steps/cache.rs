//! `save_cache` and `restore_cache` against the local cache store. Keys are rendered when the
//! step runs (`{{ checksum "file" }}` reads the file from the container). A save archives the
//! listed paths with their absolute locations (tar entries relative to `/`) straight from the
//! container into the store, never overwriting a key; a restore tries `key` then `keys`, each
//! as a prefix, takes the newest match, checks it whole and only then unpacks it at `/` (a
//! damaged entry is quarantined and the next match tried). A miss is a warning. Secrets in a
//! rendered key are replaced by a digest; Ctrl-C stops a save or restore at once.

use std::collections::HashMap;
use std::io::{self, Read};
use std::time::{Instant, SystemTime};

use super::StepOutcome;
use super::context::StepContext;
use super::process::collect;
use super::tarball::{self, blocking_reader};
use crate::backend::{BackendError, ExecSpec, Result};
use crate::engine::hold::{self, Moment};
use crate::report::mask::Secrets;
use crate::store::cache::Damage;
use crate::store::safe_path::SafeDir;
use crate::store::{CacheEntry, CacheStore, CacheWriter, SaveOutcome};
use crate::template::{self, Template, TemplateContext, TemplateError};
use crate::units::{format_age, format_bytes, format_go};

/// The pax global header key listing the saved paths; Docker ignores global headers when it
/// unpacks, and a restore reads it to create missing parent folders as the container user.
const ROOTS_KEY: &str = "LOCALCI.roots";

/// How many symlinks a `checksum` file may go through.
const MAX_LINK_HOPS: usize = 8;

pub async fn save(ctx: &StepContext, key: &str, paths: &[String]) -> Result<StepOutcome> {
    let rendered = render(ctx, key).await?;
    if ctx.cancel.is_cancelled() {
        return Ok(StepOutcome::Cancelled);
    }
    let key = match rendered {
        Ok(key) => key,
        Err(e) => return Ok(StepOutcome::failed(key_error(&e))),
    };
    let store = match open_store(ctx) {
        Ok(store) => store,
        Err(e) => return Ok(store_error(ctx, &e)),
    };
    if let Ok(Some(existing)) = store.get(&key) {
        ctx.events.info(format!(
            "Skipping cache generation, cache already exists for key: {key}\nFound one created {} ago",
            age(&existing)
        ));
        return Ok(StepOutcome::Passed { exit_code: None });
    }
    let roots: Vec<String> = paths.iter().map(|p| ctx.facts.resolve(p)).collect();
    let writer = match store.writer(&key) {
        Ok(w) => w,
        Err(e) => return Ok(store_error(ctx, &e)),
    };
    let started = Instant::now();
    let mut builder = tar::Builder::new(writer);
    if let Err(e) = write_roots(&mut builder, &roots) {
        return Ok(store_error(ctx, &e));
    }
    let mut saved = 0usize;
    for root in &roots {
        ctx.events.info(format!("Creating cache archive of {root}"));
        let stream = match ctx.backend.download(&ctx.primary, root).await {
            Ok(stream) => tarball::cancellable(
                hold::stream(Moment::SaveCache, &ctx.events, stream),
                ctx.cancel.clone(),
            ),
            Err(BackendError::NotFound(_)) => {
                ctx.events
                    .warning(format!("{root} does not exist; it is not in the cache"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let prefix = parent_prefix(root);
        // Not raced against Ctrl-C: the stream fails at once when cancelled, and the writer
        // must be dropped (its temporary file removed) before the run ends.
        let copied = tokio::task::spawn_blocking(move || {
            let result = copy_entries(&mut builder, blocking_reader(stream), &prefix);
            (builder, result)
        })
        .await;
        let (back, result) = copied.map_err(|e| BackendError::Api(e.to_string()))?;
        if ctx.cancel.is_cancelled() {
            drop(back);
            return Ok(StepOutcome::Cancelled);
        }
        builder = back;
        if let Err(e) = result {
            // A daemon that went away mid-copy is not the job's fault (exit 3, issue 9).
            if let Some(lost) = BackendError::lost_in(&e) {
                return Err(lost);
            }
            return Ok(StepOutcome::failed(format!("cannot archive {root}: {e}")));
        }
        saved += 1;
    }
    if saved == 0 {
        ctx.events.warning(format!(
            "none of the paths exist; no cache was saved for key {key}"
        ));
        return Ok(StepOutcome::Passed { exit_code: None });
    }
    let committed =
        tokio::task::spawn_blocking(move || builder.into_inner().and_then(CacheWriter::commit))
            .await
            .map_err(|e| BackendError::Api(e.to_string()))?;
    match committed {
        Ok(SaveOutcome::Saved(entry)) => ctx.events.info(format!(
            "Stored cache {key}: {} archived, {} on disk, in {}",
            format_bytes(entry.uncompressed_size),
            format_bytes(entry.size),
            format_go(started.elapsed())
        )),
        Ok(SaveOutcome::AlreadyExists(entry)) => ctx.events.info(format!(
            "Skipping cache generation, cache already exists for key: {key}\nFound one created {} ago (saved by a concurrent run)",
            age(&entry)
        )),
        Err(e) => return Ok(store_error(ctx, &e)),
    }
    Ok(StepOutcome::Passed { exit_code: None })
}

pub async fn restore(ctx: &StepContext, keys: &[String]) -> Result<StepOutcome> {
    let store = match open_store(ctx) {
        Ok(store) => store,
        Err(e) => {
            ctx.events.warning(format!(
                "cannot open the cache directory {}: {e}",
                ctx.settings.cache_dir.display()
            ));
            return Ok(StepOutcome::Passed { exit_code: None });
        }
    };
    for template in keys {
        let rendered = render(ctx, template).await?;
        if ctx.cancel.is_cancelled() {
            return Ok(StepOutcome::Cancelled);
        }
        let key = match rendered {
            Ok(key) => key,
            Err(e) => {
                ctx.events
                    .warning(format!("error computing cache key: {e}"));
                continue;
            }
        };
        // A damaged match is quarantined, so the next find gives the next newest one.
        loop {
            match store.find(&key) {
                Ok(Some(entry)) => match verified(&store, &entry).await? {
                    Ok(reader) => return unpack(ctx, &entry, reader).await,
                    Err(e) => {
                        if !damaged(ctx, &store, &entry, &e) {
                            break;
                        }
                    }
                },
                Ok(None) => {
                    ctx.events.info(format!("No cache is found for key: {key}"));
                    break;
                }
                Err(e) => {
                    ctx.events
                        .warning(format!("cannot read the cache store: {e}"));
                    break;
                }
            }
            if ctx.cancel.is_cancelled() {
                return Ok(StepOutcome::Cancelled);
            }
        }
    }
    ctx.events
        .warning("No cache was restored: none of the keys matched a saved cache");
    Ok(StepOutcome::Passed { exit_code: None })
}

/// The entry's data, checked whole before a byte of it is used (issue 9, finding 2).
async fn verified(
    store: &CacheStore,
    entry: &CacheEntry,
) -> Result<io::Result<Box<dyn Read + Send>>> {
    let (store, entry) = (store.clone(), entry.clone());
    tokio::task::spawn_blocking(move || store.verified_reader(&entry))
        .await
        .map_err(|e| BackendError::Api(e.to_string()))
}

/// Warns that a found entry was not restored and moves it out of the way; whether it moved
/// (if not, `find` would return it again: the caller stops looking).
fn damaged(ctx: &StepContext, store: &CacheStore, entry: &CacheEntry, e: &io::Error) -> bool {
    let (moved, said) = match store.quarantine(entry) {
        Ok(place) => (true, format!("it was moved to {}", place.display())),
        Err(q) => (false, format!("it could not be moved aside ({q})")),
    };
    let damage = e.get_ref().and_then(|e| e.downcast_ref::<Damage>());
    let why = damage.map_or_else(|| e.to_string(), |d| d.reason.clone());
    ctx.events.warning(format!(
        "the cache {} is damaged ({why}) and was not restored; {said}; continuing without it",
        entry.key
    ));
    moved
}

async fn unpack(
    ctx: &StepContext,
    entry: &CacheEntry,
    reader: Box<dyn Read + Send>,
) -> Result<StepOutcome> {
    ctx.events.info(format!(
        "Found a cache created {} ago at {}\nSize: {}\nUnarchiving cache...",
        age(entry),
        entry.key,
        format_bytes(entry.uncompressed_size)
    ));
    let started = Instant::now();
    // The path list is the archive's first entry: read it, then send it and the rest on.
    let (roots, reader) = tokio::task::spawn_blocking(move || read_roots(reader))
        .await
        .map_err(|e| BackendError::Api(e.to_string()))?
        .map_err(|e| BackendError::Api(format!("the cache {}: {e}", entry.key)))?;
    if !roots.is_empty() {
        make_parents(ctx, &roots).await?;
    }
    let sent = hold::stream(
        Moment::RestoreCache,
        &ctx.events,
        tarball::reader_stream(reader),
    );
    let upload = ctx.backend.upload(&ctx.primary, "/", sent);
    let uploaded = tokio::select! {
        () = ctx.cancel.cancelled() => return Ok(StepOutcome::Cancelled),
        uploaded = upload => uploaded,
    };
    match uploaded {
        Ok(()) => {
            ctx.events.info(format!(
                "Restored cache {} in {}",
                entry.key,
                format_go(started.elapsed())
            ));
            Ok(StepOutcome::Passed { exit_code: None })
        }
        Err(e @ (BackendError::Api(_) | BackendError::Daemon { .. })) => {
            ctx.events.warning(format!(
                "restoring the cache {} failed ({e}); continuing without it",
                entry.key
            ));
            Ok(StepOutcome::Passed { exit_code: None })
        }
        Err(e) => Err(e),
    }
}

/// Renders a key template; the outer error is the infrastructure's, the inner one the key's.
async fn render(
    ctx: &StepContext,
    text: &str,
) -> Result<std::result::Result<String, TemplateError>> {
    let template = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let mut checksums = HashMap::new();
    for file in template.checksum_files() {
        let sum = checksum_in_container(ctx, &file).await?;
        checksums.insert(file, sum);
    }
    let plan = &ctx.plan;
    let context = TemplateContext {
        branch: plan.git.branch.clone().unwrap_or_default(),
        revision: plan.git.revision.clone().unwrap_or_default(),
        build_num: plan
            .environment
            .get("CIRCLE_BUILD_NUM")
            .unwrap_or_default()
            .to_string(),
        checkout_key: String::new(),
        environment: plan.environment.for_templates(),
        epoch: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        arch: template::host_arch(),
    };
    // Project and context variables never reach entry names, trailers or `cache ls`.
    let secrets = Secrets::of_variables(&plan.environment.project);
    Ok(template
        .render(&context, &checksums)
        .map(|key| secrets.hide_in_key(&key)))
}

/// `{{ checksum "file" }}`: base64 SHA-256 of the file as it is in the container now, or Go's
/// error text. Streams the file out of the container; follows symlinks.
async fn checksum_in_container(
    ctx: &StepContext,
    file: &str,
) -> Result<std::result::Result<String, String>> {
    let mut path = ctx.facts.resolve(file);
    for _ in 0..MAX_LINK_HOPS {
        let stream = match ctx.backend.download(&ctx.primary, &path).await {
            // A checksum of a big file is a long copy too.
            Ok(s) => tarball::cancellable(s, ctx.cancel.clone()),
            Err(BackendError::NotFound(_)) => {
                return Ok(Err(template::missing_file_message(&path)));
            }
            Err(e) => return Err(e),
        };
        let shown = path.clone();
        let found = tokio::task::spawn_blocking(move || {
            first_entry_checksum(blocking_reader(stream), &shown)
        })
        .await
        .map_err(|e| BackendError::Api(e.to_string()))?;
        match found {
            Ok(Found::Sum(sum)) => return Ok(Ok(sum)),
            Ok(Found::Link(target)) => {
                let parent = path
                    .rsplit_once('/')
                    .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p })
                    .to_string();
                path = ctx.facts.resolve_from(&parent, &target);
            }
            Ok(Found::Error(message)) => return Ok(Err(message)),
            Err(e) => return Ok(Err(format!("read {path}: {e}"))),
        }
    }
    Ok(Err(format!(
        "open {path}: too many levels of symbolic links"
    )))
}

enum Found {
    Sum(String),
    Link(String),
    Error(String),
}

fn first_entry_checksum(reader: impl Read, path: &str) -> io::Result<Found> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries()?;
    let Some(entry) = entries.next() else {
        return Ok(Found::Error(template::missing_file_message(path)));
    };
    let mut entry = entry?;
    let kind = entry.header().entry_type();
    if kind.is_dir() {
        return Ok(Found::Error(template::directory_message(path)));
    }
    if kind.is_symlink() {
        let target = entry
            .link_name()?
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(Found::Link(target));
    }
    let mut summer = template::Checksummer::new();
    io::copy(&mut entry, &mut summer)?;
    // Drain the rest so the engine's stream ends cleanly.
    for rest in entries {
        rest?;
    }
    Ok(Found::Sum(summer.finish()))
}

/// `home/circleci/.cache/` for `/home/circleci/.cache/pip`: where the downloaded entries
/// (named from the path's base name) belong, relative to `/`.
fn parent_prefix(root: &str) -> String {
    match root.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => format!("{}/", parent.trim_start_matches('/')),
        _ => String::new(),
    }
}

fn write_roots<W: io::Write>(builder: &mut tar::Builder<W>, roots: &[String]) -> io::Result<()> {
    let record = |key: &str, value: &str| {
        // A pax record is "<length> <key>=<value>\n" where length counts the whole record.
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}")
    };
    let data = record(ROOTS_KEY, &roots.join("\0"));
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XGlobalHeader);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, "pax_global_header", data.as_bytes())
}

/// The saved paths (from the archive's first entry), and a reader of the whole archive again.
fn read_roots(reader: Box<dyn Read + Send>) -> io::Result<(Vec<String>, Box<dyn Read + Send>)> {
    let mut recorder = Recorder {
        inner: reader,
        seen: Vec::new(),
    };
    let roots = roots_of(&mut recorder)?;
    let Recorder { inner, seen } = recorder;
    Ok((roots, Box::new(io::Cursor::new(seen).chain(inner))))
}

/// Keeps what was read through it (the few blocks of an archive's first entry).
struct Recorder<R> {
    inner: R,
    seen: Vec<u8>,
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn roots_of(reader: impl Read) -> io::Result<Vec<String>> {
    let mut archive = tar::Archive::new(reader);
    let Some(first) = archive.entries()?.next() else {
        return Ok(Vec::new());
    };
    let mut first = first?;
    if first.header().entry_type() != tar::EntryType::XGlobalHeader {
        return Ok(Vec::new());
    }
    let mut roots = Vec::new();
    if let Some(extensions) = first.pax_extensions()? {
        for ext in extensions {
            let ext = ext?;
            if ext.key().ok() == Some(ROOTS_KEY) {
                let value = ext
                    .value()
                    .map_err(|_| io::Error::other("the cache's path list is not UTF-8"))?;
                roots.extend(
                    value
                        .split('\0')
                        .filter(|r| !r.is_empty())
                        .map(str::to_string),
                );
            }
        }
    }
    Ok(roots)
}

/// Creates the missing parents of the restored paths as the container user, as `tar -x` run
/// by that user would (Docker would create them owned by root).
async fn make_parents(ctx: &StepContext, roots: &[String]) -> Result<()> {
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        r#"for p in "$@"; do mkdir -p "$(dirname "$p")" 2>/dev/null; done; true"#.into(),
        "localci-restore".into(),
    ];
    cmd.extend(roots.iter().cloned());
    collect(
        ctx.backend.as_ref(),
        &ctx.primary,
        ExecSpec {
            cmd,
            ..ExecSpec::default()
        },
    )
    .await?;
    Ok(())
}

/// Copies every entry of a downloaded archive into the cache archive, under `prefix`.
fn copy_entries<W: io::Write>(
    builder: &mut tar::Builder<W>,
    reader: impl Read,
    prefix: &str,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = format!("{prefix}{}", entry.path()?.to_string_lossy());
        let mut header = entry.header().clone();
        header.set_size(entry.size());
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Hard links name another entry of the archive, so they move with the prefix.
            let target = if kind.is_hard_link() {
                format!("{prefix}{target}")
            } else {
                target
            };
            builder.append_link(&mut header, &path, &target)?;
        } else if kind.is_file() || kind.is_dir() {
            builder.append_data(&mut header, &path, &mut entry)?;
        }
    }
    Ok(())
}

/// The store, its folder opened without following a symlink below the repository (issue 9,
/// finding 1: the cache directory may be inside it, for example `--cache-dir .cache`).
fn open_store(ctx: &StepContext) -> io::Result<CacheStore> {
    let dir = &ctx.settings.cache_dir;
    if let Some(root) = &ctx.plan.git.root {
        SafeDir::create(dir, root)?;
    }
    CacheStore::open(dir)
}

fn key_error(e: &TemplateError) -> String {
    match e.hint() {
        Some(hint) => format!("error computing cache key: {e}\n{hint}"),
        None => format!("error computing cache key: {e}"),
    }
}

fn store_error(ctx: &StepContext, e: &io::Error) -> StepOutcome {
    StepOutcome::failed(format!(
        "cache store {}: {e}",
        ctx.settings.cache_dir.display()
    ))
}

fn age(entry: &CacheEntry) -> String {
    format_age(
        SystemTime::now()
            .duration_since(entry.created)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_relative_to_root() {
        assert_eq!(
            parent_prefix("/home/circleci/.cache/pip"),
            "home/circleci/.cache/"
        );
        assert_eq!(parent_prefix("/data"), "");
        assert_eq!(parent_prefix("/a/b/"), "a/");
    }

    #[test]
    fn roots_round_trip_through_a_pax_global_header() {
        let mut builder = tar::Builder::new(Vec::new());
        let roots = vec![
            "/root/.cache/pip".to_string(),
            "/root/project/node_modules".to_string(),
        ];
        write_roots(&mut builder, &roots).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        builder
            .append_data(&mut header, "root/x", &b"hi"[..])
            .unwrap();
        let data = builder.into_inner().unwrap();
        let (read, mut again) = read_roots(Box::new(io::Cursor::new(data.clone()))).unwrap();
        assert_eq!(read, roots);
        let mut whole = Vec::new();
        again.read_to_end(&mut whole).unwrap();
        assert_eq!(
            whole, data,
            "the archive is read whole again after its path list"
        );
    }

    #[test]
    fn entries_move_under_the_prefix() {
        let mut source = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        dir.set_uid(0);
        source.append_data(&mut dir, "pip", io::empty()).unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(3);
        file.set_mode(0o644);
        file.set_uid(3434);
        source
            .append_data(&mut file, "pip/a.whl", &b"abc"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Link);
        link.set_size(0);
        link.set_uid(0);
        source
            .append_link(&mut link, "pip/b.whl", "pip/a.whl")
            .unwrap();
        let source = source.into_inner().unwrap();
        let mut out = tar::Builder::new(Vec::new());
        copy_entries(&mut out, &source[..], "home/circleci/.cache/").unwrap();
        let out = out.into_inner().unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let got: Vec<(String, u64, Option<String>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().uid().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("home/circleci/.cache/pip".into(), 0, None),
                ("home/circleci/.cache/pip/a.whl".into(), 3434, None),
                (
                    "home/circleci/.cache/pip/b.whl".into(),
                    0,
                    Some("home/circleci/.cache/pip/a.whl".into())
                ),
            ]
        );
    }
}
