//! The per-user config file, `$XDG_CONFIG_HOME/localci/config.yml` (else
//! `~/.config/localci/config.yml`), next to the contexts folder; `$LOCALCI_CONFIG` names
//! another file. Today it holds one map, the local images of `machine:` jobs:
//!
//! ```yaml
//! machine:
//!   images:
//!     default: my/machine:latest              # machine: true, and image: default
//!     ubuntu-2204: my/ubuntu:22.04            # ubuntu-2204:<any tag>
//!     "ubuntu-2204:2024.01.1": my/ubuntu:2024
//!     "*": my/machine:latest                  # every other machine image
//! ```
//!
//! YAML, read with the config's own parser. Reading only: a missing file is an empty one; a
//! broken one is an error at its line and column. `--machine-image` comes before the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::plan::MachineImages;
use crate::source::{FileId, Source};
use crate::yaml::Node;

/// The environment variable that names another per-user config file.
pub const CONFIG_ENV: &str = "LOCALCI_CONFIG";

/// `$LOCALCI_CONFIG`, else `$XDG_CONFIG_HOME/localci/config.yml`, else
/// `~/.config/localci/config.yml`.
pub fn config_file(env: &BTreeMap<String, String>) -> PathBuf {
    if let Some(file) = env.get(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(file);
    }
    let base = match env.get("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.get("HOME").map_or("/", String::as_str)).join(".config"),
    };
    base.join("localci").join("config.yml")
}

/// The machine images of the command line (`--machine-image IMAGE` or `NAME=IMAGE`,
/// repeatable) and of the file at `path` (absent: none).
pub fn machine_images(flags: &[String], path: &Path) -> Result<MachineImages, Diagnostic> {
    let mut images = MachineImages {
        file_path: Some(path.to_path_buf()),
        ..MachineImages::default()
    };
    for flag in flags {
        match flag.split_once('=') {
            Some((name, image)) if !name.is_empty() && !image.is_empty() => {
                images.flags.push((name.to_string(), image.to_string()));
            }
            Some(_) => {
                return Err(Diagnostic::bare(format!(
                    "--machine-image {flag}: expected IMAGE or NAME=IMAGE"
                ))
                .with_hint("for example --machine-image my/machine:latest, or --machine-image ubuntu-2204=my/ubuntu:22.04"));
            }
            None if images.every.is_some() => {
                return Err(Diagnostic::bare(format!(
                    "--machine-image {flag}: a second image for every machine job"
                ))
                .with_hint("give one --machine-image IMAGE, and NAME=IMAGE for the others"));
            }
            None => images.every = Some(flag.clone()),
        }
    }
    images.file = read_file(path)?;
    Ok(images)
}

const FILE_HINT: &str = "machine images go in the file as a map, one `NAME: IMAGE` a line under `machine:` / `images:` (docs/execute.md, \"Machine jobs\")";

