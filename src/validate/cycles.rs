//! `requires` cycles in one workflow. Every entry on a cycle gets its own error, at its job
//! name, showing the cycle through it (as the language server does).

use std::collections::HashMap;

use super::ctx::Ctx;
use super::entries::JobEntry;
use crate::diagnostic::Diagnostic;

pub(crate) fn check(cx: &mut Ctx<'_>, jobs: &[JobEntry<'_>]) {
    let edges = edges(jobs);
    let mut required = vec![false; jobs.len()];
    for &j in edges.iter().flatten() {
        required[j] = true;
    }
    for (i, job) in jobs.iter().enumerate() {
        // Only an entry that requires and is required can be on a cycle.
        if edges[i].is_empty() || !required[i] {
            continue;
        }
        let Some(cycle) = shortest_cycle(&edges, i) else {
            continue;
        };
        let path: Vec<&str> = cycle.iter().map(|&j| jobs[j].name()).collect();
        cx.push(
            Diagnostic::error(
                job.job_span,
                format!(
                    "`{}` is part of a `requires` cycle: {}",
                    job.name(),
                    path.join(" -> ")
                ),
            )
            .with_hint("a job cannot wait for itself; remove one of the `requires` on this cycle")
            .with_pointer(&job.ptr),
        );
    }
}

/// For each entry, the entries it requires.
fn edges(jobs: &[JobEntry<'_>]) -> Vec<Vec<usize>> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        for name in &job.names {
            by_name.entry(name.as_str()).or_default().push(i);
        }
    }
    jobs.iter()
        .map(|job| {
            let mut out: Vec<usize> = job
                .requires
                .iter()
                .filter_map(|req| by_name.get(req.name))
                .flatten()
                .copied()
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        })
        .collect()
}

/// The shortest path from `start` back to `start` (breadth first), as entry indices with
/// `start` at both ends.
pub(crate) fn shortest_cycle(edges: &[Vec<usize>], start: usize) -> Option<Vec<usize>> {
    let mut previous: Vec<Option<usize>> = vec![None; edges.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = vec![false; edges.len()];
    while let Some(node) = queue.pop_front() {
        for &next in &edges[node] {
            if next == start {
                return Some(path_back(&previous, node, start));
            }
            if !seen[next] {
                seen[next] = true;
                previous[next] = Some(node);
                queue.push_back(next);
            }
        }
    }
    None
}

fn path_back(previous: &[Option<usize>], last: usize, start: usize) -> Vec<usize> {
    let mut path = vec![last];
    let mut node = last;
    while node != start {
        match previous[node] {
            Some(p) => {
                path.push(p);
                node = p;
            }
            None => break,
        }
    }
    path.reverse();
    if path.first() != Some(&start) {
        path.insert(0, start);
    }
    path.push(start);
    path
}

#[cfg(test)]
mod tests {
    use super::shortest_cycle;

    #[test]
    fn finds_the_cycle_through_an_entry() {
        // 0 requires 1, 1 requires 2, 2 requires 0; 3 requires 0 but is on no cycle.
        let edges = vec![vec![1], vec![2], vec![0], vec![0]];
        assert_eq!(shortest_cycle(&edges, 0), Some(vec![0, 1, 2, 0]));
        assert_eq!(shortest_cycle(&edges, 2), Some(vec![2, 0, 1, 2]));
        assert_eq!(shortest_cycle(&edges, 3), None);
    }

    #[test]
    fn self_requirement_is_a_cycle() {
        assert_eq!(shortest_cycle(&[vec![0]], 0), Some(vec![0, 0]));
    }
}
