//! Finding and reading a config file into [`Sources`], with one clear error per way it can fail
//! (missing, a directory, not text, too large). No parsing here.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Source, Sources};

/// Larger files are refused before they are read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// The config to use: `explicit` when given, else `.circleci/config.yml` (or `.yaml`) in `cwd`
/// or the nearest parent folder that has one.
pub fn find_config(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, Diagnostic> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    for dir in cwd.ancestors() {
        for name in ["config.yml", "config.yaml"] {
            let candidate = dir.join(".circleci").join(name);
            if candidate.is_file() {
                return Ok(relative_to(&candidate, cwd));
            }
        }
    }
    Err(Diagnostic::bare(format!(
        "no .circleci/config.yml in {} or any parent folder",
        cwd.display()
    ))
    .with_hint("run localci inside your repository, or name the file with -c path/to/config.yml"))
}

fn relative_to(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Reads a text file into `sources`.
pub fn load(sources: &mut Sources, path: &Path) -> Result<FileId, Diagnostic> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "check the path, or pass the config with -c path/to/config.yml"
        } else {
            "check the file's permissions"
        };
        Diagnostic::bare(format!("cannot read {shown}: {}", io_reason(&e))).with_hint(hint)
    })?;
    if meta.is_dir() {
        return Err(
            Diagnostic::bare(format!("{shown} is a directory, not a config file"))
                .with_hint("name the YAML file itself, e.g. -c .circleci/config.yml"),
        );
    }
    let too_large = || {
        Diagnostic::bare(format!(
            "{shown} is larger than {} MB, the most localci reads",
            MAX_CONFIG_BYTES / (1024 * 1024)
        ))
        .with_hint("a CircleCI config is a YAML text file of a few kilobytes")
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    // Read at most one byte past the limit: devices such as /dev/zero report a length of 0.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Diagnostic::bare(format!("cannot read {shown}: {}", io_reason(&e))))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    let text = decode(bytes).map_err(|why| {
        Diagnostic::bare(format!("{shown} is not a text file ({why})"))
            .with_hint("a CircleCI config is UTF-8 YAML text")
    })?;
    Ok(sources.add(Source::new(path, text)))
}

/// UTF-8 without NUL bytes; a leading byte-order mark is dropped.
fn decode(bytes: Vec<u8>) -> Result<String, String> {
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(format!("it has a NUL byte at offset {pos}"));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()))?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
