//! CircleCI's cache-key template language: the subset of Go's `text/template` that CircleCI
//! evaluates in `save_cache`/`restore_cache` keys (`{{ checksum "FILE" }}`, `{{ .Branch }}`,
//! `{{ .Revision }}`, `{{ .BuildNum }}`, `{{ .CheckoutKey }}`, `{{ .Environment.NAME }}`,
//! `{{ epoch }}`, `{{ arch }}`), with Go's trim markers and comments and Go's error wording.
//!
//! Rendering is pure: the caller reads the files named by [`Template::checksum_files`] (they live
//! in the job's container) and passes their checksums in. Apart from [`host_arch`], which reads
//! `/proc/cpuinfo`, nothing here does I/O.

mod lex;
mod parse;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use parse::{Command, Func, Piece};

/// The name Go's errors give the template; CircleCI names it `cacheKey`.
const NAME: &str = "cacheKey";

/// CircleCI rejects rendered keys longer than this many characters.
pub const MAX_KEY_CHARS: usize = 900;

/// A parsed cache-key template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

/// The values a key can refer to, fixed when the step runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateContext {
    pub branch: String,
    pub revision: String,
    pub build_num: String,
    pub checkout_key: String,
    /// What `.Environment` sees: built-ins and project/CLI variables, not the job's
    /// `environment:` (CircleCI does not show those to keys).
    pub environment: BTreeMap<String, String>,
    /// Unix time in seconds.
    pub epoch: u64,
    /// What `{{ arch }}` prints, such as `linux-amd64-6_62` (see [`arch_string`]).
    pub arch: String,
}

/// A template that does not parse or render. `Display` is Go's message, word for word where
/// CircleCI's is known; [`TemplateError::hint`] says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    message: String,
    hint: Option<String>,
}

impl TemplateError {
    /// A parse error: Go names only the line (`template: cacheKey:1: ...`).
    fn parse(text: &str, pos: usize, message: String) -> Self {
        let (line, _) = go_position(text, pos);
        TemplateError {
            message: format!("template: {NAME}:{line}: {message}"),
            hint: None,
        }
    }

    /// An execution error at a node: `template: cacheKey:1:20: executing "cacheKey" at <node>: ...`.
    fn exec(text: &str, pos: usize, node: &str, message: String) -> Self {
        let (line, col) = go_position(text, pos);
        TemplateError {
            message: format!(
                "template: {NAME}:{line}:{col}: executing \"{NAME}\" at <{node}>: {message}"
            ),
            hint: None,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// Go's `ErrorContext` position: the 1-based line and the 0-based byte offset within it.
fn go_position(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = 1 + before.matches('\n').count();
    let col = before.rfind('\n').map_or(pos, |nl| pos - (nl + 1));
    (line, col)
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            text: text.to_string(),
            pieces: parse::parse(text)?,
        })
    }

    /// The file arguments of every `{{ checksum "FILE" }}`, as written, in order, deduplicated.
    pub fn checksum_files(&self) -> Vec<String> {
        let mut files: Vec<String> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Action(parse::Action {
                command:
                    Command::Call {
                        func: Func::Checksum,
                        args,
                    },
                ..
            }) = piece
            {
                for file in args {
                    if !files.contains(file) {
                        files.push(file.clone());
                    }
                }
            }
        }
        files
    }

    /// Renders the key. `checksums` maps each file of [`Template::checksum_files`] to its
    /// checksum, or to the message of the error that reading it gave (Go's `open PATH: no such
    /// file or directory`, see [`missing_file_message`]).
    pub fn render(
        &self,
        ctx: &TemplateContext,
        checksums: &HashMap<String, Result<String, String>>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Action(action) => out.push_str(&self.eval(action, ctx, checksums)?),
            }
        }
        let chars = out.chars().count();
        if chars > MAX_KEY_CHARS {
            return Err(TemplateError {
                message: format!(
                    "cache key is {chars} characters long; CircleCI allows at most {MAX_KEY_CHARS}"
                ),
                hint: Some("shorten the key: checksum one lock file instead of many values".into()),
            });
        }
        Ok(out)
    }

    fn eval(
        &self,
        action: &parse::Action,
        ctx: &TemplateContext,
        checksums: &HashMap<String, Result<String, String>>,
    ) -> Result<String, TemplateError> {
        let exec_error = |node: &str, message: String| {
            TemplateError::exec(&self.text, action.pos, node, message)
        };
        match &action.command {
            Command::Literal(value) => Ok(value.clone()),
            Command::Field(names) => field(ctx, names)
                .map_err(|m| exec_error(&action.node, m).with_hint(parse::SUPPORTED)),
            Command::Call { func, args } if args.len() != func.arity() => Err(exec_error(
                func.name(),
                format!(
                    "wrong number of args for {}: want {} got {}",
                    func.name(),
                    func.arity(),
                    args.len()
                ),
            )),
            Command::Call { func, args } => match func {
                Func::Epoch => Ok(ctx.epoch.to_string()),
                Func::Arch => Ok(ctx.arch.clone()),
                Func::Checksum => match checksums.get(&args[0]) {
                    Some(Ok(sum)) => Ok(sum.clone()),
                    Some(Err(reason)) => Err(exec_error(
                        &action.node,
                        format!("error calling checksum: {reason}"),
                    )
                    .with_hint(
                        "the file is read in the job's container when the step runs; \
                         create it in an earlier step or fix the path",
                    )),
                    None => Err(exec_error(
                        &action.node,
                        format!(
                            "error calling checksum: the checksum of {:?} was not computed",
                            args[0]
                        ),
                    )),
                },
            },
        }
    }
}

