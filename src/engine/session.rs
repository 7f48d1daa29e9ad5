//! One run of localci against the engine: the backend, the cancellation token, the run's
//! identity (labels on everything it creates), the one leftover sweep, the images checked once
//! for every job, and the event sink. Jobs run through [`Session::run_job`]: containers ->
//! setup -> steps -> cleanup, on success, failure and Ctrl-C alike.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::containers::{self, Created, Startup};
use super::run_info::RunInfo;
use super::sequence::{self, Sequence};
use super::setup::SetupArgs;
use super::stage;
use super::step_runner::{StepRunner, StepRunnerBackend};
use super::{
    EngineError, EngineOptions, NodeOutcome, announce_kept, cleanup, images, leftovers,
    primary_gone, setup, short_id, socket_mount,
};
use crate::backend::{Backend, BackendError, ImageInfo, Output};
use crate::plan::JobPlan;
use crate::report::{Event, Events, JobRef, Sink};
use crate::steps::sync::SyncState;
use crate::steps::{Settings, StepContext, Workspace};

/// What differs between the jobs of one run on the host side.
#[derive(Clone, Debug, Default)]
pub struct JobSettings {
    /// Where `store_artifacts` and `store_test_results` copy to.
    pub artifacts_dir: PathBuf,
    pub workspace: Option<Workspace>,
    /// Files put into the job's agent folder before the first step (name, content): the
    /// test timings `circleci tests split --split-by=timings` reads.
    pub agent_dir_files: Vec<(String, Vec<u8>)>,
    /// A warmed job waits here, set up, before its first step (see the scheduler).
    pub gate: Option<tokio::sync::watch::Receiver<Go>>,
    /// Told when the job's containers are up and its steps begin, so that the scheduler warms
    /// the jobs after it only then (their start-up must not slow this one's).
    pub up: Option<Up>,
    /// `--watch`: after its steps, the job waits here for changes and runs them again.
    pub watch: Option<super::watch::Changes>,
}

/// A job's "containers up, steps begin" signal.
#[derive(Clone, Debug, Default)]
pub struct Up {
    pub flag: Arc<std::sync::atomic::AtomicBool>,
    pub notify: Arc<tokio::sync::Notify>,
}

impl Up {
    fn raise(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_one();
    }

    pub fn is_up(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What a warmed job's gate says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Go {
    /// Its requirements still run.
    Wait,
    /// They ended as it accepts: run the steps.
    Run,
    /// They did not: remove the containers, run nothing.
    Withdraw,
}

pub struct Session {
    backend: Arc<dyn Backend>,
    run: RunInfo,
    options: EngineOptions,
    sink: Sink,
    cancel: CancellationToken,
    /// Run-level messages (leftovers, images) go out under this name.
    events: Events,
    /// Removals of finished jobs' containers: they run while later jobs start (a job's
    /// dependents need not wait for its teardown); [`Session::close`] waits for them all.
    cleanups: Mutex<Vec<JoinHandle<()>>>,
    /// Jobs whose "Spin up environment" section is already open (a single job's images).
    spun_up: Mutex<Vec<JobRef>>,
    /// While the session lives, a second Ctrl-C (a forced exit) still removes its containers.
    _forced_exit: super::signals::ForcedExitCleanup,
}

/// The first section of every job's log (CircleCI's name for it).
const SPIN_UP: &str = "Spin up environment";

/// The images of a run, by name, after they were checked (and pulled).
pub type Images = HashMap<String, ImageInfo>;

impl Session {
    /// Starts the run `run`: removes what earlier runs left behind (never a live run's) while
    /// the jobs start.
    pub async fn open(
        backend: Arc<dyn Backend>,
        run: RunInfo,
        options: EngineOptions,
        sink: Sink,
        cancel: CancellationToken,
    ) -> Result<Session, EngineError> {
        let forced_exit = super::signals::remove_on_forced_exit(backend.clone(), &run);
        let events = Events::new(sink.clone(), JobRef::new("localci", None));
        // While the jobs start ([`Session::close`] waits for it): it touches only what runs
        // that certainly ended left behind.
        let sweep = tokio::spawn(leftovers::sweep(
            backend.clone(),
            run.clone(),
            events.clone(),
        ));
        Ok(Session {
            backend,
            run,
            options,
            sink,
            cancel,
            events,
            cleanups: Mutex::new(vec![sweep]),
            spun_up: Mutex::new(Vec::new()),
            _forced_exit: forced_exit,
        })
    }

