//! Prepares the primary container before the first step, in one exec as the container user:
//! learns the user's uid, gid and home, whether bash exists (the default shell), expands and
//! creates the working directory, creates the step folder and the `BASH_ENV` file.

use super::EngineError;
use crate::backend::{Backend, ExecSpec};
use crate::steps::Facts;
use crate::steps::process::collect;

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
echo "uid=$(id -u)"
echo "gid=$(id -g)"
echo "home=$home"
echo "wd=$wd"
if [ -x /bin/bash ]; then echo shell=/bin/bash; else echo shell=/bin/sh; fi"#;

/// What the setup found, and warnings to show.
pub struct Prepared {
    pub facts: Facts,
    pub warnings: Vec<String>,
}

pub async fn prepare(
    backend: &dyn Backend,
    primary: &str,
    working_directory: &str,
    run_dir: &str,
    bash_env: &str,
) -> Result<Prepared, EngineError> {
    let spec = ExecSpec {
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            SETUP.into(),
            "localci-setup".into(),
            working_directory.into(),
            run_dir.into(),
            bash_env.into(),
        ],
        ..ExecSpec::default()
    };
    let out = collect(backend, primary, spec).await?;
    if out.exit_code != 0 {
        let text = format!("{}{}", out.stdout, out.stderr);
        let why = if out.exit_code == 126 || out.exit_code == 127 || text.contains("no such file") {
            "the primary image has no /bin/sh; CircleCI's primary container needs a shell (bash or sh)".to_string()
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

fn parse(stdout: &str) -> Option<Prepared> {
    let mut warnings = Vec::new();
    let (mut uid, mut gid, mut home, mut wd, mut shell) = (None, None, None, None, None);
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
            _ => {}
        }
    }
    Some(Prepared {
        facts: Facts {
            uid: uid?,
            gid: gid?,
            home: home?,
            default_shell: shell?,
            working_directory: wd?,
        },
        warnings,
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
