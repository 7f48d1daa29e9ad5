//! Variables that stand in for CircleCI's project and context variables: `-e KEY=VALUE` /
//! `-e KEY`, `--env-file` files, and context files (`context: NAME` reads `NAME.env` from the
//! contexts folder). Parsing only; values are never echoed in errors (they may be secrets).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;

/// `-e KEY=VALUE`, or `-e KEY` taking the value from the caller's environment.
pub fn parse_env_arg(
    item: &str,
    env: &BTreeMap<String, String>,
) -> Result<(String, String), Diagnostic> {
    if let Some((key, value)) = item.split_once('=') {
        if valid_name(key) {
            return Ok((key.to_string(), value.to_string()));
        }
    } else if valid_name(item) {
        return match env.get(item) {
            Some(value) => Ok((item.to_string(), value.clone())),
            None => Err(Diagnostic::bare(format!(
                "-e {item}: {item} is not set in your environment"
            ))
            .with_hint(format!(
                "export {item}=... first, or pass the value: -e {item}=VALUE"
            ))),
        };
    }
    // The name only: the value may be a secret (issue 9, finding 4).
    let name = item.split_once('=').map_or(item, |(name, _)| name);
    Err(
        Diagnostic::bare(format!("-e {name}=...: {name:?} is not a variable name"))
            .with_hint("write -e NAME=VALUE, or -e NAME to pass on NAME from your environment"),
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads `KEY=VALUE` lines; `#` comments, blank lines, `export ` and matching quotes allowed.
/// A bad line is reported by its number, never by its text (it may hold a secret).
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::bare(format!("cannot read the env file {}: {e}", path.display()))
            .with_hint("check the path given to --env-file")
    })?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let parsed = line
            .split_once('=')
            .filter(|(k, _)| valid_name(k.trim()))
            .map(|(k, v)| (k.trim().to_string(), unquote(v.trim()).to_string()));
        match parsed {
            Some(pair) => vars.push(pair),
            None => {
                // Never the line itself: it may hold a secret (issue 9, finding 4).
                return Err(Diagnostic::bare(format!(
                    "{}:{}: this line is not NAME=VALUE (its text is not shown: it may hold a secret)",
                    path.display(),
                    n + 1
                ))
                .with_hint("env files hold one NAME=VALUE per line, NAME made of letters, digits and _; # starts a comment"));
            }
        }
    }
    Ok(vars)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// The contexts folder: `--context-dir`, else `$XDG_CONFIG_HOME/localci/contexts`, else
/// `~/.config/localci/contexts`.
pub fn context_dir(given: Option<&Path>, env: &BTreeMap<String, String>) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    let base = match env.get("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.get("HOME").map_or("/", String::as_str)).join(".config"),
    };
    base.join("localci").join("contexts")
}

/// The variables of `names`, in order (a later context wins over an earlier one). A missing
/// context is an error, before anything runs.
pub fn load_contexts(
    names: &[String],
    dir: &Path,
    job: &str,
) -> Result<Vec<(String, String)>, Diagnostic> {
    let mut vars = Vec::new();
    for name in names {
        let file = dir.join(format!("{}.env", crate::store::runs::folder_name(name)));
        if !file.is_file() {
            return Err(Diagnostic::bare(format!(
                "job `{job}` uses context `{name}`, which is not in {}",
                dir.display()
            ))
            .with_hint(format!(
                "create {} with the context's variables as NAME=VALUE lines, or point --context-dir at the folder that has it",
                file.display()
            )));
        }
        vars.extend(read_env_file(&file)?);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("TOKEN".to_string(), "secret".to_string())].into()
    }

    #[test]
    fn env_args() {
        assert_eq!(
            parse_env_arg("A=b=c", &env()).unwrap(),
            ("A".into(), "b=c".into())
        );
        assert_eq!(
            parse_env_arg("TOKEN", &env()).unwrap(),
            ("TOKEN".into(), "secret".into())
        );
        assert!(
            parse_env_arg("MISSING", &env())
                .unwrap_err()
                .message
                .contains("not set")
        );
        let bad = parse_env_arg("1X=hunter22", &env()).unwrap_err();
        assert!(!bad.message.contains("hunter22"), "{}", bad.message);
    }

    #[test]
    fn env_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "# c\n\nexport A=1\nB=\"two words\"\nC='x'\n").unwrap();
        assert_eq!(
            read_env_file(&path).unwrap(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
        std::fs::write(&path, "A=1\nnope hunter22\n").unwrap();
        let error = read_env_file(&path).unwrap_err().message;
        assert!(error.contains(":2: this line is not NAME=VALUE"), "{error}");
        assert!(!error.contains("hunter22"));
    }

    #[test]
    fn contexts_load_in_order_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("aws.env"), "KEY=a\nREGION=eu\n").unwrap();
        std::fs::write(dir.path().join("prod.env"), "KEY=b\n").unwrap();
        let vars = load_contexts(&["aws".into(), "prod".into()], dir.path(), "deploy").unwrap();
        assert_eq!(vars.last().unwrap(), &("KEY".to_string(), "b".to_string()));
        let missing = load_contexts(&["nope".into()], dir.path(), "deploy").unwrap_err();
        assert!(missing.message.contains("uses context `nope`"));
        assert!(missing.hint.unwrap().contains("nope.env"));
    }

    #[test]
    fn the_contexts_folder() {
        let env: BTreeMap<String, String> = [("HOME".to_string(), "/home/me".to_string())].into();
        assert_eq!(
            context_dir(None, &env),
            PathBuf::from("/home/me/.config/localci/contexts")
        );
    }
}
