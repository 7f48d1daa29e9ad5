//! The in-container agent's command line: `circleci` and `circleci-agent` take the same
//! subcommands (`tests glob|split|run`, `step halt`, `env subst`, `help`). Flags are accepted
//! as `--flag value` and `--flag=value`, as the CircleCI CLI (cobra) does.
//!
//! Pure parsing: no environment, no I/O. Shared by the agent binary and the library's tests.

use std::fmt;

use super::split::{SplitBy, TimingsType};

/// What the agent was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Print this text and succeed.
    Help(&'static str),
    Glob(Vec<String>),
    Split(SplitArgs),
    Run {
        split: SplitArgs,
        command: String,
        verbose: bool,
    },
    StepHalt,
    /// The text to substitute, or `None` to read stdin.
    EnvSubst(Option<String>),
    /// A real CircleCI subcommand localci does not emulate (its words, e.g. `config validate`).
    NotEmulated(String),
}

/// How to split, from flags; the node comes from `--index`/`--total` or the environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SplitArgs {
    pub(crate) by: SplitBy,
    pub(crate) timings_type: TimingsType,
    pub(crate) index: Option<usize>,
    pub(crate) total: Option<usize>,
    pub(crate) show_counts: bool,
    /// `--time-default`, in microseconds.
    pub(crate) time_default: Option<u64>,
    /// The list file (`tests split FILE`); stdin without it.
    pub(crate) file: Option<String>,
}

/// A command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see `circleci help`)", self.0)
    }
}

pub(crate) const USAGE: &str = "\
circleci (localci's in-container agent): the parts of CircleCI's in-job CLI that jobs call.

Usage:
  circleci tests glob PATTERN...
      Files matching the patterns (`*`, `**`, `?`, `[abc]`, `{a,b}`), sorted, one a line.
  circleci tests split [--split-by=name|filesize|timings] [--timings-type=TYPE]
                       [--time-default=DURATION] [--index=N] [--total=M] [--show-counts] [FILE]
      This node's share of the tests listed in FILE or on stdin.
  circleci tests run --command=CMD [split flags] [--verbose]
      Pipes this node's share of the tests on stdin to `sh -c CMD`.
  circleci step halt     (also: circleci-agent step halt)
      Ends the job successfully after the current step.
  circleci env subst [TEXT]
      TEXT (or stdin) with $VAR and ${VAR} replaced by environment values.

TYPE is filename, classname, testname or autodetect (default). The node defaults to
CIRCLE_NODE_INDEX of CIRCLE_NODE_TOTAL. Other subcommands are not emulated inside the container.
";

/// Reads the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Command, UsageError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["help", ..] | ["--help" | "-h", ..] => Ok(Command::Help(USAGE)),
        [_, .., "--help" | "-h"] => Ok(Command::Help(USAGE)),
        ["tests", "glob", patterns @ ..] => glob(patterns),
        ["tests", "split", rest @ ..] => split(rest),
        ["tests", "run", rest @ ..] => run(rest),
        ["step", "halt"] => Ok(Command::StepHalt),
        ["step", "halt", extra, ..] => Err(UsageError(format!(
            "`step halt` takes no argument, not {extra:?}"
        ))),
        ["env", "subst"] => Ok(Command::EnvSubst(None)),
        ["env", "subst", text] => Ok(Command::EnvSubst(Some((*text).to_string()))),
        ["env", "subst", _, extra, ..] => Err(UsageError(format!(
            "`env subst` takes one text (quote it), not also {extra:?}"
        ))),
        ["tests" | "step" | "env", sub, ..] => {
            Ok(Command::NotEmulated(format!("{} {sub}", words[0])))
        }
        [first, ..] => Ok(Command::NotEmulated((*first).to_string())),
    }
}

fn glob(patterns: &[&str]) -> Result<Command, UsageError> {
    if patterns.is_empty() {
        return Err(UsageError("`tests glob` needs at least one pattern".into()));
    }
    if let Some(flag) = patterns.iter().find(|p| p.starts_with("--")) {
        return Err(UsageError(format!("`tests glob` has no flag {flag}")));
    }
    Ok(Command::Glob(
        patterns.iter().map(|p| (*p).to_string()).collect(),
    ))
}

fn split(args: &[&str]) -> Result<Command, UsageError> {
    let mut flags = Flags::read(args)?;
    let split = flags.split_args()?;
    let file = match flags.positional.as_slice() {
        [] => None,
        [file] => Some(file.clone()),
        more => {
            return Err(UsageError(format!(
                "`tests split` takes one list file, not {}",
                more.len()
            )));
        }
    };
    flags.reject_rest("tests split")?;
    Ok(Command::Split(SplitArgs { file, ..split }))
}

fn run(args: &[&str]) -> Result<Command, UsageError> {
    let mut flags = Flags::read(args)?;
    let split = flags.split_args()?;
    let command = flags
        .take("command")
        .ok_or_else(|| UsageError("`tests run` needs --command=CMD".into()))?;
    let verbose = flags.switch("verbose");
    if let Some(extra) = flags.positional.first() {
        return Err(UsageError(format!(
            "`tests run` reads the tests from stdin, not from {extra:?}"
        )));
    }
    flags.reject_rest("tests run")?;
    Ok(Command::Run {
        split,
        command,
        verbose,
    })
}