    /// Waits until every container of the run is removed. Call it before the run ends,
    /// on success, failure and Ctrl-C alike.
    pub async fn close(&self) {
        loop {
            let pending: Vec<JoinHandle<()>> = {
                let mut cleanups = self.cleanups.lock().expect("no task panics holding it");
                cleanups.drain(..).collect()
            };
            if pending.is_empty() {
                return;
            }
            for handle in pending {
                let _ = handle.await;
            }
        }
    }

    /// The run's id (`CIRCLE_WORKFLOW_ID` of a workflow run).
    pub fn id(&self) -> &str {
        &self.run.id
    }

    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Checks (and pulls) every image of `plans` once, before any job starts, reporting every
    /// missing one at once; `None` when Ctrl-C came first.
    pub async fn images(&self, plans: &[&JobPlan]) -> Result<Option<Images>, EngineError> {
        let images: Vec<_> = plans
            .iter()
            .flat_map(|p| p.images.iter().cloned())
            .collect();
        // `auth` variables come from the project (and context) variables of the jobs.
        let project: Vec<(String, String)> = plans
            .iter()
            .flat_map(|p| p.environment.project.iter().cloned())
            .collect();
        let events = match plans {
            // One job alone: its log opens as CircleCI's does, images under the first section.
            [one] => {
                let events = Events::new(self.sink.clone(), job_ref(one));
                events.section(SPIN_UP);
                self.spun_up
                    .lock()
                    .expect("no task panics holding it")
                    .push(events.job());
                events
            }
            _ => self.events.clone(),
        };
        images::ensure(
            self.backend.as_ref(),
            &images,
            &project,
            &events,
            &self.cancel,
        )
        .await
    }

