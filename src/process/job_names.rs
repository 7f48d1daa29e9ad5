//! The final names of a workflow's jobs (configuration reference, workflows > jobs > name):
//! `name:` when given, else the job's (or matrix instance's) name, and unnamed repeats of one
//! name numbered `name-1`, `name-2`, ... The one naming rule: the compiler names its output
//! with it, and `validate` checks `requires` and duplicate names against it.
//!
//! Pure: names in, names out.

use std::collections::HashMap;

/// One job of a workflow before naming: its base name, and whether `name:` gave it.
#[derive(Clone, Debug)]
pub(crate) struct Unnamed {
    pub base: String,
    pub explicit: bool,
}

/// The final name of each job, in order.
pub(crate) fn final_names(jobs: &[Unnamed]) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for job in jobs {
        *counts.entry(job.base.as_str()).or_default() += 1;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    jobs.iter()
        .map(|job| {
            if job.explicit || counts[job.base.as_str()] < 2 {
                return job.base.clone();
            }
            let n = seen.entry(job.base.as_str()).or_default();
            *n += 1;
            format!("{}-{n}", job.base)
        })
        .collect()
}

/// Each name that repeats an earlier one: (its index, the index of the first).
pub(crate) fn duplicates(names: &[String]) -> Vec<(usize, usize)> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match first.get(name.as_str()) {
            Some(&f) => out.push((i, f)),
            None => {
                first.insert(name, i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(list: &[(&str, bool)]) -> Vec<Unnamed> {
        list.iter()
            .map(|(base, explicit)| Unnamed {
                base: (*base).to_string(),
                explicit: *explicit,
            })
            .collect()
    }

    #[test]
    fn unnamed_repeats_are_numbered() {
        let names = final_names(&jobs(&[
            ("build", false),
            ("test", false),
            ("build", false),
        ]));
        assert_eq!(names, ["build-1", "test", "build-2"]);
        assert!(duplicates(&names).is_empty());
    }

    #[test]
    fn a_name_keeps_its_entry_out_of_the_numbering() {
        let names = final_names(&jobs(&[("build", false), ("build", true)]));
        assert_eq!(names, ["build-1", "build"]);
        assert!(duplicates(&names).is_empty());
    }

    #[test]
    fn repeated_names_and_numbered_collisions_are_duplicates() {
        let names = final_names(&jobs(&[("unit", true), ("unit", true)]));
        assert_eq!(duplicates(&names), [(1, 0)]);
        let names = final_names(&jobs(&[
            ("build", false),
            ("build", false),
            ("build-1", true),
        ]));
        assert_eq!(duplicates(&names), [(2, 0)]);
    }
}
