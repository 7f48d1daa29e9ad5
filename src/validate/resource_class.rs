//! `resource_class` values: a class that fits the executor's platform (no Windows or macOS
//! class on a Linux machine image, a macOS class on a macOS executor) is an error to break.
//! Whether a class exists is decided on CircleCI's servers, against the plan and the
//! organisation's runners (`namespace/name`), and the list changes: a class localci does not
//! know is a warning, never an error (circleci-semantics.md 4.1). Doubtful combinations are
//! left alone.

use super::ctx::Ctx;
use super::model::{Def, ElementKind, Lookup, NsId};
use super::suggest::did_you_mean;
use super::template;
use crate::diagnostic::Diagnostic;
use crate::process::language::executor_ref;
use crate::yaml::{Map, Node};

/// Where a job runs, as far as resource classes care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Platform {
    Docker,
    Linux,
    Windows,
    MacOs,
    Unknown,
}

/// Which platforms a class name belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// small, medium, large ... and arm.*, gpu.*: Linux (Docker or machine).
    Linux,
    Windows,
    MacOs,
    SelfHosted,
}

/// Classes offered as suggestions for a misspelling.
const KNOWN: [&str; 20] = [
    "small",
    "medium",
    "medium+",
    "large",
    "xlarge",
    "2xlarge",
    "2xlarge+",
    "arm.medium",
    "arm.large",
    "arm.xlarge",
    "arm.2xlarge",
    "gpu.nvidia.small",
    "gpu.nvidia.medium",
    "gpu.nvidia.large",
    "windows.medium",
    "windows.large",
    "windows.xlarge",
    "windows.2xlarge",
    "macos.m1.medium.gen1",
    "m4pro.medium",
];

const SIZES: [&str; 7] = [
    "small", "medium", "medium+", "large", "xlarge", "2xlarge", "2xlarge+",
];

/// Checks the resource classes of a job or executor definition.
pub(crate) fn check(cx: &mut Ctx<'_>, def: &Def<'_>) {
    let Some(body) = def.body().as_map() else {
        return;
    };
    let platform = platform(cx, def.ns, body, 0);
    if let Some(value) = body.get("resource_class") {
        check_value(cx, value, platform, &format!("{}/resource_class", def.ptr));
    }
    for key in ["machine", "macos"] {
        if let Some(value) = body.get(key).and_then(|m| m.get("resource_class")) {
            check_value(
                cx,
                value,
                platform,
                &format!("{}/{key}/resource_class", def.ptr),
            );
        }
    }
}

fn platform(cx: &Ctx<'_>, ns: NsId, body: &Map, depth: usize) -> Platform {
    if body.contains_key("docker") {
        return Platform::Docker;
    }
    if body.contains_key("macos") {
        return Platform::MacOs;
    }
    if let Some(machine) = body.get("machine") {
        let image = machine.get("image").and_then(Node::as_str).unwrap_or("");
        return if image.starts_with("windows-") {
            Platform::Windows
        } else {
            Platform::Linux
        };
    }
    let Some(name) = body.get("executor").and_then(executor_ref).map(|r| r.name) else {
        return Platform::Unknown;
    };
    match cx.model.lookup(ns, ElementKind::Executor, name) {
        Lookup::Found(def) if depth < 4 => def
            .body()
            .as_map()
            .map_or(Platform::Unknown, |b| platform(cx, def.ns, b, depth + 1)),
        _ => Platform::Unknown,
    }
}

fn family(class: &str) -> Option<Family> {
    if class.contains('/') {
        return Some(Family::SelfHosted);
    }
    let base = strip_generation(class);
    if SIZES.contains(&base) || class.starts_with("arm.") || class.starts_with("gpu.") {
        return Some(Family::Linux);
    }
    if class.starts_with("windows.") {
        return Some(Family::Windows);
    }
    let apple = class.starts_with("macos.")
        || class.starts_with("macos-")
        || class.split_once('.').is_some_and(|(chip, _)| {
            chip.starts_with('m') && chip.chars().nth(1).is_some_and(|c| c.is_ascii_digit())
        });
    apple.then_some(Family::MacOs)
}

/// `large.gen3` -> `large`: a hardware generation does not change the family.
fn strip_generation(class: &str) -> &str {
    match class.rsplit_once(".gen") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => class,
    }
}

fn check_value(cx: &mut Ctx<'_>, value: &Node, platform: Platform, ptr: &str) {
    let Some(class) = value.as_str() else { return };
    if template::is_templated(class) {
        return;
    }
    let Some(family) = family(class) else {
        cx.push(unknown(value, class, platform).with_pointer(ptr));
        return;
    };
    let clash = matches!(
        (platform, family),
        (
            Platform::Docker | Platform::Linux,
            Family::Windows | Family::MacOs
        ) | (Platform::Windows, Family::MacOs)
            | (Platform::MacOs, Family::Windows)
    );
    if clash {
        let (kind, runs) = (family_name(family), platform_name(platform));
        cx.push(
            Diagnostic::error(
                value.span,
                format!("`{class}` is a {kind} resource class, but this runs on {runs}"),
            )
            .with_hint(format!(
                "pick a resource class for {runs}, or change the executor"
            ))
            .with_pointer(ptr),
        );
    }
}

/// A class of no known family: on macOS that cannot be a macOS class (an error, like a
/// Windows class there); elsewhere it may be a private or new class (a warning).
fn unknown(value: &Node, class: &str, platform: Platform) -> Diagnostic {
    if platform == Platform::MacOs {
        return Diagnostic::error(
            value.span,
            format!("`{class}` is not a macOS resource class, but this runs on macOS"),
        )
        .with_hint("use a macOS class such as `m4pro.medium` or `macos.m1.medium.gen1`");
    }
    let mut message = format!("`{class}` is not a resource class localci knows");
    if let Some(best) = did_you_mean(class, KNOWN) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    Diagnostic::warning(value.span, message).with_hint(
        "CircleCI checks resource classes when the pipeline runs (private, runner \
         `namespace/name` and new classes exist); check the spelling against the resource class tables",
    )
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Linux => "Linux",
        Family::Windows => "Windows",
        Family::MacOs => "macOS",
        Family::SelfHosted => "self-hosted runner",
    }
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Docker => "Docker",
        Platform::Linux => "a Linux machine image",
        Platform::Windows => "a Windows machine image",
        Platform::MacOs => "macOS",
        Platform::Unknown => "this executor",
    }
}

#[cfg(test)]
mod tests {
    use super::{Family, family};

    #[test]
    fn classifies_classes() {
        assert_eq!(family("medium+"), Some(Family::Linux));
        assert_eq!(family("large.gen2"), Some(Family::Linux));
        assert_eq!(family("large.gen3"), Some(Family::Linux));
        assert_eq!(family("macos-m1-medium-gen1"), Some(Family::MacOs));
        assert_eq!(family("large.genx"), None);
        assert_eq!(family("arm.xlarge"), Some(Family::Linux));
        assert_eq!(family("gpu.nvidia.medium"), Some(Family::Linux));
        assert_eq!(family("windows.2xlarge"), Some(Family::Windows));
        assert_eq!(family("macos.m1.large.gen1"), Some(Family::MacOs));
        assert_eq!(family("m4pro.medium"), Some(Family::MacOs));
        assert_eq!(family("my-org/runner"), Some(Family::SelfHosted));
        assert_eq!(family("toto"), None);
        assert_eq!(family("mé.x"), None);
    }
}
