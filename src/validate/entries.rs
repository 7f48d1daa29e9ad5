//! The job entries of one workflow, read once: which job each calls, under which names other
//! entries can `require` it (its `name:`, its job name, its matrix alias and expanded names),
//! and what it requires.

use crate::source::Span;
use crate::yaml::{Kind, Map, Node, pointer_token};

use crate::process::binding::compiled_text;
use crate::process::matrix::{
    Combination, MAX_INSTANCES, combine, default_name, excludes, instances,
};

/// One entry of a workflow's `jobs:` list.
#[derive(Debug)]
pub(crate) struct JobEntry<'a> {
    pub job: &'a str,
    pub job_span: Span,
    /// Pointer of the list item.
    pub ptr: String,
    /// Pointer of the entry's settings map.
    pub body_ptr: String,
    pub settings: Option<&'a Map>,
    pub explicit_name: Option<&'a Node>,
    pub matrix: Option<&'a Map>,
    pub approval: bool,
    /// The base name of each job the entry makes (one, or one per matrix instance), before
    /// unnamed repeats are numbered (`process::job_names`).
    pub instances: Vec<String>,
    /// Every name `requires` may use for this entry, but the numbered ones.
    pub names: Vec<String>,
    pub requires: Vec<Requirement<'a>>,
}

impl<'a> JobEntry<'a> {
    /// The entry's own name: `name:` when given, else the job name.
    pub(crate) fn name(&self) -> &'a str {
        self.explicit_name
            .and_then(Node::as_str)
            .unwrap_or(self.job)
    }
}

/// One name in a `requires` list.
#[derive(Debug)]
pub(crate) struct Requirement<'a> {
    pub name: &'a str,
    pub span: Span,
    pub ptr: String,
}

