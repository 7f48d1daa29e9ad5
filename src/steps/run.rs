//! `run` (and `deploy`): the command is written to a script file in the primary container and
//! run with the step's shell (step `shell` > job `shell` > `/bin/bash -eo pipefail` when the
//! image has bash, else `/bin/sh -eo pipefail`), in the step's working directory, with the
//! step's environment. Handles `no_output_timeout` and `max_auto_reruns`.

use std::time::Duration;

use super::context::StepContext;
use super::process::{self, Process, ProcessEnd};
use super::{StepOutcome, tarball};
use crate::backend::{ExecSpec, Result};
use crate::config::Run;
use crate::units::format_go;

/// Why a step ended with exit code 137 in a container the OOM killer has hit.
const OOM_KILLED: &str = "Killed by the out-of-memory killer: the step used more memory than the container may (--memory or --resource-class-limits)";

/// CircleCI's default `no_output_timeout`.
pub const DEFAULT_NO_OUTPUT_TIMEOUT: Duration = Duration::from_secs(600);

/// Scripts longer than this are uploaded instead of passed as an argument (Linux limits one
/// argument to 128 KiB).
const MAX_INLINE_SCRIPT: usize = 100 * 1024;

/// Writes the pid (for killing the group), the script (unless uploaded), enters the working
/// directory (created when missing, as CircleCI does for the job's), then runs the shell.
/// When it ends, says on stderr (the token `$7`) whether `circleci-agent step halt` left its
/// marker (`$6`), so that no request after the step is needed to learn it; the step's exit
/// code is the shell's.
const WRAPPER: &str = r#"echo $$ >"$1" || exit 1
if [ "$2" = inline ]; then printf '%s\n' "$3" >"$4" || exit 1; fi
mkdir -p "$5" 2>/dev/null; cd "$5" || exit 1
h=$6 t=$7
shift 7
"$@"
s=$?
if [ -e "$h" ]; then printf '%s\n' "$t" >&2; fi
exit $s"#;

/// What the step's wrapper writes on stderr when the job is to halt: unique to the run (its
/// agent folder's name is random), so that a step's own output does not say it by chance.
fn halt_token(ctx: &StepContext) -> String {
    format!("::localci-halt::{}", ctx.run_dir)
}

/// The shell command line a step runs with.
pub fn shell(ctx: &StepContext, run: &Run) -> String {
    run.shell
        .clone()
        .or_else(|| ctx.plan.shell.clone())
        .unwrap_or_else(|| format!("{} -eo pipefail", ctx.facts.default_shell))
}

/// `#!<shell>` and the command, shown under the step's title.
pub fn header(ctx: &StepContext, run: &Run) -> Vec<String> {
    let mut lines = vec![format!("#!{}", shell(ctx, run))];
    lines.extend(run.command.trim_end().lines().map(str::to_string));
    lines
}

/// Runs the step, with its reruns.
pub async fn run(ctx: &StepContext, step: usize, run: &Run) -> Result<StepOutcome> {
    let shell = shell(ctx, run);
    let Some(words) = shlex::split(&shell).filter(|w| !w.is_empty()) else {
        return Ok(StepOutcome::failed(format!(
            "cannot read the shell `{shell}`"
        )));
    };
    let attempts = 1 + run.max_auto_reruns;
    let mut attempt = 1;
    loop {
        let outcome = attempt_once(ctx, step, run, &words, attempt).await?;
        if !matches!(outcome, StepOutcome::Failed { .. }) || attempt >= attempts {
            return Ok(outcome);
        }
        attempt += 1;
        let delay = run.auto_rerun_delay.unwrap_or_default();
        ctx.events.info(format!(
            "Rerunning the step (attempt {attempt} of {attempts}){}",
            if delay.is_zero() {
                String::new()
            } else {
                format!(" after {}", format_go(delay))
            }
        ));
        tokio::select! {
            () = ctx.cancel.cancelled() => return Ok(StepOutcome::Cancelled),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

async fn attempt_once(
    ctx: &StepContext,
    step: usize,
    run: &Run,
    shell: &[String],
    attempt: u32,
) -> Result<StepOutcome> {
    let script = format!("{}/step-{step}-{attempt}.sh", ctx.run_dir);
    let pid_file = format!("{}/step-{step}.pid", ctx.run_dir);
    let inline = run.command.len() <= MAX_INLINE_SCRIPT;
    if !inline {
        let name = format!("step-{step}-{attempt}.sh");
        let bytes = format!("{}\n", run.command).into_bytes();
        let (uid, gid) = (ctx.facts.uid, ctx.facts.gid);
        let tar = tarball::single_file(&name, &bytes, uid, gid)
            .map_err(|e| crate::backend::BackendError::Api(e.to_string()))?;
        ctx.backend.upload(&ctx.primary, &ctx.run_dir, tar).await?;
    }
    let wd = ctx
        .facts
        .resolve(run.working_directory.as_deref().unwrap_or("."));
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        WRAPPER.into(),
        "localci-step".into(),
        pid_file.clone(),
        if inline { "inline" } else { "uploaded" }.into(),
        if inline {
            run.command.clone()
        } else {
            String::new()
        },
        script.clone(),
        wd,
        format!("{}/{}", ctx.run_dir, crate::agent::dir::HALT),
        halt_token(ctx),
    ];
    cmd.extend(shell.iter().cloned());
    cmd.push(script);
    let timeout = run.no_output_timeout.unwrap_or(DEFAULT_NO_OUTPUT_TIMEOUT);
    let ended = process::run(
        ctx,
        Process {
            step,
            spec: ExecSpec {
                cmd,
                env: ctx.step_env(&run.environment),
                ..ExecSpec::default()
            },
            no_output_timeout: Some(timeout),
            pid_file: Some(pid_file),
            token: Some(halt_token(ctx)),
        },
    )
    .await?;
    if ended.said {
        ctx.halted.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(match ended.end {
        ProcessEnd::Exited(0) => StepOutcome::Passed { exit_code: Some(0) },
        // SIGKILL; Docker marks the container when the kernel's OOM killer sent it (issue 9).
        ProcessEnd::Exited(137) if ctx.backend.oom_killed(&ctx.primary).await? => {
            StepOutcome::Failed {
                exit_code: Some(137),
                reason: Some(OOM_KILLED.into()),
            }
        }
        ProcessEnd::Exited(code) => StepOutcome::Failed {
            exit_code: Some(code),
            reason: None,
        },
        ProcessEnd::TimedOut(limit) => StepOutcome::failed(format!(
            "Too long with no output (exceeded {}): context deadline exceeded",
            format_go(limit)
        )),
        ProcessEnd::Cancelled => StepOutcome::Cancelled,
    })
}
