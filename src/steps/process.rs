//! Running one process in the primary container for a step: output streamed to the reporter
//! line by line, `no_output_timeout`, cancellation, and killing the process group when either
//! ends it early. The exec API cannot signal a process, so the wrapper records its pid (it is
//! the leader of its own process group) and a second exec kills that group.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::context::StepContext;
use crate::backend::{Backend, ExecSpec, Output, Result, Stream};

/// How a step's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEnd {
    Exited(i64),
    /// No output for this long; the process was killed.
    TimedOut(Duration),
    /// Ctrl-C; the process was killed.
    Cancelled,
}

/// A process to run for step `step`.
pub struct Process {
    pub step: usize,
    pub spec: ExecSpec,
    pub no_output_timeout: Option<Duration>,
    /// The file the process writes its pid to, for killing it.
    pub pid_file: Option<String>,
    /// A line the process writes on stderr (after its own output) to say something in-band
    /// (that the job is to halt); taken out of the output, and reported in [`Ended::said`].
    pub token: Option<String>,
}

/// How a process ended, and whether it wrote its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub end: ProcessEnd,
    pub said: bool,
}

/// Runs `process`, streaming its output as events of its step.
pub async fn run(ctx: &StepContext, process: Process) -> Result<Ended> {
    let exec = ctx.backend.exec(&ctx.primary, process.spec).await?;
    let mut output = exec.output;
    let mut lines = ctx.events.line_splitter();
    let mut said = false;
    let end = loop {
        let next = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break Some(ProcessEnd::Cancelled),
            next = next_within(&mut output, process.no_output_timeout) => next,
        };
        match next {
            None => break process.no_output_timeout.map(ProcessEnd::TimedOut),
            Some(None) => break None,
            Some(Some(chunk)) => {
                let (stream, mut bytes) = chunk?;
                if stream == Stream::Stderr
                    && let Some(token) = &process.token
                    && let Some(rest) = without_token(&bytes, token)
                {
                    said = true;
                    bytes = rest;
                }
                for line in lines.push(stream, &bytes) {
                    ctx.events.output(process.step, stream, line).await;
                }
            }
        }
    };
    for (stream, line) in lines.finish() {
        ctx.events.output(process.step, stream, line).await;
    }
    let end = match end {
        Some(early) => early,
        // The output has ended; the process may still run (it closed its output).
        None => tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => ProcessEnd::Cancelled,
            code = ctx.backend.exec_exit_code(&exec.id) => ProcessEnd::Exited(code?),
            () = sleep_or_forever(process.no_output_timeout) => {
                ProcessEnd::TimedOut(process.no_output_timeout.unwrap_or_default())
            }
        },
    };
    if !matches!(end, ProcessEnd::Exited(_))
        && let Some(pid_file) = &process.pid_file
    {
        kill_group(ctx.backend.as_ref(), &ctx.primary, pid_file).await;
    }
    Ok(Ended { end, said })
}

/// `chunk` without the line `token` (the token and the newline after it), when it holds it.
/// The token is written with one small write after the process's own output, so it arrives
/// whole within one chunk (possibly with other output around it).
fn without_token(chunk: &Bytes, token: &str) -> Option<Bytes> {
    let line = format!("{token}\n");
    let at = memchr::memmem::find(chunk, line.as_bytes())?;
    let mut rest = Vec::with_capacity(chunk.len() - line.len());
    rest.extend_from_slice(&chunk[..at]);
    rest.extend_from_slice(&chunk[at + line.len()..]);
    Some(Bytes::from(rest))
}

async fn sleep_or_forever(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// The next item, or `None` when `limit` passed without one.
async fn next_within<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    limit: Option<Duration>,
) -> Option<Option<S::Item>> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, stream.next()).await.ok(),
        None => Some(stream.next().await),
    }
}

/// Kills the process group whose leader wrote `pid_file`. Best effort: the container may be
/// gone already, and the job is ending that step either way.
pub async fn kill_group(backend: &dyn Backend, container: &str, pid_file: &str) {
    let spec = ExecSpec {
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            r#"p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && { kill -KILL -"$p" 2>/dev/null || kill -KILL "$p"; }; true"#.into(),
            "localci-kill".into(),
            pid_file.into(),
        ],
        user: Some("0".into()),
        ..ExecSpec::default()
    };
    let _ = collect(backend, container, spec).await;
}

/// Output and exit code of a short helper process (not shown to the user).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
}

/// Runs a helper process to completion and collects its output.
pub async fn collect(backend: &dyn Backend, container: &str, spec: ExecSpec) -> Result<Collected> {
    let exec = backend.exec(container, spec).await?;
    let mut output = exec.output;
    let (stdout, stderr) = read_until(&mut output, |_| false).await?;
    Ok(Collected {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit_code: backend.exec_exit_code(&exec.id).await?,
    })
}

/// Reads `output` into (stdout, stderr) until it ends, or until `done` says the stdout read
/// so far is complete (the rest of the stream is left unread).
pub async fn read_until(
    output: &mut Output,
    done: impl Fn(&[u8]) -> bool,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.next().await {
        let (stream, bytes) = chunk?;
        match stream {
            Stream::Stdout => stdout.extend_from_slice(&bytes),
            Stream::Stderr => stderr.extend_from_slice(&bytes),
        }
        if stream == Stream::Stdout && done(&stdout) {
            break;
        }
    }
    Ok((stdout, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_line_is_taken_out_of_the_output() {
        let token = "::localci-halt::/tmp/.localci-1";
        let chunk = Bytes::from(format!("last words\n{token}\nlater\n"));
        assert_eq!(
            without_token(&chunk, token).as_deref(),
            Some(&b"last words\nlater\n"[..])
        );
        let alone = Bytes::from(format!("{token}\n"));
        assert_eq!(without_token(&alone, token).as_deref(), Some(&b""[..]));
        // After a last line without its newline, the rest of that line stays.
        let glued = Bytes::from(format!("no newline{token}\n"));
        assert_eq!(
            without_token(&glued, token).as_deref(),
            Some(&b"no newline"[..])
        );
        // Without its newline it is output like any other.
        let cut = Bytes::from(format!("echo {token}"));
        assert_eq!(without_token(&cut, token), None);
    }
}