/// Evaluates a field chain the way Go's reflection does on CircleCI's data: strings have no
/// fields, a missing map key is `<no value>`.
fn field(ctx: &TemplateContext, names: &[String]) -> Result<String, String> {
    let string_field = |value: &str, rest: &[String]| match rest.first() {
        None => Ok(value.to_string()),
        Some(next) => Err(format!("can't evaluate field {next} in type string")),
    };
    match names[0].as_str() {
        "Branch" => string_field(&ctx.branch, &names[1..]),
        "Revision" => string_field(&ctx.revision, &names[1..]),
        "BuildNum" => string_field(&ctx.build_num, &names[1..]),
        "CheckoutKey" => string_field(&ctx.checkout_key, &names[1..]),
        "Environment" => match names.get(1) {
            None => Ok(go_map(&ctx.environment)),
            Some(key) => match ctx.environment.get(key) {
                Some(value) => string_field(value, &names[2..]),
                None => Ok("<no value>".to_string()),
            },
        },
        other => Err(format!(
            "can't evaluate field {other} in type TemplateContext"
        )),
    }
}

/// Go's `fmt` of a `map[string]string`: `map[A:1 B:2]`, keys sorted.
fn go_map(map: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}

/// CircleCI's `{{ checksum }}` value: base64 (standard alphabet, padded) of the SHA-256.
pub fn checksum(bytes: &[u8]) -> String {
    encode(Sha256::digest(bytes).as_slice())
}

fn encode(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The streaming form of [`checksum`]: write the file's bytes in, then [`Checksummer::finish`].
#[derive(Clone, Debug, Default)]
pub struct Checksummer {
    hasher: Sha256,
}

impl Checksummer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn finish(self) -> String {
        encode(self.hasher.finalize().as_slice())
    }
}

impl std::io::Write for Checksummer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Go's `os.Open` error for a missing file, which CircleCI prints after `error calling checksum:`.
pub fn missing_file_message(path: &str) -> String {
    format!("open {path}: no such file or directory")
}

/// Go's error for `checksum` of a directory (opening works, reading fails).
pub fn directory_message(path: &str) -> String {
    format!("read {path}: is a directory")
}

/// `{{ arch }}` in CircleCI's format `<os>-<goarch>-<cpu family>_<model>` (`linux-amd64-6_62`),
/// from Rust's OS and architecture names and the text of `/proc/cpuinfo`. Without a CPU
/// family and model (ARM, other systems) it is `<os>-<goarch>`.
pub fn arch_string(os: &str, machine: &str, cpuinfo: &str) -> String {
    let goarch = match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i686" | "i386" => "386",
        "arm" | "armv7l" => "arm",
        other => other,
    };
    let value = |name: &str| {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    match (value("cpu family"), value("model")) {
        (Some(family), Some(model)) => format!("{os}-{goarch}-{family}_{model}"),
        _ => format!("{os}-{goarch}"),
    }
}

/// [`arch_string`] of the machine localci runs on (containers share its kernel and CPU).
pub fn host_arch() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    arch_string(std::env::consts::OS, std::env::consts::ARCH, &cpuinfo)
}

#[cfg(test)]
mod tests;
