//! Secret masking, as CircleCI masks project and context variables in job output ("Secrets
//! masking" in CircleCI's environment variable docs): every value of 4 characters or more,
//! other than `true`, `True`, `false` and `False`, is printed as `********`. Here the secrets
//! are the values of `-e`, `--env-file` and contexts (the plan's project variables).
//!
//! [`Secrets`] masks whole texts (event fields); [`StreamMasker`] masks a byte stream cut
//! anywhere (a step's output), holding back the end of a chunk while it could be the start of
//! a secret. A secret of several lines is masked whole, and each of its lines (of 4 characters
//! or more) on its own too, since output often re-indents or re-joins them.
//! [`Secrets::hide_in_key`] replaces secrets in cache keys by a digest, so entry names,
//! trailers and `cache ls` never hold them in the clear. Pure; no I/O.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use sha2::{Digest, Sha256};

use super::event::{Event, JobStatus, StepStatus};

/// What a secret is printed as.
pub const MASK: &str = "********";
/// Values shorter than this are not masked (CircleCI's rule).
const MIN_LEN: usize = 4;

/// The secret values of a run, ready to find in text.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The values given, for [`Secrets::with`].
    values: Vec<String>,
    needles: Vec<Vec<u8>>,
    finder: Option<AhoCorasick>,
    /// KMP failure tables, one per needle, to find how much of a chunk's end could start one.
    failures: Vec<Vec<usize>>,
}

