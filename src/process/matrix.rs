//! Matrix job entries: the Cartesian product of the parameter value lists, minus `exclude`d
//! combinations. Parameters are taken in alphabetical order, which is both the order of the
//! product and of the values in generated names (`build-macos-0.1` for `platform` and
//! `version`, as in CircleCI's documentation).

use crate::diagnostic::Diagnostic;
use crate::yaml::{Kind, Map, Node};

use super::context::{Ctx, Res};
use super::value::{same, text};

/// The most instances one matrix may have (the product of its value lists, before
/// `exclude`). Real matrices have a few dozen; `validate` checks the same limit.
pub(crate) const MAX_INSTANCES: u64 = 4096;

/// One combination: (parameter, value), sorted by parameter name.
pub(crate) type Combination = Vec<(String, Node)>;

pub(crate) struct Matrix {
    pub combinations: Vec<Combination>,
    pub alias: Option<String>,
}

/// Reads a (substituted) `matrix:` map.
pub(crate) fn expand(ctx: &mut Ctx, matrix: &Node) -> Res<Matrix> {
    let Some(params) = matrix.get("parameters").and_then(Node::as_map) else {
        return Err(ctx.error(
            Diagnostic::error(
                matrix.span,
                "a matrix needs `parameters:`, a map of parameter: [values]",
            )
            .with_hint("matrix:\n  parameters:\n    version: [\"3.11\", \"3.12\"]"),
        ));
    };
    let mut axes: Vec<(String, &[Node])> = Vec::new();
    for e in &params.entries {
        match e.value.as_seq() {
            Some(values) if !values.is_empty() => axes.push((e.key.clone(), values)),
            _ => {
                return Err(ctx.error(Diagnostic::error(
                    e.value.span,
                    format!(
                        "matrix parameter {} needs a non-empty list of values",
                        e.key
                    ),
                )));
            }
        }
    }
    let product = instances(axes.iter().map(|(_, values)| values.len()));
    if product > MAX_INSTANCES {
        return Err(ctx.error(too_many(matrix, product)));
    }
    let mut combinations = combine(&mut axes);
    if let Some(exclude) = matrix.get("exclude") {
        let Some(rules) = exclude.as_seq() else {
            return Err(ctx.error(Diagnostic::error(
                exclude.span,
                "`exclude` is a list of parameter maps",
            )));
        };
        for rule in rules {
            let Some(rule_map) = rule.as_map() else {
                return Err(ctx.error(Diagnostic::error(
                    rule.span,
                    "each `exclude` item is a map of parameter: value",
                )));
            };
            if let Some(e) = rule_map
                .entries
                .iter()
                .find(|e| !axes.iter().any(|(n, _)| *n == e.key))
            {
                return Err(ctx.error(Diagnostic::error(
                    e.key_span,
                    format!("`exclude` names {}, which is not a matrix parameter", e.key),
                )));
            }
            combinations.retain(|c| !excludes(rule_map, c));
        }
    }
    let alias = match matrix.get("alias") {
        None => None,
        Some(Node {
            kind: Kind::Str(s), ..
        }) => Some(s.clone()),
        Some(other) => {
            return Err(ctx.error(Diagnostic::error(
                other.span,
                "a matrix `alias` is a name (a string)",
            )));
        }
    };
    if combinations.is_empty() {
        return Err(ctx.error(Diagnostic::error(
            matrix.span,
            "`exclude` removes every combination of this matrix",
        )));
    }
    Ok(Matrix {
        combinations,
        alias,
    })
}

/// The Cartesian product of the value lists, parameters in alphabetical order (which `axes`
/// is sorted into): the order of the instances and of the values in their generated names.
/// `validate` lists the instance names from the same product.
pub(crate) fn combine(axes: &mut [(String, &[Node])]) -> Vec<Combination> {
    axes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut combinations: Vec<Combination> = vec![Vec::new()];
    for (name, values) in axes.iter() {
        combinations = combinations
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut next = c.clone();
                    next.push((name.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    combinations
}

/// Whether an `exclude` item (parameter: value) removes this combination: every value of the
/// combination is the item's.
pub(crate) fn excludes(rule: &Map, combination: &Combination) -> bool {
    combination
        .iter()
        .all(|(k, v)| rule.get(k).is_some_and(|r| same(r, v)))
}

/// The number of combinations of value lists of these lengths (saturating).
pub(crate) fn instances(lengths: impl Iterator<Item = usize>) -> u64 {
    lengths.fold(1u64, |n, len| n.saturating_mul(len as u64))
}

/// The error for a matrix with more than [`MAX_INSTANCES`] combinations, at its `parameters`.
pub(crate) fn too_many(matrix: &Node, product: u64) -> Diagnostic {
    let at = matrix
        .as_map()
        .and_then(|m| m.entry("parameters"))
        .map_or(matrix.span, |e| e.key_span);
    let count = if product == u64::MAX {
        "more than 2^64".to_string()
    } else {
        product.to_string()
    };
    Diagnostic::error(
        at,
        format!("this matrix has {count} combinations; at most {MAX_INSTANCES} are expanded"),
    )
    .with_hint(
        "the number of jobs is the product of the lengths of the value lists (`exclude` applies \
         after that); split the entry into several, or use fewer values",
    )
}

/// `<job>-<value>-<value>...`
pub(crate) fn generated_name(ctx: &mut Ctx, job: &str, combination: &Combination) -> Res<String> {
    default_name(job, combination).map_err(|(param, value)| {
        ctx.error(Diagnostic::error(
            value.span,
            format!("matrix value of {param} must be a scalar to name the job"),
        ))
    })
}

/// `<job>-<value>-<value>...` with values as the compiler prints them (an unquoted `3.10` is
/// `3.1`); the parameter and value that is not a scalar otherwise.
pub(crate) fn default_name<'c>(
    job: &str,
    combination: &'c Combination,
) -> Result<String, (&'c str, &'c Node)> {
    let mut name = job.to_string();
    for (param, value) in combination {
        let t = text(value).ok_or((param.as_str(), value))?;
        name.push('-');
        name.push_str(&t);
    }
    Ok(name)
}
