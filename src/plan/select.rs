//! Which job definition `localci execute <name>` means: a job of the processed config, or a
//! named invocation in a workflow. A name that is neither gets an error that helps: a job that
//! exists only with parameters (a matrix, or invocations with arguments) lists the names it
//! runs under, and a misspelled name gets a did-you-mean. Pure: no I/O.

use crate::config::{Config, Job};
use crate::diagnostic::Diagnostic;

/// A name within one edit per this many characters of a known one is taken for a typo of it.
const TYPO_EVERY: usize = 3;

/// A job definition and the name it runs under (`CIRCLE_JOB`).
pub(crate) struct Selected<'a> {
    pub(crate) run_name: String,
    pub(crate) job: &'a Job,
}

pub(crate) fn select<'a>(config: &'a Config, name: &str) -> Result<Selected<'a>, Diagnostic> {
    if let Some(job) = config.jobs.get(name) {
        return Ok(Selected {
            run_name: name.to_string(),
            job,
        });
    }
    let invoked = config
        .workflows
        .iter()
        .flat_map(|w| &w.jobs)
        .find(|inv| inv.name.as_deref() == Some(name));
    if let Some(job) = invoked.and_then(|inv| config.jobs.get(&inv.job)) {
        return Ok(Selected {
            run_name: name.to_string(),
            job,
        });
    }
    Err(unknown(config, name))
}

/// Every name `execute` accepts, in config order, without repeats.
pub fn choices(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config.jobs.keys().cloned().collect();
    for inv in config.workflows.iter().flat_map(|w| &w.jobs) {
        if inv.approval || !config.jobs.contains_key(&inv.job) {
            continue;
        }
        let name = inv.run_name().to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn unknown(config: &Config, name: &str) -> Diagnostic {
    let names = choices(config);
    let runs = instances(config, &names, name);
    if !runs.is_empty() {
        return only_with_parameters(name, &runs);
    }
    let list = if names.is_empty() {
        "the config defines no jobs".to_string()
    } else {
        format!("the jobs are: {}", names.join(", "))
    };
    let hint = match closest(&names, name) {
        Some(n) => format!("did you mean `{n}`? {list}"),
        None => list,
    };
    Diagnostic::bare(format!("no job named `{name}` in the config")).with_hint(hint)
}

/// The names a job definition `name` with parameters runs under. Processing (2.1) compiles
/// one job per invocation and drops the definition itself; a matrix names its jobs
/// `<name>-<value>-...` (CircleCI, "Using matrix jobs"), and invocations are often named after
/// their job the same way. Each compiled job keeps the span of the key it was compiled from
/// (the invocation's `- name:`, or the definition's key), so a job is one of `name`'s when its
/// name starts with `<name>-` and that key is as long as `name`. A plain job `test-unit` (its
/// key is `test-unit`) is therefore not taken for an instance of `test`. An invocation with
/// arguments whose `name:` does not start with `<name>-` is not found this way: without the
/// source text, its key cannot be read.
fn instances(config: &Config, names: &[String], name: &str) -> Vec<String> {
    let prefix = format!("{name}-");
    names
        .iter()
        .filter(|n| n.starts_with(&prefix))
        .filter(|n| {
            compiled_from(config, n)
                .is_some_and(|len| len == name.len() || len == name.chars().count())
        })
        .cloned()
        .collect()
}

/// The length of the key the job that runs as `run_name` was compiled from.
fn compiled_from(config: &Config, run_name: &str) -> Option<usize> {
    let job = config.jobs.get(run_name)?;
    Some(job.span.end.saturating_sub(job.span.start) as usize)
}

fn only_with_parameters(name: &str, runs: &[String]) -> Diagnostic {
    let list = runs
        .iter()
        .map(|r| format!("`{r}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Diagnostic::bare(format!(
        "job `{name}` takes parameters, so it only runs as its invocations: {list}"
    ))
    .with_hint(format!(
        "run one of them, e.g. `localci execute {}`; each is a matrix instance or an invocation with its own arguments",
        runs[0]
    ))
}

/// The known name most like `name`, if it is close enough to be a typo of it: at most one
/// edit (insert, delete, change, swap) per three characters, and at least one allowed. The
/// first of equally close names wins, in config order.
fn closest<'a>(names: &'a [String], name: &str) -> Option<&'a String> {
    let lower = name.to_lowercase();
    let allowed = (name.chars().count() / TYPO_EVERY).max(1);
    let mut best: Option<(usize, &String)> = None;
    for n in names {
        let d = strsim::damerau_levenshtein(&n.to_lowercase(), &lower);
        if d <= allowed && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, n));
        }
    }
    best.map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Source, Sources};

    /// The config `execute` sees: 2.1 compiled with every job kept.
    fn processed(text: &str) -> Config {
        let mut sources = Sources::new();
        let id = sources.add(Source::new("t.yml", text.to_string()));
        let node = crate::yaml::parse(sources.get(id), id).expect("valid YAML");
        let options = crate::process::Options {
            all_jobs: true,
            ..crate::process::Options::default()
        };
        let out = crate::process::process(&mut sources, id, &node, &options).expect("compiles");
        crate::config::parse(&out.config).expect("valid config")
    }

    const MATRIX: &str = r#"