impl Secrets {
    /// The secrets among these variables' values.
    pub fn of_variables(vars: &[(String, String)]) -> Arc<Secrets> {
        Arc::new(Secrets::new(vars.iter().map(|(_, v)| v.as_str())))
    }

    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Secrets {
        let values: Vec<String> = values.into_iter().map(str::to_string).collect();
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for value in &values {
            let lines = value.lines().map(|l| l.trim_end_matches('\r'));
            for candidate in std::iter::once(value.as_str()).chain(lines) {
                if is_secret(candidate) && !needles.iter().any(|n| n == candidate.as_bytes()) {
                    needles.push(candidate.as_bytes().to_vec());
                }
            }
        }
        let finder = (!needles.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&needles)
                .expect("plain byte patterns always build")
        });
        let failures = needles.iter().map(|n| failure_table(n)).collect();
        Secrets {
            values,
            needles,
            finder,
            failures,
        }
    }

    /// These secrets and `more` (a workflow masks every job's variables everywhere).
    pub fn with<'a>(&self, more: impl IntoIterator<Item = &'a str>) -> Secrets {
        let mut values = self.values.clone();
        values.extend(more.into_iter().map(str::to_string));
        Secrets::new(values.iter().map(String::as_str))
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.finder {
            Some(finder) if finder.is_match(text) => {
                Cow::Owned(finder.replace_all(text, &vec![MASK; self.needles.len()]))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// `text` with `mask` applied in place.
    pub fn mask_in_place(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }

    /// A cache key with each secret in it replaced by `<secret:` and 16 hex digits of its
    /// SHA-256 `>`: two keys with different secrets stay different, and the same secret gives
    /// the same key in `save_cache` and `restore_cache`, but the value is never stored.
    pub fn hide_in_key(&self, key: &str) -> String {
        let Some(finder) = &self.finder else {
            return key.to_string();
        };
        let mut out = String::with_capacity(key.len());
        finder.replace_all_with(key, &mut out, |_, found, out| {
            let digest = Sha256::digest(found.as_bytes());
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!("<secret:{hex}>"));
            true
        });
        out
    }

    /// The length of the longest end of `data` that is the start (not the whole) of a secret.
    fn partial_at_end(&self, data: &[u8]) -> usize {
        self.needles
            .iter()
            .zip(&self.failures)
            .map(|(needle, failure)| {
                let window = &data[data.len().saturating_sub(needle.len() - 1)..];
                kmp_state(needle, failure, window)
            })
            .max()
            .unwrap_or(0)
    }
}

/// `event` with every text in it masked.
pub fn mask_event(secrets: &Secrets, mut event: Event) -> Event {
    if secrets.is_empty() {
        return event;
    }
    let mask = |text: &mut String| secrets.mask_in_place(text);
    // No catch-all arm: a new kind of event must say what of it is masked.
    match &mut event {
        Event::Section { title: text, .. }
        | Event::Info { text, .. }
        | Event::Warning { text, .. }
        | Event::Output { line: text, .. }
        | Event::PullEnded { image: text, .. } => mask(text),
        Event::StepStarted { name, header, .. } => {
            mask(name);
            header.iter_mut().for_each(mask);
        }
        Event::StepFinished { status, .. } => {
            if let StepStatus::Failed {
                reason: Some(reason),
                ..
            } = status
            {
                mask(reason);
            }
        }
        Event::StepSkipped { name, reason, .. } => {
            mask(name);
            mask(reason);
        }
        Event::LayerProgress { image, status, .. } => {
            mask(image);
            mask(status);
        }
        Event::JobFinished { failure, .. } | Event::WatchResult { failure, .. } => {
            if let Some(failure) = failure {
                mask(failure);
            }
        }
        Event::WatchRerun { paths, .. } => paths.iter_mut().for_each(mask),
        Event::ServiceLog { lines, .. } => lines.iter_mut().for_each(mask),
        Event::ShellOpened { name, .. } => mask(name),
        Event::ShellClosed { .. } => {}
        Event::JobEnded { status, .. } => mask_status(status, &mask),
        Event::RunFinished { rows, .. } => {
            for row in rows {
                mask_status(&mut row.status, &mask);
            }
        }
        // Names of jobs and test counts only: nothing a variable's value reaches.
        Event::RunStarted { .. } | Event::JobStarted { .. } | Event::TestSummary { .. } => {}
    }
    event
}

/// The reason of a status that did not run (it may quote a job name, never a value, but a
/// reason is text all the same).
fn mask_status(status: &mut JobStatus, mask: &impl Fn(&mut String)) {
    match status {
        JobStatus::NotRun(why) | JobStatus::OnHold(why) | JobStatus::Skipped(why) => mask(why),
        JobStatus::Success | JobStatus::Failed | JobStatus::Canceled => {}
    }
}

/// CircleCI masks values of 4 characters or more, except the booleans.
fn is_secret(value: &str) -> bool {
    value.chars().count() >= MIN_LEN && !matches!(value, "true" | "True" | "false" | "False")
}

/// `failure[i]`: the length of the longest proper prefix of `needle[..=i]` that is also its
/// suffix (Knuth-Morris-Pratt).
fn failure_table(needle: &[u8]) -> Vec<usize> {
    let mut failure = vec![0; needle.len()];
    let mut k = 0;
    for i in 1..needle.len() {
        while k > 0 && needle[i] != needle[k] {
            k = failure[k - 1];
        }
        if needle[i] == needle[k] {
            k += 1;
        }
        failure[i] = k;
    }
    failure
}

/// How much of `needle`'s start the end of `text` matches (`text` is shorter than `needle`).
fn kmp_state(needle: &[u8], failure: &[usize], text: &[u8]) -> usize {
    let mut k = 0;
    for &byte in text {
        while k > 0 && byte != needle[k] {
            k = failure[k - 1];
        }
        if byte == needle[k] {
            k += 1;
        }
    }
    k
}

/// Masks one stream (a step's stdout, or its stderr) that arrives in chunks cut anywhere.
#[derive(Debug)]
pub struct StreamMasker {
    secrets: Arc<Secrets>,
    /// The end of the data so far that could be the start of a secret, not passed on yet.
    held: Vec<u8>,
}

impl StreamMasker {
    pub fn new(secrets: Arc<Secrets>) -> StreamMasker {
        StreamMasker {
            secrets,
            held: Vec::new(),
        }
    }

    /// Feeds a chunk; returns what can be passed on (masked).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(finder) = &self.secrets.finder else {
            return chunk.to_vec();
        };
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(chunk);
        let mut cut = data.len() - self.secrets.partial_at_end(&data);
        let mut out = Vec::with_capacity(data.len());
        let mut at = 0;
        for found in finder.find_iter(&data) {
            if found.start() >= cut {
                break;
            }
            out.extend_from_slice(&data[at..found.start()]);
            out.extend_from_slice(MASK.as_bytes());
            at = found.end();
            // A whole secret that runs into the held end is masked now; nothing of it is held.
            cut = cut.max(at);
        }
        out.extend_from_slice(&data[at..cut]);
        self.held = data[cut..].to_vec();
        out
    }

    /// The end of the stream: what was held back, masked (it may hold a shorter secret that
    /// was waiting to see whether a longer one follows).
    pub fn finish(&mut self) -> Vec<u8> {
        let held = std::mem::take(&mut self.held);
        match &self.secrets.finder {
            Some(finder) => {
                finder.replace_all_bytes(&held, &vec![MASK; self.secrets.needles.len()])
            }
            None => held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Arc<Secrets> {
        Arc::new(Secrets::new(values.iter().copied()))
    }

    #[test]
    fn values_are_masked_like_circleci_does() {
        let s = secrets(&["s3cr3t-value", "abc", "true", "False", "tok1"]);
        assert_eq!(
            s.mask("key=s3cr3t-value tok1 abc true False"),
            "key=******** ******** abc true False"
        );
        assert!(matches!(s.mask("nothing here"), Cow::Borrowed(_)));
        assert!(secrets(&["abc", "true"]).is_empty());
    }

    #[test]
    fn multi_line_values_are_masked_whole_and_line_by_line() {
        let s = secrets(&["-----BEGIN KEY-----\r\nAAAABBBB\nCC\n-----END KEY-----"]);
        assert_eq!(
            s.mask("-----BEGIN KEY-----\r\nAAAABBBB\nCC\n-----END KEY-----"),
            "********"
        );
        assert_eq!(s.mask("  AAAABBBB\n  CC"), "  ********\n  CC");
    }

    /// Every way of cutting `text` in two chunks (and in single bytes) gives the same output as
    /// masking it whole.
    fn assert_streams_like_whole(s: &Arc<Secrets>, text: &str) {
        let whole = s.mask(text).into_owned();
        for cut in 0..=text.len() {
            let mut m = StreamMasker::new(s.clone());
            let mut out = m.push(&text.as_bytes()[..cut]);
            out.extend(m.push(&text.as_bytes()[cut..]));
            out.extend(m.finish());
            assert_eq!(String::from_utf8(out).unwrap(), whole, "cut at {cut}");
        }
        let mut m = StreamMasker::new(s.clone());
        let mut out = Vec::new();
        for byte in text.as_bytes() {
            out.extend(m.push(std::slice::from_ref(byte)));
        }
        out.extend(m.finish());
        assert_eq!(String::from_utf8(out).unwrap(), whole, "byte by byte");
    }

    #[test]
    fn secrets_split_across_chunks_are_masked() {
        let s = secrets(&["hunter22", "hunter22-long", "aaab", "line1\nline2"]);
        for text in [
            "pw=hunter22\n",
            "pw=hunter22-long!",
            "hunter2 hunter22 hunter22-lon",
            "aaaaaab aaab aaa",
            "x line1\nline2 y",
            "no secret at all\n",
        ] {
            assert_streams_like_whole(&s, text);
        }
    }

    #[test]
    fn only_a_possible_start_of_a_secret_is_held_back() {
        let s = secrets(&["hunter22"]);
        let mut m = StreamMasker::new(s);
        assert_eq!(m.push(b"started\n"), b"started\n");
        assert_eq!(m.push(b"pw=hun"), b"pw=");
        assert_eq!(m.push(b"ter22 ok"), b"******** ok");
        assert_eq!(m.finish(), b"");
    }

    // Every reporter (terminal, JSON) reads events from the channel: they arrive masked.
    #[tokio::test]
    async fn events_leave_the_sink_masked() {
        let (sink, mut rx) = crate::report::channel();
        let events = crate::report::Events::new(
            sink.masking(["hunter22", "abc"]),
            crate::report::JobRef::new("job", None),
        );
        events.info("token hunter22");
        events.warning("abc hunter22");
        events
            .output(0, crate::report::Stream::Stdout, "x=hunter22".into())
            .await;
        let mut splitter = events.line_splitter();
        let mut lines = splitter.push(crate::report::Stream::Stdout, b"pw=hun");
        lines.extend(splitter.push(crate::report::Stream::Stdout, b"ter22\n"));
        assert_eq!(lines, vec!["pw=********"]);
        drop(events);
        let mut texts = Vec::new();
        while let Some(event) = rx.recv().await {
            texts.push(format!("{event:?}"));
        }
        assert_eq!(texts.len(), 3);
        assert!(texts.iter().all(|t| !t.contains("hunter22")), "{texts:?}");
        assert!(texts[1].contains("abc ********"), "{texts:?}");
    }

    #[test]
    fn keys_hide_secrets_behind_a_digest() {
        let s = secrets(&["s3cr3t-value"]);
        let key = s.hide_in_key("v1-s3cr3t-value-deps");
        assert!(key.starts_with("v1-<secret:"), "{key}");
        assert!(key.ends_with(">-deps"), "{key}");
        assert!(!key.contains("s3cr3t"));
        assert_eq!(key, s.hide_in_key("v1-s3cr3t-value-deps"));
        assert_ne!(
            key,
            secrets(&["other-value"]).hide_in_key("v1-other-value-deps")
        );
        assert_eq!(s.hide_in_key("v1-plain"), "v1-plain");
    }
}
