//! Prepares the primary container before the first step, as the container user: learns the
//! user's uid, gid and home, whether bash exists (the default shell), expands and creates the
//! working directory, creates the step folder and the `BASH_ENV` file, and checks the target
//! of a first `checkout` step (so that step needs no round trip of its own).
//!
//! When localci chooses the primary's command (no entrypoint of the image's or the config's),
//! the setup is that command, read through the container's attached output, before the
//! keep-alive loop ([`container_command`]); otherwise it is one exec ([`prepare`]).

use super::EngineError;
use crate::backend::{Backend, ExecSpec, Output};
use crate::steps::Facts;
use crate::steps::process::{Collected, collect, read_until};

const SETUP: &str = r#"home=${HOME:-}
if [ -z "$home" ] || [ "$home" = / ]; then
  h=$(awk -F: -v u="$(id -un 2>/dev/null)" '$1 == u { print $6 }' /etc/passwd 2>/dev/null)
  [ -n "$h" ] && home=$h
fi
[ -n "$home" ] || home=/
wd=$1
case $wd in
  "~") wd=$home ;;
  "~/"*) wd="${home%/}/${wd#"~/"}" ;;
  /*) ;;
  *) wd="${home%/}/$wd" ;;
esac
mkdir -p "$wd" 2>/dev/null || echo "warning=cannot create the working directory $wd as $(id -un 2>/dev/null || id -u)"
mkdir -p "$2" || exit 1
: >>"$3" 2>/dev/null || echo "warning=cannot create the BASH_ENV file $3"
if [ -n "$5" ] && [ "$(id -u)" = 0 ] && mkdir -p /usr/local/bin 2>/dev/null &&
  cp "$5" /usr/local/bin/circleci 2>/dev/null &&
  ln -f /usr/local/bin/circleci /usr/local/bin/circleci-agent 2>/dev/null; then
  echo agent_installed=1
fi
echo "uid=$(id -u)"
echo "gid=$(id -g)"
echo "home=$home"
echo "wd=$wd"
if [ -x /bin/bash ]; then echo shell=/bin/bash; else echo shell=/bin/sh; fi
if [ -n "$4" ]; then
  case $4 in
    .) d=$wd ;;
    "~") d=$home ;;
    "~/"*) d="${home%/}/${4#"~/"}" ;;
    /*) d=$4 ;;
    *) d="${wd%/}/$4" ;;
  esac
  out=$(checkout_target "$d" 2>&1)
  echo "checkout_exit=$?"
  echo "checkout_dir=$d"
  printf '%s
' "$out" | while IFS= read -r line; do echo "checkout_out=$line"; done
fi"#;

/// The line that ends the setup's report in the container's output: `localci-setup-exit=N`.
const END: &str = "localci-setup-exit=";

/// What the setup script takes: the job's working directory (as written), the step folder,
/// the `BASH_ENV` file, the `path` of a `checkout` that is the first step (`.` for none
/// given), and the mounted `circleci` program, which a root setup copies to
/// `/usr/local/bin/circleci` and `circleci-agent` (engine/stage.rs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SetupArgs {
    pub working_directory: String,
    pub run_dir: String,
    pub bash_env: String,
    pub first_checkout: Option<String>,
    pub agent: Option<String>,
}

impl SetupArgs {
    /// `$0` and the arguments of the script.
    fn argv(&self) -> [String; 6] {
        [
            "localci-setup".into(),
            self.working_directory.clone(),
            self.run_dir.clone(),
            self.bash_env.clone(),
            self.first_checkout.clone().unwrap_or_default(),
            self.agent.clone().unwrap_or_default(),
        ]
    }
}

/// The script with the checkout check it calls.
fn script() -> String {
    format!(
        "{}
{SETUP}",
        crate::steps::checkout::CHECK_TARGET
    )
}

/// The primary container's command (after `/bin/sh`) when localci chooses it: the setup in a
/// subshell, its end marker, then `keep_alive` (which must not print).
pub(crate) fn container_command(args: &SetupArgs, keep_alive: &str) -> Vec<String> {
    let script = format!(
        "trap 'exit 0' TERM INT
(
{}
)
echo \"{END}$?\"
{keep_alive}",
        script()
    );
    let mut cmd = vec!["-c".to_string(), script];
    cmd.extend(args.argv());
    cmd
}

/// The setup as one exec, for a primary that runs its own command.
pub async fn prepare(
    backend: &dyn Backend,
    primary: &str,
    args: &SetupArgs,
) -> Result<Prepared, EngineError> {
    let mut cmd = vec!["/bin/sh".to_string(), "-c".to_string(), script()];
    cmd.extend(args.argv());
    let spec = ExecSpec {
        cmd,
        ..ExecSpec::default()
    };
    report(collect(backend, primary, spec).await?)
}

/// The setup's report from the primary's attached output ([`container_command`]), read up to
/// its end marker, with what followed it in the output (the step runner's first bytes).
/// `None` when the output ended first: the container stopped.
pub async fn read_attached(
    output: &mut Output,
) -> Result<Option<(Prepared, Vec<u8>)>, EngineError> {
    let (stdout, stderr) = read_until(output, |out| end_marker(out).is_some()).await?;
    let Some((at, exit_code)) = end_marker(&stdout) else {
        return Ok(None);
    };
    let after = at + memchr::memchr(b'\n', &stdout[at..]).map_or(stdout.len() - at, |n| n + 1);
    let out = Collected {
        stdout: String::from_utf8_lossy(&stdout[..at]).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit_code,
    };
    let leftover = stdout[after..].to_vec();
    report(out).map(|prepared| Some((prepared, leftover)))
}

/// Where the whole end-marker line starts in `stdout`, and the exit code it gives.
fn end_marker(stdout: &[u8]) -> Option<(usize, i64)> {
    let at = memchr::memmem::find(stdout, END.as_bytes())?;
    let rest = &stdout[at + END.len()..];
    let line = &rest[..memchr::memchr(b'\n', rest)?];
    let code = std::str::from_utf8(line).ok()?.trim().parse().unwrap_or(-1);
    Some((at, code))
}

/// What the setup found, from what it printed and its exit code.
fn report(out: Collected) -> Result<Prepared, EngineError> {
    if out.exit_code != 0 {
        let text = format!("{}{}", out.stdout, out.stderr);
        let why = if out.exit_code == 126 || out.exit_code == 127 || text.contains("no such file") {
            NO_SHELL.to_string()
        } else {
            format!(
                "preparing the primary container failed (exit code {}): {}",
                out.exit_code,
                text.trim()
            )
        };
        return Err(EngineError::Setup(why));
    }
    parse(&out.stdout).ok_or_else(|| {
        EngineError::Setup(format!(
            "cannot read what the primary container reported: {}",
            out.stdout.trim()
        ))
    })
}

/// Why a primary image without a shell cannot run a job.
pub(crate) const NO_SHELL: &str =
    "the primary image has no /bin/sh; CircleCI's primary container needs a shell (bash or sh)";

/// What the setup found, and warnings to show.
pub struct Prepared {
    pub facts: Facts,
    pub warnings: Vec<String>,
    /// The check of the first `checkout` step's target, when [`SetupArgs::first_checkout`]
    /// asked for it.
    pub first_checkout: Option<crate::steps::FirstCheckout>,
    /// The setup copied the mounted program to `/usr/local/bin` ([`SetupArgs::agent`]).
    pub agent_installed: bool,
}

fn parse(stdout: &str) -> Option<Prepared> {
    let mut warnings = Vec::new();
    let (mut uid, mut gid, mut home, mut wd, mut shell) = (None, None, None, None, None);
    let (mut checkout_exit, mut checkout_dir, mut checkout_out) = (None, None, String::new());
    let mut agent_installed = false;
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "uid" => uid = value.trim().parse().ok(),
            "gid" => gid = value.trim().parse().ok(),
            "home" => home = Some(value.to_string()),
            "wd" => wd = Some(value.to_string()),
            "shell" => shell = Some(value.to_string()),
            "warning" => warnings.push(value.to_string()),
            "agent_installed" => agent_installed = value.trim() == "1",
            "checkout_exit" => checkout_exit = value.trim().parse().ok(),
            "checkout_dir" => checkout_dir = Some(value.to_string()),
            "checkout_out" => {
                checkout_out.push_str(value);
                checkout_out.push('\n');
            }
            _ => {}
        }
    }
    let first_checkout = match (checkout_exit, checkout_dir) {
        (Some(exit_code), Some(dir)) => Some(crate::steps::FirstCheckout {
            dir,
            checked: Collected {
                stdout: checkout_out,
                stderr: String::new(),
                exit_code,
            },
        }),
        _ => None,
    };
    Some(Prepared {
        facts: Facts {
            uid: uid?,
            gid: gid?,
            home: home?,
            default_shell: shell?,
            working_directory: wd?,
        },
        warnings,
        first_checkout,
        agent_installed,
    })
}

/// Puts files into the job's agent folder (`run_dir`) before the first step, owned by the
/// job's user so steps can read them and the in-container program can write next to them.
pub async fn install_agent(
    backend: &dyn Backend,
    primary: &str,
    run_dir: &str,
    facts: &Facts,
    files: &[(String, Vec<u8>)],
) -> Result<(), EngineError> {
    if files.is_empty() {
        return Ok(());
    }
    let tar = small_tar(files, facts.uid, facts.gid)
        .map_err(|e| EngineError::Setup(format!("cannot pack the agent files: {e}")))?;
    let stream = futures_util::stream::once(async move { Ok(bytes::Bytes::from(tar)) });
    backend
        .upload(primary, run_dir, Box::pin(stream))
        .await
        .map_err(EngineError::from)
}

/// An in-memory tar of small regular files (mode 0644) owned by `uid`:`gid`.
fn small_tar(files: &[(String, Vec<u8>)], uid: u64, gid: u64) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(super::now_unix());
        builder.append_data(&mut header, name, content.as_slice())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report() {
        let p = parse("warning=x\nuid=3434\ngid=3434\nhome=/home/circleci\nwd=/home/circleci/project\nshell=/bin/bash\n").unwrap();
        assert_eq!(p.facts.uid, 3434);
        assert_eq!(p.facts.working_directory, "/home/circleci/project");
        assert_eq!(p.warnings, vec!["x"]);
        assert!(parse("uid=1\n").is_none());
    }
}
