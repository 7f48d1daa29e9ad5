//! `localci cache ls | rm | prune`: look at and clean the local cache store that `execute`
//! fills with `save_cache`. Thin: the store does the work, this module prints.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::Context;
use super::output::{errln, outln};
use crate::exit::Outcome;
use crate::store::{CacheEntry, CacheStore};
use crate::units::{format_age, format_bytes, format_span, parse_age};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cache directory [default: $LOCALCI_CACHE_DIR, else
    /// $XDG_CACHE_HOME/localci/<user>/<repo>/caches, else ~/.cache/localci/<user>/<repo>/caches]
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// List the caches, newest first: key, size on disk, age.
    Ls,
    /// Remove every cache whose key starts with KEY-PREFIX.
    Rm {
        #[arg(value_name = "KEY-PREFIX")]
        prefix: String,
    },
    /// Remove the caches created longer ago than AGE (such as 7d, 12h, 30m, 1d12h).
    Prune {
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Duration,
    },
}

pub fn run(ctx: &Context, args: &Args) -> Outcome {
    let dir = CacheStore::resolve_dir(args.cache_dir.as_deref(), &ctx.env, &ctx.cwd);
    if let Action::Rm { prefix } = &args.action
        && prefix.is_empty()
    {
        errln!("error: the key prefix is empty, which would remove every cache");
        errln!("hint: to remove them all, use `localci cache prune --older-than 0s`");
        return Outcome::Invalid;
    }
    if !dir.is_dir() {
        errln!("no caches in {}", dir.display());
        return Outcome::Success;
    }
    let result = CacheStore::open(&dir).and_then(|store| match &args.action {
        Action::Ls => list(&store),
        Action::Rm { prefix } => remove(&store, prefix),
        Action::Prune { older_than } => prune(&store, *older_than),
    });
    match result {
        Ok(()) => Outcome::Success,
        Err(e) => {
            errln!("error: cache directory {}: {e}", dir.display());
            Outcome::Environment
        }
    }
}

fn list(store: &CacheStore) -> std::io::Result<()> {
    let entries = store.list()?;
    for damaged in store.damaged()? {
        errln!("warning: {}", damaged.reason);
    }
    let quarantined = store.quarantined()?.len();
    if quarantined > 0 {
        errln!(
            "warning: {quarantined} damaged cache(s) were moved to {} by restores; `localci cache prune` removes them",
            store.dir().join("quarantine").display()
        );
    }
    if entries.is_empty() {
        errln!("no caches in {}", store.dir().display());
        return Ok(());
    }
    let now = SystemTime::now();
    let width = entries
        .iter()
        .map(|e| e.key.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    outln!("{:<width$}  {:>10}  {:>4}", "KEY", "SIZE", "AGE");
    for e in &entries {
        outln!(
            "{:<width$}  {:>10}  {:>4}",
            e.key,
            format_bytes(e.size),
            age(now, e)
        );
    }
    errln!("{} in {}", count_and_size(&entries), store.dir().display());
    Ok(())
}

fn remove(store: &CacheStore, prefix: &str) -> std::io::Result<()> {
    let removed = store.remove_prefix(prefix)?;
    if removed.is_empty() {
        errln!(
            "no cache key starts with {prefix:?} in {}",
            store.dir().display()
        );
    }
    report_removed(&removed);
    Ok(())
}

fn prune(store: &CacheStore, older_than: Duration) -> std::io::Result<()> {
    let removed = store.prune_older_than(older_than)?;
    report_removed(&removed);
    errln!(
        "pruned {} older than {}",
        count_and_size(&removed),
        format_span(older_than)
    );
    Ok(())
}

fn report_removed(removed: &[CacheEntry]) {
    for e in removed {
        outln!("removed {} ({})", e.key, format_bytes(e.size));
    }
}

fn age(now: SystemTime, entry: &CacheEntry) -> String {
    format_age(now.duration_since(entry.created).unwrap_or_default())
}

fn count_and_size(entries: &[CacheEntry]) -> String {
    let total: u64 = entries.iter().map(|e| e.size).sum();
    let noun = if entries.len() == 1 {
        "cache"
    } else {
        "caches"
    };
    format!("{} {noun}, {}", entries.len(), format_bytes(total))
}
