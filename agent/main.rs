//! localci's in-container agent: the `circleci` / `circleci-agent` program that localci puts
//! into every primary container as `/usr/local/bin/circleci` and `/usr/local/bin/circleci-agent`.
//! It emulates what jobs call inside CircleCI containers: `tests glob|split|run`, `step halt`,
//! `env subst` (docs/agent.md); any other subcommand fails with a message saying so.
//!
//! Built by `build.rs` with rustc alone (std only, no crates, statically linked) so it runs on
//! any Linux image, with or without a libc. The logic lives in `src/agent/` files that the
//! library compiles too (and unit-tests); this file only reads the environment, the file
//! system and stdin, and writes the results. It must never touch anything outside the
//! current folder, the listed tests and `$LOCALCI_AGENT_DIR`.

#[path = "../src/agent/args.rs"]
mod args;
#[path = "../src/agent/dir.rs"]
mod dir;
#[path = "../src/agent/glob.rs"]
mod glob;
// The agent serves requests; the host writes them and reads the frames.
#[allow(dead_code)]
#[path = "../src/agent/runner.rs"]
mod runner;
#[path = "../src/agent/split.rs"]
mod split;
#[path = "../src/agent/subst.rs"]
mod subst;
// The agent reads timings (`parse`); the host writes them (`row`).
#[allow(dead_code)]
#[path = "../src/agent/tsv.rs"]
mod tsv;

use std::env;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use args::{Command, SplitArgs, UsageError};
use split::{SplitBy, Weighed};