    /// Runs one job (one node of it): its containers, the setup, the steps, then cleanup.
    pub async fn run_job(
        &self,
        plan: JobPlan,
        images: &Images,
        settings: JobSettings,
    ) -> Result<NodeOutcome, EngineError> {
        let events = Events::new(self.sink.clone(), job_ref(&plan));
        let started = Instant::now();
        let announced = self
            .spun_up
            .lock()
            .expect("no task panics holding it")
            .contains(&events.job());
        if !announced {
            events.section(SPIN_UP);
        }
        let plan = Arc::new(plan);
        let mut created = Created::default();
        let runner = Runner {
            backend: &self.backend,
            plan: &plan,
            options: &self.options,
            run: &self.run,
            events: &events,
            cancel: &self.cancel,
            started,
        };
        let result = runner.run(images, &mut created, settings).await;
        let failed = matches!(result, Ok(Sequence::Failed(_)));
        show_services(self.backend.as_ref(), &plan, &created, &events, failed).await;
        let status = match &result {
            Ok(Sequence::Passed) => Some(NodeOutcome::Passed),
            Ok(Sequence::Failed(_)) => Some(NodeOutcome::Failed),
            Ok(Sequence::Interrupted) => Some(NodeOutcome::Interrupted),
            Ok(Sequence::Withdrawn) => Some(NodeOutcome::Withdrawn),
            Err(_) => None,
        };
        if status == Some(NodeOutcome::Withdrawn) {
            events.info("Not run after all: a job it requires did not end as it needs");
        }
        if status == Some(NodeOutcome::Interrupted) {
            events.info("Interrupted: stopping the job and removing its containers");
        }
        let keep = self.options.keep
            && !matches!(
                status,
                Some(NodeOutcome::Interrupted | NodeOutcome::Withdrawn)
            )
            && created.primary.is_some();
        if keep {
            announce_kept(&events, &created);
        } else {
            let (backend, run, events) = (self.backend.clone(), self.run.clone(), events.clone());
            let finished = matches!(status, Some(NodeOutcome::Passed | NodeOutcome::Failed));
            let cancel = self.cancel.clone();
            let removal = tokio::spawn(async move {
                super::hold::at(super::hold::Moment::Cleanup, &events).await;
                // After Ctrl-C everything goes before localci exits, also a finished job's.
                let finished = finished && !cancel.is_cancelled();
                cleanup::cleanup(backend.as_ref(), &run, &created, &events, finished).await;
            });
            self.cleanups
                .lock()
                .expect("no task panics holding it")
                .push(removal);
        }
        let sequence = result?;
        if let Sequence::Passed | Sequence::Failed(_) = &sequence {
            events.send(Event::JobFinished {
                job: events.job(),
                passed: sequence == Sequence::Passed,
                failure: match &sequence {
                    Sequence::Failed(why) => Some(why.clone()),
                    _ => None,
                },
                duration: started.elapsed(),
            });
        }
        Ok(status.expect("set for every Ok result"))
    }
}

/// Lines of a service's output shown when it exited non-zero during the job, or when the
/// job failed (CircleCI shows services' output in their own tabs; here it is the tail).
const SERVICE_LINES: usize = 20;

/// Shows the last lines of each service that exited non-zero, or of every service when the
/// job failed. A daemon that cannot say is no reason to fail the job.
async fn show_services(
    backend: &dyn Backend,
    plan: &JobPlan,
    created: &Created,
    events: &Events,
    job_failed: bool,
) {
    for (id, image) in created.services.iter().zip(plan.images.iter().skip(1)) {
        let exit = backend.container_exit_code(id).await.ok().flatten();
        let crashed = exit.is_some_and(|code| code != 0);
        if !crashed && !job_failed {
            continue;
        }
        let Ok(lines) = backend.logs_tail(id, SERVICE_LINES).await else {
            continue;
        };
        events.send(Event::ServiceLog {
            job: events.job(),
            service: image.name.clone().unwrap_or_else(|| image.image.clone()),
            exit_code: exit,
            lines,
        });
    }
}

/// How long the step runner may take to say that it runs (it is a local static program:
/// milliseconds); past that, the steps use execs.
const RUNNER_START: std::time::Duration = std::time::Duration::from_secs(10);

/// The folder in the primary container for step scripts and the in-container `circleci`
/// program's files (`LOCALCI_AGENT_DIR`): the halt marker, the test timings.
pub(crate) fn agent_dir(run: &RunInfo) -> String {
    format!("/tmp/.localci-{}", run.short())
}

/// The envelope of a job's events: its name, and its node when it runs on several.
pub(crate) fn job_ref(plan: &JobPlan) -> JobRef {
    JobRef::new(&plan.name, (plan.node_total > 1).then_some(plan.node_index))
}

/// What every phase of one job needs.
struct Runner<'a> {
    backend: &'a Arc<dyn Backend>,
    plan: &'a Arc<JobPlan>,
    options: &'a EngineOptions,
    run: &'a RunInfo,
    events: &'a Events,
    cancel: &'a CancellationToken,
    started: Instant,
}

