//! Runs a job's steps in order with CircleCI's rules: after the first failure, `on_success`
//! steps are skipped while `on_fail` and `always` steps run; background steps start and the
//! job moves on (their failure does not fail the job, and they stop with the job).

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::backend::Result;
use crate::config::{Step, StepKind, When};
use crate::report::Event;
use crate::steps::{self, StepContext, StepOutcome};

/// How the steps went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sequence {
    Passed,
    /// The first failure, described for the summary.
    Failed(String),
    Interrupted,
    /// Warmed, then withdrawn at its gate: no step ran.
    Withdrawn,
}

pub async fn run_steps(ctx: &StepContext) -> Result<Sequence> {
    let mut failure: Option<String> = None;
    let mut background: Vec<JoinHandle<()>> = Vec::new();
    let steps = ctx.plan.steps.clone();
    let mut result = Ok(Sequence::Passed);
    let mut halted = false;
    for (index, step) in steps.iter().enumerate() {
        if index == 1 {
            super::hold::at(super::hold::Moment::BetweenSteps, &ctx.events).await;
        }
        if ctx.cancel.is_cancelled() {
            result = Ok(Sequence::Interrupted);
            break;
        }
        let name = step.display_name();
        let skip = if halted {
            Some("the job was halted (circleci-agent step halt)")
        } else {
            skip_reason(step.when, failure.is_some())
        };
        if let Some(reason) = skip {
            ctx.events.send(Event::StepSkipped {
                job: ctx.events.job(),
                step: index,
                name,
                reason: reason.into(),
            });
            continue;
        }
        let is_background = matches!(&step.kind, StepKind::Run(r) if r.background);
        if matches!(step.kind, StepKind::Run(_)) {
            ctx.ensure_agent().await;
        }
        ctx.events.send(Event::StepStarted {
            job: ctx.events.job(),
            step: index,
            name: name.clone(),
            header: steps::header(ctx, step),
            background: is_background,
        });
        if is_background {
            background.push(spawn_background(ctx.clone(), index, step.clone()));
            continue;
        }
        let started = Instant::now();
        let outcome = match steps::execute(ctx, index, step).await {
            Ok(outcome) => outcome,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let Some(status) = outcome.status() else {
            result = Ok(Sequence::Interrupted);
            break;
        };
        ctx.events.send(Event::StepFinished {
            job: ctx.events.job(),
            step: index,
            status,
            duration: started.elapsed(),
        });
        crate::trace::span("step", &format!("{index} {}", first_line(&name)), started);
        if let StepOutcome::Failed { exit_code, reason } = &outcome
            && failure.is_none()
        {
            failure = Some(describe(&name, *exit_code, reason.as_deref()));
            if super::shell::after_failure(ctx, index, step).await?
                == super::shell::Ended::Interrupted
            {
                result = Ok(Sequence::Interrupted);
                break;
            }
        }
        if matches!(step.kind, StepKind::Run(_)) && !halted && ctx.halted.load(Ordering::SeqCst) {
            halted = true;
            ctx.events.info(
                "circleci-agent step halt: the job ends here, the remaining steps are skipped",
            );
        }
    }
    // CircleCI tears the container down when the foreground steps end, killing whatever
    // background steps still run.
    for task in background {
        task.abort();
    }
    match (result, failure) {
        (Ok(Sequence::Passed), Some(why)) => Ok(Sequence::Failed(why)),
        (other, _) => other,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn skip_reason(when: When, failing: bool) -> Option<&'static str> {
    match (when, failing) {
        (When::OnSuccess, true) => Some("an earlier step failed"),
        (When::OnFail, false) => Some("runs only when an earlier step failed (when: on_fail)"),
        _ => None,
    }
}

/// The summary's reason. An unnamed `run` step is named by its command; a multi-line one is
/// named by its first line, so that the summary stays one line.
fn describe(name: &str, exit_code: Option<i64>, reason: Option<&str>) -> String {
    let name = name.lines().next().unwrap_or_default().trim_end();
    match (exit_code, reason) {
        (Some(code), _) => format!("step \"{name}\" exited with code {code}"),
        (None, Some(reason)) => format!("step \"{name}\" failed: {reason}"),
        (None, None) => format!("step \"{name}\" failed"),
    }
}

fn spawn_background(ctx: StepContext, index: usize, step: Step) -> JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let status = match steps::execute(&ctx, index, &step).await {
            Ok(outcome) => outcome.status(),
            Err(e) => StepOutcome::failed(e.to_string()).status(),
        };
        if let Some(status) = status {
            ctx.events.send(Event::StepFinished {
                job: ctx.events.job(),
                step: index,
                status,
                duration: started.elapsed(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_multi_line_command_is_named_by_its_first_line() {
        assert_eq!(
            describe("make install\nmake test\n", Some(2), None),
            "step \"make install\" exited with code 2"
        );
        assert_eq!(
            describe("Tests", None, Some("timed out")),
            "step \"Tests\" failed: timed out"
        );
    }
}