fn main() -> ExitCode {
    let mut argv = env::args_os().map(|a| a.to_string_lossy().into_owned());
    let program = argv
        .next()
        .as_deref()
        .and_then(|p| {
            Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "circleci".into());
    let rest: Vec<String> = argv.collect();
    match run(&rest) {
        Ok(code) => code,
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(failure @ Failure::NotEmulated(_)) => {
            note(&format!("{program} {failure}"));
            ExitCode::FAILURE
        }
        Err(failure) => {
            note(&format!("{program}: {failure}"));
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed; printed after the program name.
enum Failure {
    Usage(UsageError),
    NotEmulated(String),
    Pattern(glob::PatternError),
    Subst(subst::SubstError),
    /// Reading or writing something, with what it was.
    File(String, io::Error),
    Io(io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(e) => write!(f, "{e}"),
            Failure::NotEmulated(words) => write!(
                f,
                "{words}: not emulated by localci inside the container \
                 (localci emulates tests glob|split|run, step halt and env subst)"
            ),
            Failure::Pattern(e) => write!(f, "tests glob: {e}"),
            Failure::Subst(e) => write!(f, "env subst: {e}"),
            Failure::File(what, e) => write!(f, "{what}: {e}"),
            Failure::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn run(argv: &[String]) -> Result<ExitCode, Failure> {
    // Not a command of CircleCI's: localci's step runner (src/agent/runner.rs).
    if argv.first().map(String::as_str) == Some(runner::SUBCOMMAND) {
        runner::serve(io::stdin().lock(), io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    }
    match args::parse(argv).map_err(Failure::Usage)? {
        Command::Help(text) => print(text.as_bytes()),
        Command::Glob(patterns) => tests_glob(&patterns),
        Command::Split(split) => tests_split(&split),
        Command::Run {
            split,
            command,
            verbose,
        } => tests_run(&split, &command, verbose),
        Command::StepHalt => step_halt(),
        Command::EnvSubst(text) => env_subst(text),
        Command::NotEmulated(words) => Err(Failure::NotEmulated(words)),
    }
}

fn print(bytes: &[u8]) -> Result<ExitCode, Failure> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A line on stderr; a closed stderr is no reason to fail (nor to panic, as `eprintln!` does).
fn note(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

fn lines(items: &[String]) -> String {
    items.iter().map(|i| format!("{i}\n")).collect()
}

fn tests_glob(patterns: &[String]) -> Result<ExitCode, Failure> {
    let cwd = env::current_dir().map_err(|e| Failure::File("the current folder".into(), e))?;
    let files = glob::glob(patterns, &cwd).map_err(Failure::Pattern)?;
    print(lines(&files).as_bytes())
}

fn tests_split(split: &SplitArgs) -> Result<ExitCode, Failure> {
    let list = match &split.file {
        Some(file) => fs::read(file).map_err(|e| Failure::File(format!("reading {file}"), e))?,
        None => read_stdin()?,
    };
    let share = share(split, &String::from_utf8_lossy(&list))?;
    print(lines(&share).as_bytes())
}

fn tests_run(split: &SplitArgs, command: &str, verbose: bool) -> Result<ExitCode, Failure> {
    let list = read_stdin()?;
    let share = share(split, &String::from_utf8_lossy(&list))?;
    if share.is_empty() {
        // Scripts test the output for "There were no tests found" (CircleCI's agent says so).
        return print(b"There were no tests found for this node; the command was not run.\n");
    }
    if verbose {
        note(&format!(
            "Running `{command}` with {} tests on its stdin:",
            share.len()
        ));
        note(lines(&share).trim_end());
    }
    let shell = if Path::new("/bin/sh").exists() {
        "/bin/sh"
    } else {
        "sh"
    };
    let mut child = std::process::Command::new(shell)
        .args(["-c", command])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::File(format!("starting {shell}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(lines(&share).as_bytes()) {
            // The command need not read its stdin.
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
            _ => {}
        }
    }
    let status = child.wait()?;
    Ok(ExitCode::from(exit_code(status)))
}

/// A child's exit status as a shell reports it (128 + signal when killed).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + (signal & 0x7f)).unwrap_or(1),
        (None, None) => 1,
    }
}

/// This node's share of the listed tests, with notes on stderr.
fn share(split: &SplitArgs, list: &str) -> Result<Vec<String>, Failure> {
    let index = env::var("CIRCLE_NODE_INDEX").ok();
    let total = env::var("CIRCLE_NODE_TOTAL").ok();
    let (index, total) =
        args::node(split, index.as_deref(), total.as_deref()).map_err(Failure::Usage)?;
    let tests = split::parse_list(list);
    let weighed = weigh(split, &tests);
    for line in &weighed.notes {
        note(line);
    }
    let mut nodes = split::partition(weighed.tests, total);
    // Nodes past the returned ones get no test.
    let share = nodes.get_mut(index).map(std::mem::take).unwrap_or_default();
    if split.show_counts {
        note(&format!(
            "node {index} of {total} (0-based) runs {} of {} tests",
            share.len(),
            tests.len()
        ));
    }
    Ok(share)
}

fn weigh(split: &SplitArgs, tests: &[String]) -> Weighed {
    match split.by {
        SplitBy::Name => split::by_name(tests),
        SplitBy::Filesize => split::by_filesize(tests, &|t| {
            fs::metadata(t)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        }),
        SplitBy::Timings => {
            let timings = agent_dir()
                .and_then(|folder| fs::read(folder.join(dir::TIMINGS)).ok())
                .map(|bytes| tsv::parse(&String::from_utf8_lossy(&bytes)))
                .unwrap_or_default();
            split::by_timings(tests, &timings, split.timings_type, split.time_default)
        }
    }
}

fn agent_dir() -> Option<PathBuf> {
    env::var_os(dir::ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

fn step_halt() -> Result<ExitCode, Failure> {
    let folder = agent_dir().ok_or_else(|| {
        Failure::File(
            "step halt".into(),
            io::Error::other(format!(
                "{} is not set: step halt works only in a job that localci runs",
                dir::ENV
            )),
        )
    })?;
    let marker = folder.join(dir::HALT);
    fs::write(&marker, b"")
        .map_err(|e| Failure::File(format!("writing {}", marker.display()), e))?;
    Ok(ExitCode::SUCCESS)
}

fn env_subst(text: Option<String>) -> Result<ExitCode, Failure> {
    let text = match text {
        Some(text) => text,
        None => String::from_utf8_lossy(&read_stdin()?).into_owned(),
    };
    let lookup = |name: &str| env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let out = subst::subst(&text, &lookup).map_err(Failure::Subst)?;
    print(out.as_bytes())
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::File("reading stdin".into(), e))?;
    Ok(bytes)
}