version: 2.1
jobs:
  test:
    parameters:
      py: {type: string}
    docker: [{image: busybox}]
    steps: [{run: "echo << parameters.py >>"}]
  test-unit:
    docker: [{image: busybox}]
    steps: [{run: echo unit}]
  test-e2e:
    docker: [{image: busybox}]
    steps: [{run: echo e2e}]
  lint:
    docker: [{image: busybox}]
    steps: [{run: echo lint}]
  deploy:
    parameters:
      env: {type: string}
    docker: [{image: busybox}]
    steps: [{run: "echo << parameters.env >>"}]
workflows:
  main:
    jobs:
      - lint
      - test:
          matrix:
            parameters:
              py: ["3.11", "3.12"]
      - deploy: {name: deploy-staging, env: staging}
      - deploy: {name: deploy-prod, env: prod}
"#;

    fn error(config: &Config, name: &str) -> (String, String) {
        let Err(d) = select(config, name) else {
            panic!("`{name}` should not be found");
        };
        (d.message, d.hint.unwrap_or_default())
    }

    #[test]
    fn a_matrix_job_lists_its_instances() {
        let config = processed(MATRIX);
        let (message, hint) = error(&config, "test");
        assert_eq!(
            message,
            "job `test` takes parameters, so it only runs as its invocations: `test-3.11`, `test-3.12`"
        );
        assert!(
            hint.starts_with("run one of them, e.g. `localci execute test-3.11`"),
            "{hint}"
        );
        let (message, _) = error(&config, "deploy");
        assert_eq!(
            message,
            "job `deploy` takes parameters, so it only runs as its invocations: `deploy-staging`, `deploy-prod`"
        );
    }

    #[test]
    fn unrelated_jobs_with_a_common_prefix_are_not_a_matrix() {
        let config = processed(
            "version: 2.1\njobs:\n  test-unit:\n    docker: [{image: b}]\n    steps: [{run: a}]\n  test-e2e:\n    docker: [{image: b}]\n    steps: [{run: b}]\n",
        );
        let (message, hint) = error(&config, "test");
        assert_eq!(message, "no job named `test` in the config");
        assert_eq!(hint, "the jobs are: test-unit, test-e2e");
    }

    #[test]
    fn a_misspelled_name_gets_a_did_you_mean() {
        let config = processed(MATRIX);
        let (message, hint) = error(&config, "lnit");
        assert_eq!(message, "no job named `lnit` in the config");
        assert!(
            hint.starts_with("did you mean `lint`? the jobs are: "),
            "{hint}"
        );
        let (_, hint) = error(&config, "test-3.13");
        assert!(hint.starts_with("did you mean `test-3.11`?"), "{hint}");
        let (_, hint) = error(&config, "release");
        assert!(hint.starts_with("the jobs are: "), "{hint}");
    }

    #[test]
    fn invocation_names_are_selected() {
        let config = processed(MATRIX);
        let Ok(selected) = select(&config, "deploy-prod") else {
            panic!("an invocation's name is a job to run");
        };
        assert_eq!(selected.run_name, "deploy-prod");
    }
}