/// Flags as `(name, value)` (a switch has `None`), plus the positional arguments.
struct Flags {
    named: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

/// Flags that take a value (the others are switches).
const VALUED: [&str; 6] = [
    "split-by",
    "timings-type",
    "index",
    "total",
    "time-default",
    "command",
];

impl Flags {
    fn read(args: &[&str]) -> Result<Flags, UsageError> {
        let mut flags = Flags {
            named: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                flags.positional.push((*arg).to_string());
                continue;
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None if VALUED.contains(&flag) => {
                    let value = it
                        .next()
                        .ok_or_else(|| UsageError(format!("--{flag} needs a value")))?;
                    (flag, Some((*value).to_string()))
                }
                None => (flag, None),
            };
            flags.named.push((name.to_string(), value));
        }
        Ok(flags)
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.named.iter().rposition(|(n, _)| n == name)?;
        let value = self.named[at].1.clone();
        self.named.retain(|(n, _)| n != name);
        value
    }

    fn switch(&mut self, name: &str) -> bool {
        let on = self
            .named
            .iter()
            .any(|(n, v)| n == name && v.as_deref() != Some("false"));
        self.named.retain(|(n, _)| n != name);
        on
    }

    fn split_args(&mut self) -> Result<SplitArgs, UsageError> {
        Ok(SplitArgs {
            by: split_by(self.take("split-by").as_deref())?,
            timings_type: timings_type(self.take("timings-type").as_deref())?,
            index: self.number("index")?,
            total: self.number("total")?,
            show_counts: self.switch("show-counts"),
            time_default: self.duration("time-default")?,
            file: None,
        })
    }

    fn number(&mut self, name: &str) -> Result<Option<usize>, UsageError> {
        self.take(name)
            .map(|v| number(&format!("--{name}"), &v))
            .transpose()
    }

    fn duration(&mut self, name: &str) -> Result<Option<u64>, UsageError> {
        self.take(name)
            .map(|v| {
                duration_micros(&v).ok_or_else(|| {
                    invalid(
                        &format!("--{name}"),
                        &v,
                        "a duration such as 10s, 1.5s or 1m30s",
                    )
                })
            })
            .transpose()
    }

    fn reject_rest(&self, command: &str) -> Result<(), UsageError> {
        match self.named.first() {
            Some((name, _)) => Err(UsageError(format!("`{command}` has no flag --{name}"))),
            None => Ok(()),
        }
    }
}

fn split_by(value: Option<&str>) -> Result<SplitBy, UsageError> {
    match value {
        None | Some("name") => Ok(SplitBy::Name),
        Some("filesize") => Ok(SplitBy::Filesize),
        Some("timings") => Ok(SplitBy::Timings),
        Some(other) => Err(invalid("--split-by", other, "name, filesize or timings")),
    }
}

fn timings_type(value: Option<&str>) -> Result<TimingsType, UsageError> {
    match value {
        None | Some("autodetect") => Ok(TimingsType::Autodetect),
        Some("filename") => Ok(TimingsType::Filename),
        Some("classname") => Ok(TimingsType::Classname),
        Some("testname") => Ok(TimingsType::Testname),
        Some(other) => Err(invalid(
            "--timings-type",
            other,
            "filename, classname, testname or autodetect",
        )),
    }
}

fn invalid(flag: &str, value: &str, expected: &str) -> UsageError {
    UsageError(format!(
        "{flag}={value:?} is not valid: expected {expected}"
    ))
}

fn number(flag: &str, value: &str) -> Result<usize, UsageError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(flag, value, "a whole number"))
}

/// The node of a split: flags first, then `CIRCLE_NODE_INDEX`/`CIRCLE_NODE_TOTAL`, then 0 of 1.
pub(crate) fn node(
    split: &SplitArgs,
    env_index: Option<&str>,
    env_total: Option<&str>,
) -> Result<(usize, usize), UsageError> {
    let from_env = |name: &str, value: Option<&str>| -> Result<Option<usize>, UsageError> {
        value
            .filter(|v| !v.trim().is_empty())
            .map(|v| number(name, v))
            .transpose()
    };
    let index = match split.index {
        Some(i) => i,
        None => from_env("CIRCLE_NODE_INDEX", env_index)?.unwrap_or(0),
    };
    let total = match split.total {
        Some(t) => t,
        None => from_env("CIRCLE_NODE_TOTAL", env_total)?.unwrap_or(1),
    };
    if total == 0 {
        return Err(UsageError("the node total must be at least 1".into()));
    }
    if index >= total {
        return Err(UsageError(format!(
            "node index {index} is out of range: there are {total} nodes (0 to {})",
            total - 1
        )));
    }
    Ok((index, total))
}

/// A Go duration (`10s`, `1.5s`, `1m30s`, `250ms`) or a bare number of seconds, in microseconds.
pub(crate) fn duration_micros(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return to_micros(seconds, 1_000_000.0);
    }
    let mut total = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "h" => 3_600_000_000.0,
            "m" => 60_000_000.0,
            "s" => 1_000_000.0,
            "ms" => 1_000.0,
            "us" | "µs" => 1.0,
            "ns" => 0.001,
            _ => return None,
        };
        total = total.checked_add(to_micros(number.parse().ok()?, scale)?)?;
        rest = after;
    }
    (!text.is_empty()).then_some(total)
}

fn to_micros(value: f64, scale: f64) -> Option<u64> {
    let micros = value * scale;
    (micros.is_finite() && micros >= 0.0 && micros < u64::MAX as f64).then(|| micros.round() as u64)
}
