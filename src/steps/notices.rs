//! Steps that have no local counterpart, or only a partial one: they say clearly what they
//! do here, and pass (a local run should not fail for lack of CircleCI's infrastructure).

use super::StepOutcome;
use super::context::StepContext;

/// `add_ssh_keys`: CircleCI installs the project's keys; localci has none of them.
pub fn add_ssh_keys(ctx: &StepContext, fingerprints: &[String]) -> StepOutcome {
    let which = if fingerprints.is_empty() {
        "all of the project's SSH keys".to_string()
    } else {
        format!("the SSH keys {}", fingerprints.join(", "))
    };
    ctx.events.warning(format!(
        "add_ssh_keys: on CircleCI this step installs {which} from the project settings; \
         localci cannot reach them, so no key was added. Steps that need SSH access will fail \
         unless the image brings its own keys."
    ));
    StepOutcome::Passed { exit_code: None }
}

/// `setup_remote_docker`: with `--docker-socket` the host's engine is already mounted in the
/// primary container; later steps get `DOCKER_HOST`. Without it there is no engine.
pub fn setup_remote_docker(ctx: &StepContext, version: Option<&str>) -> StepOutcome {
    let asked = version.map_or(String::new(), |v| format!(" (version {v} asked for)"));
    match &ctx.settings.docker_socket {
        Some(socket) => {
            let host = format!("unix://{socket}");
            ctx.extra_env
                .lock()
                .expect("no step panics while holding it")
                .push(("DOCKER_HOST".into(), host.clone()));
            ctx.events.info(format!(
                "Using the host's Docker engine{asked}: its socket is mounted at {socket} and \
                 DOCKER_HOST={host} is set for the next steps. Containers you start there are \
                 siblings of this job, not children, as with CircleCI's remote engine."
            ));
        }
        None => ctx.events.warning(format!(
            "setup_remote_docker{asked}: localci does not create a remote Docker engine. Run \
             with --docker-socket to mount the host's Docker socket into the primary container; \
             without it, docker commands in later steps have no engine to talk to."
        )),
    }
    StepOutcome::Passed { exit_code: None }
}

/// `install_signing_bundle`: a macOS step (it installs the bundles of `macos.code_signing`);
/// a Docker job has no keychain to install them in.
pub fn install_signing_bundle(ctx: &StepContext) -> StepOutcome {
    ctx.events.warning(
        "install_signing_bundle: on CircleCI this macOS step installs the code-signing bundles \
         of `macos.code_signing`; localci runs Docker jobs, so nothing was installed."
            .to_string(),
    );
    StepOutcome::Passed { exit_code: None }
}
