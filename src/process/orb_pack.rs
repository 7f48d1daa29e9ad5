//! `localci orb pack`: one orb YAML from an orb kept in the orb development layout, like
//! `circleci orb pack` (orb development kit). The folder holds `@orb.yml` (the orb's own keys:
//! `version`, `description`, `display`, `orbs` ...) and one file per element in `commands/`,
//! `jobs/`, `executors/` and `examples/`, each element named after its file. A string value
//! that is exactly `<<include(path)>>` is replaced by the text of that file, relative to the
//! folder (scripts kept as `.sh` files).
//!
//! Reads files only inside the folder (an include that leaves it is an error); writes nothing.

use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::diagnostic::Diagnostic;
use crate::source::{Source, Sources, Span};
use crate::yaml::{Entry, Kind, Map, Node};

/// The element folders, in the order their sections are written.
const SECTIONS: [&str; 4] = ["commands", "executors", "jobs", "examples"];

/// Files larger than this are refused: an orb is a few hundred kilobytes at most.
const MAX_FILE: u64 = 8 << 20;

static INCLUDE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*<<\s*include\(([^)]+)\)\s*>>\s*$").expect("the include pattern compiles")
});

/// The packed orb. Files read are added to `sources`; on failure every problem found.
pub fn pack(sources: &mut Sources, dir: &Path) -> Result<Node, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let orb_file = dir.join("@orb.yml");
    let mut top = match read_yaml(sources, &orb_file) {
        Ok(node) => node.as_map().cloned().unwrap_or_default(),
        Err(d) => {
            problems.push(d.with_hint(
                "an orb source folder holds @orb.yml (version, description, orbs ...) and \
                 commands/, jobs/, executors/, examples/ with one file per element",
            ));
            Map::default()
        }
    };
    for section in SECTIONS {
        match read_section(sources, dir, section) {
            Ok(Some(map)) => top.insert(section, Span::default(), map),
            Ok(None) => {}
            Err(mut found) => problems.append(&mut found),
        }
    }
    let mut orb = Node::new(Span::default(), Kind::Map(top));
    include_files(dir, &mut orb, &mut problems);
    if problems.is_empty() {
        Ok(orb)
    } else {
        Err(problems)
    }
}

/// `commands/greet.yml` ... as a map `greet: <contents>`, in file-name order; `None` when the
/// folder does not exist.
fn read_section(
    sources: &mut Sources,
    dir: &Path,
    section: &str,
) -> Result<Option<Node>, Vec<Diagnostic>> {
    let folder = dir.join(section);
    let Ok(listing) = std::fs::read_dir(&folder) else {
        return Ok(None);
    };
    let mut files: Vec<PathBuf> = listing
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    let mut map = Map::default();
    let mut problems = Vec::new();
    for file in files {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_yaml(sources, &file) {
            Ok(node) => map.insert(name, node.span.head(), node),
            Err(d) => problems.push(d),
        }
    }
    if problems.is_empty() {
        Ok(Some(Node::new(Span::default(), Kind::Map(map))))
    } else {
        Err(problems)
    }
}

fn read_text(path: &Path) -> Result<String, Diagnostic> {
    let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_FILE);
    if too_big {
        return Err(Diagnostic::bare(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_FILE >> 20
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::bare(format!("cannot read {}: {e}", path.display())))
}

fn read_yaml(sources: &mut Sources, path: &Path) -> Result<Node, Diagnostic> {
    let text = read_text(path)?;
    let id = sources.add(Source::new(path, text));
    crate::yaml::parse(sources.get(id), id)
}

/// Replaces every `<<include(file)>>` string under `node` by the file's text.
fn include_files(dir: &Path, node: &mut Node, problems: &mut Vec<Diagnostic>) {
    match &mut node.kind {
        Kind::Str(s) => {
            let Some(target) = INCLUDE.captures(s).map(|c| c[1].trim().to_string()) else {
                return;
            };
            match included(dir, &target) {
                Ok(text) => *s = text,
                // Every string comes from a file read, so its span is a real place.
                Err(d) => problems.push(Diagnostic {
                    span: Some(node.span),
                    ..d
                }),
            }
        }
        Kind::Seq(items) => {
            for item in items {
                include_files(dir, item, problems);
            }
        }
        Kind::Map(map) => {
            for Entry { value, .. } in &mut map.entries {
                include_files(dir, value, problems);
            }
        }
        _ => {}
    }
}

/// The text of an included file, which must stay inside the orb folder.
fn included(dir: &Path, target: &str) -> Result<String, Diagnostic> {
    let relative = Path::new(target);
    let escapes = relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)));
    if escapes {
        return Err(
            Diagnostic::bare(format!("`<<include({target})>>` leaves the orb folder")).with_hint(
                "include files by a path relative to the orb folder, such as scripts/run.sh",
            ),
        );
    }
    read_text(&dir.join(relative)).map_err(|d| {
        d.with_hint(
            "the path of an include is relative to the orb folder (the one holding @orb.yml)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn packs_the_layout_with_includes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let d = dir.path();
        write(d, "@orb.yml", "version: 2.1\ndescription: Greets\n");
        write(
            d,
            "commands/greet.yml",
            "parameters:\n  to: {type: string, default: world}\nsteps:\n  - run:\n      command: <<include(scripts/greet.sh)>>\n",
        );
        write(d, "scripts/greet.sh", "echo \"hello $TO\"\n");
        write(
            d,
            "jobs/hello.yml",
            "docker: [{image: cimg/base:stable}]\nsteps: [greet]\n",
        );
        let mut sources = Sources::new();
        let orb = pack(&mut sources, d).expect("packs");
        let json = orb.to_json();
        assert_eq!(json["description"], "Greets");
        assert_eq!(
            json["commands"]["greet"]["steps"][0]["run"]["command"],
            "echo \"hello $TO\"\n"
        );
        assert_eq!(json["jobs"]["hello"]["steps"][0], "greet");
        assert!(json.get("executors").is_none());
    }

    #[test]
    fn includes_stay_inside_the_folder() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let d = dir.path();
        write(d, "@orb.yml", "version: 2.1\n");
        write(
            d,
            "commands/x.yml",
            "steps:\n  - run: <<include(../../etc/passwd)>>\n",
        );
        let mut sources = Sources::new();
        let problems = pack(&mut sources, d).expect_err("refused");
        assert!(problems[0].message.contains("leaves the orb folder"));
        assert!(problems[0].span.is_some());
    }

    #[test]
    fn a_folder_without_orb_yml_is_explained() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut sources = Sources::new();
        let problems = pack(&mut sources, dir.path()).expect_err("refused");
        assert!(problems[0].message.contains("@orb.yml"), "{problems:?}");
    }
}