fn read_file(path: &Path) -> Result<Vec<(String, String)>, Diagnostic> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(
                Diagnostic::bare(format!("cannot read {}: {e}", path.display())).with_hint(
                    format!("fix the file, or point ${CONFIG_ENV} at another one"),
                ),
            );
        }
    };
    let source = Source::new(path, text);
    let at = |offset: u32| {
        let lc = source.line_col(offset as usize);
        format!("{}:{}:{}", path.display(), lc.line, lc.column)
    };
    let root = crate::yaml::parse(&source, FileId(0)).map_err(|d| {
        let place = d
            .span
            .map(|s| at(s.start))
            .unwrap_or_else(|| path.display().to_string());
        Diagnostic::bare(format!("{place}: {}", d.message)).with_hint(FILE_HINT)
    })?;
    let wrong = |node: &Node, what: &str| {
        Diagnostic::bare(format!("{}: {what}", at(node.span.start))).with_hint(FILE_HINT)
    };
    if root.is_null() {
        return Ok(Vec::new());
    }
    let Some(top) = root.as_map() else {
        return Err(wrong(&root, "the file must be a map"));
    };
    let Some(machine) = top.get("machine") else {
        return Ok(Vec::new());
    };
    let Some(section) = machine.as_map() else {
        return Err(wrong(machine, "`machine` must be a map"));
    };
    if let Some(entry) = section.entries.iter().find(|e| e.key != "images") {
        return Err(Diagnostic::bare(format!(
            "{}: unknown key `machine.{}`",
            at(entry.key_span.start),
            entry.key
        ))
        .with_hint(FILE_HINT));
    }
    let Some(images) = section.get("images") else {
        return Ok(Vec::new());
    };
    let Some(map) = images.as_map() else {
        return Err(wrong(
            images,
            "`machine.images` must be a map of NAME: IMAGE",
        ));
    };
    map.entries
        .iter()
        .map(|e| match e.value.scalar_text() {
            Some(image) if !image.trim().is_empty() => Ok((e.key.clone(), image)),
            _ => Err(wrong(
                &e.value,
                &format!("machine image `{}` must map to a local image name", e.key),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_found_like_the_contexts_folder() {
        let env: BTreeMap<String, String> = [("HOME".to_string(), "/home/me".to_string())].into();
        assert_eq!(
            config_file(&env),
            PathBuf::from("/home/me/.config/localci/config.yml")
        );
        let mut xdg = env.clone();
        xdg.insert("XDG_CONFIG_HOME".into(), "/x".into());
        assert_eq!(config_file(&xdg), PathBuf::from("/x/localci/config.yml"));
        xdg.insert(CONFIG_ENV.into(), "/elsewhere.yml".into());
        assert_eq!(config_file(&xdg), PathBuf::from("/elsewhere.yml"));
    }

    #[test]
    fn flags_and_the_file_make_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(
            &path,
            "machine:\n  images:\n    default: my/machine\n    ubuntu-2204: my/ubuntu\n    ubuntu-2004:2024.01.1: my/focal\n",
        )
        .unwrap();
        let images = machine_images(&["android=my/android".into()], &path).unwrap();
        assert_eq!(images.every, None);
        assert_eq!(images.resolve("android:2024.01.1"), Some("my/android"));
        assert_eq!(images.resolve("ubuntu-2204:current"), Some("my/ubuntu"));
        assert_eq!(images.resolve("default"), Some("my/machine"));
        assert_eq!(images.resolve("ubuntu-2004:current"), None);
        assert_eq!(images.resolve("ubuntu-2004:2024.01.1"), Some("my/focal"));
        let every = machine_images(&["cli/image".into()], &path).unwrap();
        assert_eq!(every.resolve("ubuntu-2204:current"), Some("cli/image"));
        let none = machine_images(&[], &dir.path().join("missing.yml")).unwrap();
        assert_eq!(none.resolve("default"), None);
    }

    #[test]
    fn bad_flags_and_files_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        assert!(
            machine_images(&["=x".into()], &path)
                .unwrap_err()
                .message
                .contains("expected IMAGE or NAME=IMAGE")
        );
        assert!(
            machine_images(&["a".into(), "b".into()], &path)
                .unwrap_err()
                .message
                .contains("a second image")
        );
        let error_of = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let message = machine_images(&[], &path).unwrap_err().message;
            let shown = path.display().to_string();
            message.strip_prefix(&shown).unwrap().to_string()
        };
        assert_eq!(
            error_of("machine:\n  images:\n    default: [a]\n"),
            ":3:14: machine image `default` must map to a local image name"
        );
        assert_eq!(
            error_of("machine:\n  image: x\n"),
            ":2:3: unknown key `machine.image`"
        );
        assert_eq!(error_of("machine: [x]\n"), ":1:10: `machine` must be a map");
        assert!(error_of("machine:\n  images: {a: b\n").starts_with(":"));
        std::fs::write(&path, "# nothing yet\n").unwrap();
        assert_eq!(machine_images(&[], &path).unwrap().file, Vec::new());
    }
}