pub(crate) fn parse<'a>(list: &'a [Node], ptr: &str) -> Vec<JobEntry<'a>> {
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let item_ptr = format!("{ptr}/{i}");
        match &item.kind {
            Kind::Str(job) => out.push(entry(job, item.span, None, item_ptr.clone(), item_ptr)),
            Kind::Map(map) => {
                for e in &map.entries {
                    let body_ptr = format!("{item_ptr}/{}", pointer_token(&e.key));
                    out.push(entry(
                        &e.key,
                        e.key_span,
                        e.value.as_map(),
                        item_ptr.clone(),
                        body_ptr,
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

fn entry<'a>(
    job: &'a str,
    job_span: Span,
    settings: Option<&'a Map>,
    ptr: String,
    body_ptr: String,
) -> JobEntry<'a> {
    let get = |key: &str| settings.and_then(|s| s.get(key));
    let matrix = get("matrix")
        .and_then(|m| m.get("parameters"))
        .and_then(Node::as_map);
    // Only `approval` may be set as a type; any `type:` (even a misspelled one, which the
    // schema reports) marks an entry that does not call a job.
    let approval = get("type").is_some();
    let explicit_name = get("name");
    let mut entry = JobEntry {
        job,
        job_span,
        requires: requirements(get("requires"), &body_ptr),
        ptr,
        body_ptr,
        settings,
        explicit_name,
        matrix,
        approval,
        instances: Vec::new(),
        names: Vec::new(),
    };
    entry.instances = instance_bases(&entry);
    entry.names = names(&entry, get("matrix"));
    entry
}

fn instance_bases(entry: &JobEntry<'_>) -> Vec<String> {
    let own = entry.explicit_name.and_then(Node::scalar_text);
    match entry.settings.and_then(|s| s.get("matrix")) {
        Some(matrix) if entry.matrix.is_some() => expand(entry.job, own.as_deref(), matrix),
        _ => vec![own.unwrap_or_else(|| entry.job.to_string())],
    }
}

/// `matrix` is the entry's `matrix:` (alias, parameters, exclude).
fn names(entry: &JobEntry<'_>, matrix: Option<&Node>) -> Vec<String> {
    let (Some(matrix), Some(_)) = (matrix, entry.matrix) else {
        return entry.instances.clone();
    };
    let mut names = vec![
        matrix
            .get("alias")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| entry.job.to_string()),
    ];
    names.extend(entry.instances.iter().cloned());
    names
}

/// The names of a matrix's instances, from the compiler's product and exclusions
/// (`process::matrix`): `name:` with `<< matrix.p >>` filled in, or `job-v1-v2` with values in
/// parameter-name order, as the compiler prints them.
fn expand(job: &str, template: Option<&str>, matrix: &Node) -> Vec<String> {
    let Some(params) = matrix.get("parameters").and_then(Node::as_map) else {
        return Vec::new();
    };
    let mut axes: Vec<(String, &[Node])> = params
        .entries
        .iter()
        .map(|e| (e.key.clone(), e.value.as_seq().unwrap_or_default()))
        .collect();
    // A matrix over the compiler's limit is reported elsewhere; its names are not listed.
    if instances(axes.iter().map(|(_, values)| values.len())) > MAX_INSTANCES {
        return Vec::new();
    }
    let mut combinations = combine(&mut axes);
    let rules = matrix
        .get("exclude")
        .and_then(Node::as_seq)
        .unwrap_or_default();
    combinations.retain(|c| {
        !rules
            .iter()
            .filter_map(Node::as_map)
            .any(|r| excludes(r, c))
    });
    combinations
        .iter()
        .filter_map(|c| match template {
            Some(template) => Some(fill(template, c)),
            None => default_name(job, c).ok(),
        })
        .collect()
}

/// `name:` of a matrix entry with `<< matrix.p >>` filled in.
fn fill(template: &str, combination: &Combination) -> String {
    let mut name = template.to_string();
    for (param, value) in combination {
        let Some(value) = compiled_text(value) else {
            continue;
        };
        for spelled in [
            format!("<< matrix.{param} >>"),
            format!("<<matrix.{param}>>"),
        ] {
            name = name.replace(&spelled, &value);
        }
    }
    name
}

fn requirements<'a>(node: Option<&'a Node>, ptr: &str) -> Vec<Requirement<'a>> {
    let Some(items) = node.and_then(Node::as_seq) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ptr = format!("{ptr}/requires/{i}");
        match &item.kind {
            Kind::Str(name) => out.push(Requirement {
                name,
                span: item.span,
                ptr,
            }),
            Kind::Map(map) => out.extend(map.entries.iter().map(|e| Requirement {
                name: &e.key,
                span: e.key_span,
                ptr: format!("{ptr}/{}", pointer_token(&e.key)),
            })),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::source::{FileId, Source};

    fn names(yaml: &str) -> Vec<Vec<String>> {
        let source = Source::new("x.yml", yaml.to_string());
        let node = crate::yaml::parse(&source, FileId(0)).expect("valid YAML");
        let list = node.as_seq().expect("a list");
        parse(list, "/jobs").into_iter().map(|e| e.names).collect()
    }

    #[test]
    fn plain_and_named_entries() {
        assert_eq!(
            names("- build\n- build: {name: b2}\n"),
            vec![vec!["build".to_string()], vec!["b2".to_string()]]
        );
    }

    #[test]
    fn matrix_names_alias_and_instances() {
        let yaml =
            "- test:\n    matrix:\n      parameters:\n        v: [1, 2]\n        os: [linux]\n";
        assert_eq!(
            names(yaml),
            vec![vec!["test", "test-linux-1", "test-linux-2"]]
        );
        let yaml = "- test:\n    name: t-<< matrix.v >>\n    matrix:\n      alias: all\n      parameters:\n        v: [1, 2]\n";
        assert_eq!(names(yaml), vec![vec!["all", "t-1", "t-2"]]);
    }

    /// See: issue 8. The names are the compiler's: `exclude` applies, and an unquoted 3.10 is
    /// the number 3.1 (`requires: [test-3.10]` would name nothing).
    #[test]
    fn matrix_names_are_the_compilers() {
        let yaml = "- test:\n    matrix:\n      parameters:\n        v: [3.10, \"3.10\", 2]\n      exclude:\n        - v: 2\n";
        assert_eq!(names(yaml), vec![vec!["test", "test-3.1", "test-3.10"]]);
    }
}
