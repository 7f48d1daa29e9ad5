//! "Did you mean ...?" suggestions for misspelled keys, step names and references.
//!
//! Pure string work: an edit distance and a threshold. It knows nothing about configs.
//!
//! The comparisons of one validation are budgeted ([`SUGGESTION_BUDGET`]): tens of thousands
//! of misspelled names, each compared with tens of thousands of jobs, took minutes (issue 9).

use std::cell::Cell;

/// How many candidates the suggestions of one validation may compare in all. A real config's
/// few typos against a few hundred names spend a small part of it; past it, errors come
/// without the hint.
pub(crate) const SUGGESTION_BUDGET: usize = 2_000_000;

thread_local! {
    /// What is left of the budget of the validation running on this thread.
    static LEFT: Cell<usize> = const { Cell::new(SUGGESTION_BUDGET) };
}

/// Starts a validation's budget.
pub(crate) fn reset_budget() {
    LEFT.with(|left| left.set(SUGGESTION_BUDGET));
}

/// Whether any budget is left: a caller checks this before listing many names to compare.
pub(crate) fn suggesting() -> bool {
    LEFT.with(Cell::get) > 0
}

/// The candidate closest to `word`, when it is close enough to be a likely typo; `None` also
/// once the budget is spent, even in the middle of the candidates.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word_lower = word.to_lowercase();
    let limit = threshold(word.chars().count());
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        if !LEFT.with(|left| left.replace(left.get().saturating_sub(1)) > 0) {
            return None;
        }
        let distance = edit_distance(&word_lower, &candidate.to_lowercase());
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// How many edits still look like a typo: one for short words, a third of longer ones.
fn threshold(len: usize) -> usize {
    (len / 3).clamp(1, 4)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each cost one (`chekout` -> `checkout` is 1).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

pub(crate) use crate::diagnostic::one_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("chekout", "checkout"), 1);
        assert_eq!(edit_distance("stpes", "steps"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_close_words_only() {
        let steps = ["checkout", "run", "save_cache"];
        assert_eq!(did_you_mean("chekout", steps), Some("checkout"));
        assert_eq!(did_you_mean("rnu", steps), Some("run"));
        assert_eq!(did_you_mean("deploy-all", steps), None);
        assert_eq!(did_you_mean("checkout", steps), None);
    }

    #[test]
    fn suggestions_stop_when_the_budget_is_spent() {
        reset_budget();
        let names: Vec<String> = (0..SUGGESTION_BUDGET / 3 * 2)
            .map(|i| format!("job-{i}"))
            .collect();
        let names = || names.iter().map(String::as_str);
        assert_eq!(did_you_mean("jbo-7", names()), Some("job-7"));
        assert!(suggesting());
        assert_eq!(did_you_mean("jbo-7", names()), None, "spent in the middle");
        assert!(!suggesting());
        assert_eq!(did_you_mean("chekout", ["checkout"]), None);
        reset_budget();
        assert_eq!(did_you_mean("chekout", ["checkout"]), Some("checkout"));
    }

    #[test]
    fn lists_choices() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