impl Runner<'_> {
    async fn run(
        &self,
        images: &Images,
        created: &mut Created,
        settings: JobSettings,
    ) -> Result<Sequence, EngineError> {
        let machine = self.plan.machine.is_some();
        let socket = socket_mount(self.backend.as_ref(), self.options, self.events, machine);
        // Not raced against Ctrl-C: `start` checks it between requests (see containers.rs).
        // The flags, then (with --resource-class-limits) the job's class; a class without a
        // documented size was refused before the run began.
        let limits = containers::job_limits(
            self.options.limits,
            self.options.class_limits,
            self.plan.resource_class.as_deref(),
            machine,
        )
        .unwrap_or(self.options.limits);
        let run_dir = agent_dir(self.run);
        // The setup checks the target of a `checkout` that begins the job.
        let first_checkout = match self.plan.steps.first().map(|s| &s.kind) {
            Some(crate::config::StepKind::Checkout { path, .. }) => {
                Some(path.clone().unwrap_or_else(|| ".".into()))
            }
            _ => None,
        };
        let mut stage = self.stage(&run_dir, &settings);
        let mut setup_args = SetupArgs {
            working_directory: self.plan.working_directory.clone(),
            run_dir: run_dir.clone(),
            bash_env: self
                .plan
                .environment
                .get("BASH_ENV")
                .unwrap_or_default()
                .to_string(),
            first_checkout,
            agent: stage.as_ref().map(|s| s.agent_path.clone()),
        };
        let startup = containers::start(
            self.backend.as_ref(),
            self.plan,
            self.run,
            images,
            socket.as_ref(),
            limits,
            &setup_args,
            stage.as_ref(),
            self.cancel,
            created,
            self.events,
        )
        .await?;
        let Startup::Started {
            output: setup_output,
            mounted,
            runner,
        } = startup
        else {
            return Ok(Sequence::Interrupted);
        };
        if !mounted {
            setup_args.agent = None;
        }
        // The `circleci` program in /usr/local/bin: a root setup copies the mounted one; else
        // it is uploaded while the setup runs, or with the upload of a first checkout, or (the
        // program mounted: the checkout does not upload) beside the first steps.
        let agent_with_setup = !mounted && setup_args.first_checkout.is_none();
        let agent_with_checkout = !mounted && !agent_with_setup;
        let primary = created.primary.clone().expect("set by containers::start");
        // The image's entrypoint or the config's command, not localci's setup and loop.
        let own_command = setup_output.is_none();
        let (mut prepared, rest) = match self
            .prepare(
                &primary,
                &setup_args,
                setup_output,
                &settings,
                agent_with_setup,
            )
            .await
        {
            Ok(prepared) => prepared,
            Err(e) => return primary_gone(self.backend.as_ref(), &primary, e).await,
        };
        let backend = match rest.filter(|_| runner) {
            Some((output, leftover)) => {
                self.steps_backend(&primary, created, output, leftover)
                    .await
            }
            None => self.backend.clone(),
        };
        let agent_beside_steps = (mounted && !prepared.agent_installed).then(|| {
            let (backend, primary) = (self.backend.clone(), primary.clone());
            tokio::spawn(async move { crate::agent::install(backend.as_ref(), &primary).await })
        });
        let checked_first = prepared.first_checkout.take();
        // The repository's tar was written while the primary started.
        let mut staged_checkout = None;
        if let Some(stage) = stage.as_mut().filter(|_| mounted) {
            if !stage.finish().await {
                return Ok(Sequence::Interrupted);
            }
            staged_checkout = stage.checkout();
        }
        created.shell = Some(prepared.facts.default_shell.clone());
        created.working_directory = Some(prepared.facts.working_directory.clone());
        for warning in &prepared.warnings {
            self.events.warning(warning.clone());
        }
        if machine {
            let image = &self.plan.images[0].image;
            for warning in super::machine::check(self.backend.as_ref(), &primary, image).await {
                self.events.warning(warning);
            }
        }
        self.events.info(format!(
            "Primary container {} ({}) as uid {}, working directory {}",
            short_id(&primary),
            self.plan.images[0].image,
            prepared.facts.uid,
            prepared.facts.working_directory
        ));
        if let Some(gate) = settings.gate.clone()
            && let Some(stop) = self.wait_at(gate).await
        {
            return Ok(stop);
        }
        if let Some(up) = &settings.up {
            up.raise();
        }
        let watch = settings.watch.clone();
        let sync = watch.as_ref().map(|_| Arc::new(SyncState::default()));
        let ctx = StepContext {
            backend,
            plan: self.plan.clone(),
            events: self.events.clone(),
            cancel: self.cancel.clone(),
            primary: primary.clone(),
            facts: Arc::new(prepared.facts),
            settings: Arc::new(Settings {
                artifacts_dir: settings.artifacts_dir,
                cache_dir: self.options.cache_dir.clone(),
                docker_socket: socket.map(|s| s.container_path),
                workspace: settings.workspace,
                shell_on_fail: self.options.shell_on_fail.clone(),
                sync: sync.clone(),
            }),
            extra_env: Arc::new(Mutex::new(vec![(
                crate::agent::dir::ENV.to_string(),
                run_dir.clone(),
            )])),
            run_dir,
            halted: Arc::default(),
            agent_pending: Arc::new(agent_with_checkout.into()),
            agent_upload: Arc::new(Mutex::new(agent_beside_steps)),
            first_checkout: Arc::new(Mutex::new(checked_first)),
            staged_checkout: Arc::new(Mutex::new(staged_checkout)),
        };
        let mut steps = sequence::run_steps(&ctx).await;
        if let (Some(changes), Some(sync)) = (watch, &sync) {
            steps = super::watch::rerun_on_changes(&ctx, steps, self.started, changes, sync).await;
        }
        match steps {
            // A primary that runs its own command must still run at the end: CircleCI ends
            // the job when it exits, also when a step started just before it did.
            Ok(Sequence::Passed) if own_command => {
                match self.backend.container_running(&primary).await {
                    Ok(false) | Err(BackendError::NotFound(_)) => {
                        Ok(Sequence::Failed(super::PRIMARY_STOPPED.into()))
                    }
                    _ => Ok(Sequence::Passed),
                }
            }
            Ok(sequence) => Ok(sequence),
            Err(e) => primary_gone(self.backend.as_ref(), &primary, e.into()).await,
        }
    }

    /// The files staged on the host and mounted when the engine sees this machine's files:
    /// the `circleci` program and the first checkout's repository (stage.rs). Not with
    /// `--keep` (the containers outlive the staged files), nor the repository with `--watch`.
    fn stage(&self, run_dir: &str, settings: &JobSettings) -> Option<stage::Stage> {
        if self.run.keep {
            return None;
        }
        stage::prepare(
            self.backend.as_ref(),
            self.plan,
            run_dir,
            settings.watch.is_none(),
            self.events,
            self.cancel,
        )
    }

    /// The backend the steps use: the engine's, with the primary's processes started by its
    /// step runner (what followed the setup in its `output`) when the runner says it runs;
    /// otherwise the engine's alone (an exec per process).
    async fn steps_backend(
        &self,
        primary: &str,
        created: &Created,
        output: Output,
        leftover: Vec<u8>,
    ) -> Arc<dyn Backend> {
        let backend = self.backend.clone();
        let runner = StepRunner::start(
            backend.clone(),
            primary,
            created.stdin.clone(),
            output,
            leftover,
        );
        match tokio::time::timeout(RUNNER_START, runner).await {
            Ok(Some(runner)) => Arc::new(StepRunnerBackend::new(backend, runner)),
            _ => backend,
        }
    }

    /// Waits until the gate opens; `Some` when the job must not run its steps (withdrawn, or
    /// Ctrl-C).
    async fn wait_at(&self, mut gate: tokio::sync::watch::Receiver<Go>) -> Option<Sequence> {
        if *gate.borrow() == Go::Wait {
            super::hold::at(super::hold::Moment::Waiting, self.events).await;
        }
        loop {
            match *gate.borrow_and_update() {
                Go::Run => return None,
                Go::Withdraw => return Some(Sequence::Withdrawn),
                Go::Wait => {}
            }
            tokio::select! {
                () = self.cancel.cancelled() => return Some(Sequence::Interrupted),
                changed = gate.changed() => {
                    if changed.is_err() {
                        return Some(Sequence::Withdrawn);
                    }
                }
            }
        }
    }

    async fn prepare(
        &self,
        primary: &str,
        args: &SetupArgs,
        setup_output: Option<crate::backend::Output>,
        settings: &JobSettings,
        agent_with_setup: bool,
    ) -> Result<(setup::Prepared, Option<(Output, Vec<u8>)>), EngineError> {
        // The in-container `circleci` program (tests glob/split, step halt ...) goes in while
        // the setup runs: neither needs the other (unless the checkout takes it).
        let (prepared, agent) = tokio::join!(
            async {
                match setup_output {
                    // The primary runs the setup as its command: its report is its output.
                    Some(mut output) => match setup::read_attached(&mut output).await? {
                        Some((prepared, leftover)) => Ok((prepared, Some((output, leftover)))),
                        None => Err(EngineError::Setup(
                            "the primary container stopped during its setup".to_string(),
                        )),
                    },
                    None => Ok((
                        setup::prepare(self.backend.as_ref(), primary, args).await?,
                        None,
                    )),
                }
            },
            async {
                if !agent_with_setup {
                    return Ok(());
                }
                crate::agent::install(self.backend.as_ref(), primary).await
            }
        );
        let (prepared, rest) = prepared?;
        if let Err(e) = agent {
            self.events.warning(format!(
                "cannot put the `circleci` program into the primary container: {e}"
            ));
        }
        setup::install_agent(
            self.backend.as_ref(),
            primary,
            &args.run_dir,
            &prepared.facts,
            &settings.agent_dir_files,
        )
        .await?;
        Ok((prepared, rest))
    }
}
