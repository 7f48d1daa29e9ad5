//! `requires` cycles in one workflow. Every entry on a cycle gets its own error, at its job
//! name, showing the cycle through it (as the language server does).

use std::collections::HashMap;

use super::ctx::Ctx;
use super::entries::JobEntry;
use crate::diagnostic::Diagnostic;

pub(crate) fn check(cx: &mut Ctx<'_>, jobs: &[JobEntry<'_>]) {
    let edges = edges(jobs);
    let candidates = may_cycle(&edges);
    for (i, job) in jobs.iter().enumerate() {
        if !candidates[i] {
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

/// The nodes that may lie on a cycle: what is left after repeatedly removing nodes that
/// nothing points to, then nodes that point to nothing. Linear, so a search per node (which is
/// quadratic) only runs where a cycle is possible, not along a 100,000-long chain.
pub(crate) fn may_cycle(edges: &[Vec<usize>]) -> Vec<bool> {
    let mut reversed = vec![Vec::new(); edges.len()];
    for (from, targets) in edges.iter().enumerate() {
        for &to in targets {
            reversed[to].push(from);
        }
    }
    let mut alive = vec![true; edges.len()];
    trim(&reversed, edges, &mut alive);
    trim(edges, &reversed, &mut alive);
    alive
}

/// Removes, until none is left, the alive nodes with no alive `incoming` edge; `outgoing`
/// tells whose count drops when one goes.
fn trim(incoming: &[Vec<usize>], outgoing: &[Vec<usize>], alive: &mut [bool]) {
    let mut count: Vec<usize> = incoming
        .iter()
        .map(|from| from.iter().filter(|&&f| alive[f]).count())
        .collect();
    let mut queue: Vec<usize> = (0..alive.len())
        .filter(|&n| alive[n] && count[n] == 0)
        .collect();
    while let Some(node) = queue.pop() {
        alive[node] = false;
        for &next in &outgoing[node] {
            if alive[next] {
                count[next] -= 1;
                if count[next] == 0 {
                    queue.push(next);
                }
            }
        }
    }
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
    fn only_nodes_between_cycles_are_candidates() {
        // 0 -> 1 -> 2 -> 1 (a cycle), 2 -> 3 (a tail), 4 -> 0 (a head).
        let edges = vec![vec![1], vec![2], vec![1, 3], vec![], vec![0]];
        assert_eq!(
            super::may_cycle(&edges),
            vec![false, true, true, false, false]
        );
        let chain: Vec<Vec<usize>> = (0..100_000).map(|i| vec![i + 1]).chain([vec![]]).collect();
        assert!(super::may_cycle(&chain).iter().all(|c| !c));
    }

    #[test]
    fn self_requirement_is_a_cycle() {
        assert_eq!(shortest_cycle(&[vec![0]], 0), Some(vec![0, 0]));
    }
}
