//! A fuzz harness over load -> yaml -> validate -> process -> emit, in process, for CI and for
//! long runs (issue 9). It must not touch the network or any file but its own temp files.
//!
//! - `fuzz_replay_corpus` replays every input kept in `fuzz/corpus/` and `fuzz/regressions/`.
//! - `fuzz_mutations` mutates seeds (the public conformance suite in `../shared/conformance/`,
//!   read at test time, plus our fixtures and corpus) with proptest: 256 cases in CI, or as many
//!   as fit in `LOCALCI_FUZZ_SECONDS` for a long run, which also saves each failing input under
//!   `fuzz/findings/` (not kept in git: a fixed finding becomes a hand-made, minimal file in
//!   `fuzz/regressions/`) and, with `LOCALCI_FUZZ_SAVE=1`, a sample of inputs grown from our own
//!   seeds under `fuzz/corpus/`.
//!
//! An input fails when any stage panics, takes longer than [`SLOW`], or when a compiled config
//! cannot be parsed back after it is printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use localci::diagnostic;
use localci::process::{Options, PipelineValues};
use localci::source::Sources;
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use std::sync::atomic::{AtomicU64, Ordering};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One input may take this long through every stage. An unoptimised build compiles the
/// expansion-budget cases (a million steps) in about 5 s, 15 s on a loaded machine; release
/// in well under a second.
const SLOW: Duration = Duration::from_secs(if cfg!(debug_assertions) { 30 } else { 2 });

/// The main thread's stack on Linux, where the binary runs these stages.
const MAIN_STACK: usize = 8 * 1024 * 1024;

/// Runs one input through every stage; `Err` says what went wrong.
fn check(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("config.yml");
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let started = Instant::now();
    // The stack the binary has: `validate` and `process` run on the main thread (8 MiB).
    let outcome = std::thread::Builder::new()
        .stack_size(MAIN_STACK)
        .spawn(move || stages(&path))
        .map_err(|e| e.to_string())?
        .join();
    let elapsed = started.elapsed();
    match outcome {
        Err(panic) => Err(format!("panicked: {}", panic_text(&*panic))),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) if elapsed > SLOW => Err(format!("took {elapsed:?}")),
        Ok(Ok(())) => Ok(()),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// What `validate` and `process` do, rendering every diagnostic both ways.
fn stages(path: &Path) -> Result<(), String> {
    let mut sources = Sources::new();
    let render = |sources: &Sources, diags: &[diagnostic::Diagnostic]| {
        let _ = diagnostic::render_human(sources, diags, false);
        let _ = diagnostic::render_json(sources, diags);
    };
    let file = match localci::load::load(&mut sources, path) {
        Ok(file) => file,
        Err(d) => {
            render(&sources, &[d]);
            return Ok(());
        }
    };
    let node = match localci::yaml::parse(sources.get(file), file) {
        Ok(node) => node,
        Err(d) => {
            render(&sources, &[d]);
            return Ok(());
        }
    };
    let diags = localci::validate::validate(
        &sources,
        file,
        &node,
        &localci::validate::Options::default(),
    );
    render(&sources, &diags);
    let options = Options {
        pipeline_values: PipelineValues::default(),
        all_jobs: true,
        ..Options::default()
    };
    match localci::process::process(&mut sources, file, &node, &options) {
        Err(diags) => render(&sources, &diags),
        Ok(processed) => {
            render(&sources, &processed.warnings);
            round_trip(&processed.config)?;
        }
    }
    Ok(())
}

/// A compiled config, printed, must parse back to the same data.
fn round_trip(config: &localci::yaml::Node) -> Result<(), String> {
    let text = localci::yaml::emit::emit(config);
    let mut sources = Sources::new();
    let file = sources.add(localci::source::Source::new("emitted.yml", text.clone()));
    let again = localci::yaml::parse(sources.get(file), file)
        .map_err(|d| format!("the printed config does not parse: {}\n{text}", d.message))?;
    if again.to_json() != config.to_json() {
        return Err(format!(
            "the printed config reads back differently:\n{text}"
        ));
    }
    Ok(())
}

/// `../shared/<name>` next to the repository, or next to a parent folder (a git worktree).
fn shared(name: &str) -> Option<PathBuf> {
    Path::new(ROOT)
        .ancestors()
        .map(|dir| dir.join("shared").join(name))
        .find(|p| p.exists())
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "yml" || e == "yaml" || e == "bin")
        {
            out.push(path);
        }
    }
}

/// The inputs we keep: findings (regressions) and the generated corpus.
fn kept() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&Path::new(ROOT).join("fuzz/regressions"), &mut files);
    files_under(&Path::new(ROOT).join("fuzz/corpus"), &mut files);
    files
}

/// A seed for mutation, and whether it is ours (only inputs grown from our own files are kept
/// in the corpus; the public suite is read at test time, never copied).
struct Seed {
    bytes: Vec<u8>,
    ours: bool,
}

/// Seeds: our fixtures and kept inputs, then the conformance suite (when present).
fn seeds() -> Vec<Seed> {
    let mut ours = Vec::new();
    files_under(&Path::new(ROOT).join("tests/fixtures"), &mut ours);
    files_under(&Path::new(ROOT).join("tests/process"), &mut ours);
    files_under(&Path::new(ROOT).join("sample-projects"), &mut ours);
    ours.extend(kept());
    let mut public = Vec::new();
    if let Some(conformance) = shared("conformance") {
        files_under(&conformance, &mut public);
    }
    let read = |files: Vec<PathBuf>, ours: bool| {
        files
            .into_iter()
            .filter_map(|f| std::fs::read(f).ok())
            .filter(|b| b.len() <= 64 * 1024)
            .map(move |bytes| Seed { bytes, ours })
    };
    read(ours, true).chain(read(public, false)).collect()
}

