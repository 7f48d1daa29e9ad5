//! Job groups (top-level `job-groups:`, CircleCI configuration reference "job-groups"): a named
//! list of workflow job entries that a workflow invokes like one job. Expanding them rewrites
//! each workflow's `jobs:` list before anything else reads it, so `validate` and `process`
//! see the same workflows:
//! - a group entry (`- checks`, or `- checks: {requires: [build], serial-group: x}`) becomes
//!   the group's own entries, each also getting the group entry's settings it does not set
//!   itself (`requires` is added to its own);
//! - `requires: [checks]` elsewhere in the workflow requires every member of the group.
//!
//! Pure: a tree in, a tree out. Spans stay those of the text each entry was written in. A
//! group that names another group is not expanded again (CircleCI documents no nesting).

use crate::yaml::{Entry, Kind, Map, Node};

/// The config with every workflow's job groups expanded; `None` when it has no `job-groups`.
pub(crate) fn expand(config: &Node) -> Option<Node> {
    let groups = config.get("job-groups")?.as_map()?;
    let workflows = config.get("workflows")?.as_map()?;
    let mut out = config.clone();
    let mut expanded = workflows.clone();
    for wf in expanded.entries.iter_mut().filter(|e| e.key != "version") {
        if let Some(jobs) = wf.value.get("jobs").and_then(Node::as_seq) {
            let jobs = expand_list(jobs, groups);
            if let Some(slot) = wf.value.as_map_mut().and_then(|m| m.get_mut("jobs")) {
                slot.kind = Kind::Seq(jobs);
            }
        }
    }
    let slot = out.as_map_mut()?.get_mut("workflows")?;
    slot.kind = Kind::Map(expanded);
    Some(out)
}

/// The job name an entry invokes, and its settings map (if any).
fn invoked(entry: &Node) -> Option<(&str, Option<&Map>)> {
    match &entry.kind {
        Kind::Str(name) => Some((name, None)),
        Kind::Map(m) if m.len() == 1 => Some((&m.entries[0].key, m.entries[0].value.as_map())),
        _ => None,
    }
}

/// The name a member entry runs under: its `name:`, else its job.
fn final_name(entry: &Node) -> Option<String> {
    let (job, settings) = invoked(entry)?;
    let explicit = settings.and_then(|s| s.get("name")).and_then(Node::as_str);
    Some(explicit.unwrap_or(job).to_string())
}

fn members<'g>(groups: &'g Map, name: &str) -> Option<&'g [Node]> {
    groups.get(name)?.get("jobs")?.as_seq()
}

fn expand_list(jobs: &[Node], groups: &Map) -> Vec<Node> {
    let mut out = Vec::new();
    for entry in jobs {
        let Some((name, settings)) = invoked(entry) else {
            out.push(entry.clone());
            continue;
        };
        match members(groups, name) {
            Some(list) => out.extend(list.iter().map(|m| with_group_settings(m, settings))),
            None => out.push(entry.clone()),
        }
    }
    out.into_iter()
        .map(|entry| requiring_members(entry, groups))
        .collect()
}

/// A member entry with the group entry's settings added (its own win; `requires` add up).
fn with_group_settings(member: &Node, group: Option<&Map>) -> Node {
    let Some(group) = group.filter(|g| !g.is_empty()) else {
        return member.clone();
    };
    let Some((job, own)) = invoked(member) else {
        return member.clone();
    };
    let mut settings = own.cloned().unwrap_or_default();
    for e in group.entries.iter().filter(|e| e.key != "name") {
        match (e.key.as_str(), settings.get_mut(&e.key)) {
            (
                "requires",
                Some(Node {
                    kind: Kind::Seq(mine),
                    ..
                }),
            ) => {
                if let Some(theirs) = e.value.as_seq() {
                    mine.extend(theirs.iter().cloned());
                }
            }
            (_, Some(_)) => {}
            (_, None) => settings.entries.push(e.clone()),
        }
    }
    let key_span = member
        .as_map()
        .map_or(member.span, |m| m.entries[0].key_span);
    let entry = Entry {
        key: job.to_string(),
        key_span,
        value: Node::new(member.span, Kind::Map(settings)),
    };
    Node::new(member.span, Kind::Map(Map::from_entries(vec![entry])))
}

/// `requires: [group]` -> `requires: [member-a, member-b]`.
fn requiring_members(mut entry: Node, groups: &Map) -> Node {
    let Some(requires) = entry
        .as_map_mut()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.entries[0].value.as_map_mut())
        .and_then(|m| m.get_mut("requires"))
    else {
        return entry;
    };
    let Kind::Seq(items) = &requires.kind else {
        return entry;
    };
    let mut out = Vec::new();
    for item in items {
        let name = match &item.kind {
            Kind::Str(s) => Some(s.as_str()),
            Kind::Map(m) if m.len() == 1 => Some(m.entries[0].key.as_str()),
            _ => None,
        };
        match name.and_then(|n| members(groups, n)) {
            Some(list) => out.extend(list.iter().filter_map(final_name).map(|n| {
                let mut required = item.clone();
                match &mut required.kind {
                    Kind::Map(m) => m.entries[0].key = n,
                    kind => *kind = Kind::Str(n),
                }
                required
            })),
            None => out.push(item.clone()),
        }
    }
    requires.kind = Kind::Seq(out);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Source};

    fn parse(text: &str) -> Node {
        crate::yaml::parse(&Source::new("t.yml", text.to_string()), FileId(0)).expect("YAML")
    }

    #[test]
    fn groups_expand_in_place_and_requirements_fan_in() {
        let config = parse(
            "job-groups:
  checks:
    jobs:
      - lint
      - test:
          requires: [lint]
workflows:
  main:
    jobs:
      - build
      - checks:
          requires: [build]
          serial-group: ci
      - deploy:
          requires: [checks]
",
        );
        let out = expand(&config).expect("a job group").to_json();
        let jobs = &out["workflows"]["main"]["jobs"];
        assert_eq!(
            jobs,
            &serde_json::json!([
                "build",
                {"lint": {"requires": ["build"], "serial-group": "ci"}},
                {"test": {"requires": ["lint", "build"], "serial-group": "ci"}},
                {"deploy": {"requires": ["lint", "test"]}},
            ])
        );
    }
}
