//! Benchmark of the cache store against the `tar | zstd` pipeline it replaces (issue 4:
//! "cache save and restore of 10,000 files / 100 MB: each within 1.5x of the same tar
//! pipeline"; "peak memory while saving or restoring a 1 GB cache: under 64 MB").
//!
//! Run with `cargo run --release --example cache_store` (options: `--files N`, `--mb N`,
//! `--rss-mb N`, `--runs N`, `--work DIR`). Needs `tar` and `zstd` on PATH for the baseline.
//! It only measures; it does not touch Docker. The peak-memory figures come from child
//! processes of this same binary (`--rss-child save|restore DIR`), so that each figure is the
//! peak of one operation alone.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use localci::store::{CacheStore, SaveOutcome};

const RSS_KEY: &str = "rss-bench";

struct Options {
    files: usize,
    mb: usize,
    rss_mb: usize,
    runs: usize,
    work: Option<PathBuf>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--rss-child") {
        if let Err(e) = rss_child(&args[1..]) {
            eprintln!("rss child failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    let options = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "{e}\nusage: cache_store [--files N] [--mb N] [--rss-mb N] [--runs N] [--work DIR]"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        files: 10_000,
        mb: 100,
        rss_mb: 1024,
        runs: 3,
        work: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--files" => o.files = number()?.max(1),
            "--mb" => o.mb = number()?.max(1),
            "--rss-mb" => o.rss_mb = number()?,
            "--runs" => o.runs = number()?.max(1),
            "--work" => o.work = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn run(o: &Options) -> io::Result<()> {
    for tool in ["tar", "zstd"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(io::Error::other(format!(
                "`{tool}` is needed for the baseline (Debian: apt-get install {tool})"
            )));
        }
    }
    let work = match &o.work {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let tree = work.path().join("tree");
    let bytes = make_tree(&tree, o.files, o.mb << 20)?;
    let mb = bytes as f64 / f64::from(1 << 20);
    println!(
        "cache store benchmark: {} files, {mb:.0} MiB, best of {} runs, work dir {}",
        o.files,
        o.runs,
        work.path().display()
    );

    let store = CacheStore::open(&work.path().join("store"))?;
    let archive = work.path().join("baseline.tar.zst");
    let out = work.path().join("out");
    let mut save = (Vec::new(), Vec::new());
    let mut restore = (Vec::new(), Vec::new());
    for run in 0..o.runs {
        let key = format!("bench-{run}");
        let (base_out, our_out) = (
            out.join(format!("baseline-{run}")),
            out.join(format!("localci-{run}")),
        );
        fs::create_dir_all(&base_out)?;
        fs::create_dir_all(&our_out)?;
        // Each timed step starts with no dirty pages from the one before, so that writeback of
        // one side is not billed to the other.
        // Alternate who goes first: creating files gets slower while the filesystem holds many
        // recently deleted inodes, which would otherwise always penalize the same side.
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for ours in order {
            if ours {
                save.1.push(settled(|| our_save(&store, &key, &tree))?);
            } else {
                save.0.push(settled(|| baseline_save(&tree, &archive))?);
            }
        }
        for ours in order {
            if ours {
                restore
                    .1
                    .push(settled(|| our_restore(&store, &key, &our_out))?);
            } else {
                restore
                    .0
                    .push(settled(|| baseline_restore(&archive, &base_out))?);
            }
        }
    }
    let baseline_size = fs::metadata(&archive)?.len();
    let ours_size = store.get("bench-0")?.map_or(0, |e| e.size);
    println!(
        "compressed size: baseline {:.1} MiB, localci {:.1} MiB",
        baseline_size as f64 / f64::from(1 << 20),
        ours_size as f64 / f64::from(1 << 20)
    );
    report("save   ", mb, &save);
    report("restore", mb, &restore);
    fs::remove_dir_all(&out)?;
    fs::remove_dir_all(&tree)?;

    if o.rss_mb > 0 {
        let exe = std::env::current_exe()?;
        let dir = work.path().join("rss-store");
        for step in ["save", "restore"] {
            let output = Command::new(&exe)
                .args(["--rss-child", step])
                .arg(&dir)
                .arg(o.rss_mb.to_string())
                .output()?;
            if !output.status.success() {
                return Err(io::Error::other(
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                ));
            }
            let peak_kb: u64 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            let peak_mb = peak_kb as f64 / 1024.0;
            println!(
                "peak RSS, {step} of a {} MiB cache: {peak_mb:.1} MiB (target < 64 MiB: {})",
                o.rss_mb,
                verdict(peak_mb < 64.0)
            );
        }
    }
    Ok(())
}

fn report(what: &str, mb: f64, times: &(Vec<Duration>, Vec<Duration>)) {
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let (baseline, ours) = (best(&times.0), best(&times.1));
    let ratio = ours.as_secs_f64() / baseline.as_secs_f64().max(1e-9);
    println!(
        "{what}: baseline {:>7.1} MB/s ({:>6.3}s)  localci {:>7.1} MB/s ({:>6.3}s)  ratio {ratio:.2}x (target <= 1.5x: {})",
        mb / baseline.as_secs_f64(),
        baseline.as_secs_f64(),
        mb / ours.as_secs_f64(),
        ours.as_secs_f64(),
        verdict(ratio <= 1.5)
    );
    let secs = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "         every run (s): baseline {}  localci {}",
        secs(&times.0),
        secs(&times.1)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

/// Times `f` after flushing the page cache's dirty pages (`sync`), untimed.
fn settled(f: impl FnOnce() -> io::Result<()>) -> io::Result<Duration> {
    Command::new("sync").status()?;
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

fn shell(script: &str, args: &[&Path]) -> io::Result<()> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("`{script}` failed: {status}")))
    }
}

fn baseline_save(tree: &Path, archive: &Path) -> io::Result<()> {
    shell(
        "cd \"$1\" && tar -cf - . | zstd -3 -T0 -q -f -o \"$2\"",
        &[tree, archive],
    )
}

fn baseline_restore(archive: &Path, out: &Path) -> io::Result<()> {
    shell("zstd -dc -q \"$1\" | tar -xf - -C \"$2\"", &[archive, out])
}

fn our_save(store: &CacheStore, key: &str, tree: &Path) -> io::Result<()> {
    let mut builder = tar::Builder::new(store.writer(key)?);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", tree)?;
    match builder.into_inner()?.commit()? {
        SaveOutcome::Saved(_) => Ok(()),
        SaveOutcome::AlreadyExists(_) => Err(io::Error::other("key exists; use a fresh work dir")),
    }
}

fn our_restore(store: &CacheStore, key: &str, out: &Path) -> io::Result<()> {
    let entry = store
        .get(key)?
        .ok_or_else(|| io::Error::other("saved entry is missing"))?;
    // Decompress on a second thread, as the baseline's `zstd -dc |` does in a second process.
    let mut archive = tar::Archive::new(localci::store::read_ahead(store.reader(&entry)?)?);
    archive.unpack(out)?;
    // Read to the end: that is where the store checks the entry's SHA-256.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(())
}

/// `files` files of about `bytes / files` bytes in 100-file folders, text-like content that
/// compresses about as well as source code and installed packages do (3-5x).
fn make_tree(root: &Path, files: usize, bytes: usize) -> io::Result<u64> {
    const WORDS: &[&str] = &[
        "fn", "let", "mut", "self", "return", "import", "def", "class", "value", "index", "config",
        "cache", "error", "result", "string", "vector", "module", "package", "=", "{", "}", "(",
        ")", ";", "\n", "    ", "0x1f", "true", "false", "None",
    ];
    let per_file = bytes / files;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut total = 0u64;
    let mut content = Vec::with_capacity(per_file + 64);
    for i in 0..files {
        let dir = root.join(format!("pkg{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir)?;
        }
        content.clear();
        while content.len() < per_file {
            let r = next();
            if r % 16 == 0 {
                // Some incompressible bytes, like hashes and binary data in real caches.
                content.extend_from_slice(&r.to_le_bytes());
            } else {
                content.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
                content.push(b' ');
            }
        }
        content.truncate(per_file);
        fs::write(dir.join(format!("file{i:05}.txt")), &content)?;
        total += content.len() as u64;
    }
    Ok(total)
}

/// `--rss-child save|restore DIR MB`: one operation on a synthetic cache, then prints VmHWM (kB).
fn rss_child(args: &[String]) -> io::Result<()> {
    let [step, dir, mb] = args else {
        return Err(io::Error::other("expected: save|restore DIR MB"));
    };
    let mb: u64 = mb.parse().map_err(io::Error::other)?;
    let store = CacheStore::open(Path::new(dir))?;
    match step.as_str() {
        "save" => save_synthetic(&store, mb << 20)?,
        "restore" => {
            let entry = store
                .get(RSS_KEY)?
                .ok_or_else(|| io::Error::other("run save first"))?;
            let mut archive = tar::Archive::new(store.reader(&entry)?);
            for file in archive.entries()? {
                io::copy(&mut file?, &mut io::sink())?;
            }
            io::copy(&mut archive.into_inner(), &mut io::sink())?;
        }
        other => return Err(io::Error::other(format!("unknown step {other}"))),
    }
    println!("{}", peak_rss_kb()?);
    Ok(())
}

/// A tar of 64 MiB files generated on the fly: nothing of the size of the cache sits in memory
/// or on disk except the compressed entry.
fn save_synthetic(store: &CacheStore, bytes: u64) -> io::Result<()> {
    let mut builder = tar::Builder::new(store.writer(RSS_KEY)?);
    let chunk = 64u64 << 20;
    let mut left = bytes;
    let mut n = 0;
    while left > 0 {
        let size = left.min(chunk);
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(
            &mut header,
            format!("data/blob{n:04}"),
            Synthetic::new(size, n),
        )?;
        left -= size;
        n += 1;
    }
    builder.into_inner()?.commit()?;
    Ok(())
}

/// Pseudo-random, partly repetitive bytes.
struct Synthetic {
    left: u64,
    state: u64,
}

impl Synthetic {
    fn new(len: u64, seed: u64) -> Self {
        Synthetic {
            left: len,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for (i, b) in buf[..n].iter_mut().enumerate() {
            if i % 8 == 0 {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
            }
            *b = if i % 4 == 0 {
                self.state as u8
            } else {
                b"abcdefgh"[i % 8]
            };
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kb() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmHWM in /proc/self/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_data_has_the_requested_length() {
        let mut out = Vec::new();
        Synthetic::new(100_003, 1).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 100_003);
    }

    #[test]
    fn options_parse_and_reject_unknown_flags() {
        let args: Vec<String> = ["--files", "10", "--mb", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_options(&args).unwrap();
        assert_eq!((o.files, o.mb, o.rss_mb), (10, 2, 1024));
        assert!(parse_options(&["--nope".to_string(), "1".to_string()]).is_err());
    }
}