#[test]
fn fuzz_replay_corpus() {
    let files = kept();
    assert!(
        files.len() >= 10,
        "fuzz/corpus and fuzz/regressions hold {} inputs",
        files.len()
    );
    for file in files {
        let bytes = std::fs::read(&file).expect("a kept input");
        if let Err(e) = check(&bytes) {
            panic!("{}: {e}", file.display());
        }
    }
}

/// Tokens that make YAML and CircleCI's languages interesting.
const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a",
    "<<: [*a, *a]",
    "[",
    "]",
    "{",
    "}",
    "- ",
    ": ",
    "? ",
    "\t",
    "'",
    "\"",
    "|",
    ">-",
    "#",
    "\n",
    "\r\n",
    "---\n",
    "...\n",
    "!!str ",
    "!!binary ",
    "%YAML 1.2\n",
    "<< parameters.x >>",
    "<< pipeline.parameters.p >>",
    "<< pipeline.git.branch >>",
    "<<# parameters.b >>",
    "<</ parameters.b >>",
    "${{",
    "{{ checksum \"f\" }}",
    "steps:",
    "parameters:",
    "matrix:",
    "when:",
    "unless:",
    "orbs:",
    "executor:",
    "commands:",
    "requires:",
    "- run: x\n",
    "type: steps",
    "type: enum",
    "enum: [a]",
    "default: 1",
    "\u{feff}",
    "é",
    "\0",
    "~",
    "null",
    "1e309",
    "0x",
    "-.inf",
    "2.1",
    "2.0",
    ":",
    ",",
    "&",
    "*",
    "!",
    "%",
    "@",
    "`",
];

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Flip(usize, u8),
    Splice(usize, usize, usize),
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..256).prop_map(|(at, n)| Edit::Duplicate(at, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(at, seed, from)| Edit::Splice(at, seed, from)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit], seeds: &[&[u8]]) -> Vec<u8> {
    for edit in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *edit {
            Edit::Insert(i, t) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, TOKENS[t].bytes());
            }
            Edit::Delete(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Edit::Duplicate(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                let part = bytes[i..end].to_vec();
                bytes.splice(end..end, part);
            }
            Edit::Flip(i, b) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = b;
                }
            }
            Edit::Splice(i, seed, from) => {
                let other = &seeds[seed % seeds.len()];
                let from = at(from, other.len());
                let end = (from + 200).min(other.len());
                let i = at(i, bytes.len());
                bytes.splice(i..i, other[from..end].iter().copied());
            }
        }
    }
    bytes
}

/// One proptest run of `cases` mutated inputs; failures are kept under `fuzz/findings/` in a
/// long run. Returns the first failure.
fn mutate(
    seeds: &[Seed],
    cases: u32,
    deadline: Option<Instant>,
    executions: &AtomicU64,
) -> Result<(), String> {
    let long = deadline.is_some();
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        // A long run keeps the input as found and goes on; CI shrinks it for the report.
        max_shrink_iters: if long { 0 } else { 1024 },
        ..Config::default()
    };
    let mut runner = if long {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    let save = std::env::var("LOCALCI_FUZZ_SAVE").is_ok_and(|v| v == "1");
    let strategy = (0..seeds.len(), prop::collection::vec(edit_strategy(), 1..8));
    runner
        .run(&strategy, |(seed, edits)| {
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Ok(());
            }
            let n = executions.fetch_add(1, Ordering::Relaxed);
            // Splices take from our own seeds only, so an input grown from ours stays ours.
            let own: Vec<&[u8]> = seeds
                .iter()
                .filter(|s| s.ours)
                .map(|s| &s.bytes[..])
                .collect();
            let input = apply(seeds[seed].bytes.clone(), &edits, &own);
            if save && seeds[seed].ours && n.is_multiple_of(500) {
                keep("corpus", &input);
            }
            check(&input).map_err(|e| {
                if long {
                    keep("findings", &input);
                }
                TestCaseError::fail(e)
            })
        })
        .map_err(|e| e.to_string())
}

#[test]
fn fuzz_mutations() {
    let seeds = seeds();
    assert!(!seeds.is_empty(), "no seeds");
    let executions = AtomicU64::new(0);
    let started = Instant::now();
    let seconds = std::env::var("LOCALCI_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let mut failures = Vec::new();
    match seconds {
        None => failures.extend(mutate(&seeds, 256, None, &executions).err()),
        Some(secs) => {
            let deadline = started + Duration::from_secs(secs);
            while Instant::now() < deadline {
                failures.extend(mutate(&seeds, 1000, Some(deadline), &executions).err());
            }
        }
    }
    eprintln!(
        "fuzz: {} executions in {:?}, {} failing",
        executions.load(Ordering::Relaxed),
        started.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Saves an input under `fuzz/<folder>/` named by its hash.
fn keep(folder: &str, input: &[u8]) {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut hasher);
    let dir = Path::new(ROOT).join("fuzz").join(folder);
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{:016x}.bin", hasher.finish())), input);
}
