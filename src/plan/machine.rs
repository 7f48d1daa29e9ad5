//! Which local image runs a `machine:` job. CircleCI runs machine jobs in a VM made from a
//! named image (`ubuntu-2204:2024.01.1`, `default`, `machine: true`); locally they run in a
//! Linux image the user names, by `--machine-image` or in the per-user config file
//! (`docs/execute.md`, "Machine jobs"). Pure: the caller reads the flag and the file.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::{Executor, Job, Machine};
use crate::diagnostic::Diagnostic;

/// The CircleCI name of the image of `machine: true` and of a `machine:` without `image`.
pub const DEFAULT_NAME: &str = "default";

/// Where machine images come from: the command line first, then the per-user file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineImages {
    /// `--machine-image IMAGE`: every machine job runs in IMAGE.
    pub every: Option<String>,
    /// `--machine-image NAME=IMAGE` entries, in order.
    pub flags: Vec<(String, String)>,
    /// The file's `[machine.images]` entries, in order.
    pub file: Vec<(String, String)>,
    /// The per-user config file, for the hint (whether or not it exists).
    pub file_path: Option<PathBuf>,
}

/// A machine job's image, decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MachinePlan {
    /// The image the config names (`default` for `machine: true`).
    pub image: String,
    /// The local image that stands in for it.
    pub local_image: String,
    /// `docker_layer_caching: true` (nothing to do locally: the engine keeps its layers).
    pub docker_layer_caching: bool,
}

impl MachineImages {
    /// The local image for the CircleCI image `name`: `--machine-image IMAGE`, then the
    /// flags' and then the file's entries, each tried as the exact name (`ubuntu-2204:2024.01.1`),
    /// the name without its tag (`ubuntu-2204`), then `*`.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        if let Some(every) = &self.every {
            return Some(every);
        }
        find(&self.flags, name).or_else(|| find(&self.file, name))
    }
}

fn find<'a>(entries: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let family = name.split_once(':').map_or(name, |(family, _)| family);
    [name, family, "*"].into_iter().find_map(|key| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    })
}

/// The image of the machine job `job` (running as `run_name`), or why it cannot run.
pub fn plan_machine(
    job: &Job,
    machine: &Machine,
    run_name: &str,
    images: &MachineImages,
) -> Result<MachinePlan, Diagnostic> {
    let name = machine.image.as_deref().unwrap_or(DEFAULT_NAME);
    if name.starts_with("windows-") {
        return Err(Diagnostic::error(
            job.span,
            format!(
                "job `{run_name}` uses the Windows machine image `{name}`, which localci cannot run"
            ),
        )
        .with_hint("localci runs machine jobs in a Linux container; run this job on CircleCI"));
    }
    let Some(local) = images.resolve(name) else {
        return Err(Diagnostic::error(
            job.span,
            format!("job `{run_name}` is a machine job (image `{name}`) and no local image is set for it"),
        )
        .with_hint(missing_hint(name, images)));
    };
    Ok(MachinePlan {
        image: name.to_string(),
        local_image: local.to_string(),
        docker_layer_caching: machine.docker_layer_caching,
    })
}

/// For `localci plan` and `list`: the image a machine job runs in, or that it has none;
/// `None` for other jobs.
pub fn machine_note(job: &Job, images: &MachineImages) -> Option<String> {
    let Executor::Machine(machine) = &job.executor else {
        return None;
    };
    let name = machine.image.as_deref().unwrap_or(DEFAULT_NAME);
    Some(match images.resolve(name) {
        Some(local) => format!("machine {name} runs in {local}"),
        None => format!("machine {name}: no local image, give --machine-image"),
    })
}

/// How to give a machine image: the flag and the file.
pub fn missing_hint(name: &str, images: &MachineImages) -> String {
    let file = images.file_path.as_ref().map_or_else(
        || "~/.config/localci/config.yml".to_string(),
        |p| p.display().to_string(),
    );
    format!(
        "machine jobs run in a Linux image you choose: pass --machine-image IMAGE (an image with bash, and the docker CLI if the job uses Docker), or map it in {file}:\n  machine:\n    images:\n      \"{name}\": IMAGE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn the_flag_wins_then_exact_names_then_families_then_the_star() {
        let images = MachineImages {
            every: None,
            flags: pairs(&[("ubuntu-2204", "flag/family")]),
            file: pairs(&[
                ("ubuntu-2204:2024.01.1", "file/exact"),
                ("ubuntu-2004", "file/2004"),
                ("default", "file/default"),
                ("*", "file/any"),
            ]),
            file_path: None,
        };
        // A flag entry beats the file, even the file's exact name.
        assert_eq!(images.resolve("ubuntu-2204:2024.01.1"), Some("flag/family"));
        assert_eq!(images.resolve("ubuntu-2004:current"), Some("file/2004"));
        assert_eq!(images.resolve("default"), Some("file/default"));
        assert_eq!(images.resolve("android:2024.01.1"), Some("file/any"));
        let every = MachineImages {
            every: Some("cli/every".into()),
            ..images
        };
        assert_eq!(every.resolve("ubuntu-2004:current"), Some("cli/every"));
        assert_eq!(MachineImages::default().resolve("default"), None);
    }

    #[test]
    fn an_exact_name_beats_its_family_in_one_source() {
        let images = MachineImages {
            file: pairs(&[("ubuntu-2204", "family"), ("ubuntu-2204:edge", "exact")]),
            ..MachineImages::default()
        };
        assert_eq!(images.resolve("ubuntu-2204:edge"), Some("exact"));
        assert_eq!(images.resolve("ubuntu-2204:current"), Some("family"));
    }
}
