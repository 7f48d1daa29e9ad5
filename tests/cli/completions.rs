//! `localci completions <shell>` and `localci man`: generated from the clap definitions, so
//! they name every subcommand and option the binary accepts; the scripts parse in their shell
//! and the man pages render with groff without warnings.

use std::io::Write;
use std::process::{Command, Stdio};

/// Plain text, lines long enough not to hyphenate, every warning on.
const GROFF: &[&str] = &["-man", "-Tutf8", "-ww", "-rLL=300n"];
const SUBCOMMANDS: &[&str] = &[
    "validate",
    "process",
    "execute",
    "cache",
    "completions",
    "man",
    "list",
    "plan",
    "orb",
];

fn localci(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_localci"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `program args` with `input` on stdin; `None` when the program is not installed.
fn pipe(program: &str, args: &[&str], input: &str) -> Option<(bool, String, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn completion_scripts_name_every_subcommand_and_option() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, stderr) = localci(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} script lacks `{sub}`");
        }
        for option in ["image-map", "docker-socket", "env-file", "strict"] {
            assert!(script.contains(option), "{shell} script lacks `--{option}`");
        }
    }
}

#[test]
fn the_bash_script_parses_and_completes_subcommands() {
    let (_, script, _) = localci(&["completions", "bash"]);
    // Load the script, then ask it what `localci ex<TAB>` completes to.
    let probe = format!(
        "{script}\nCOMP_WORDS=(localci ex); COMP_CWORD=1; _localci localci ex localci; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let (ok, out, err) = pipe("bash", &["-s"], &probe).expect("bash is installed");
    assert!(ok, "bash could not load the script: {err}");
    assert_eq!(out.trim(), "execute", "completions of `localci ex`: {err}");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let (code, _, stderr) = localci(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("possible values: bash"), "{stderr}");
}

#[test]
fn the_man_pages_render_and_list_the_subcommands() {
    let (code, page, stderr) = localci(&["man"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(page.starts_with(".ie"), "not roff:\n{page}");
    let Some((ok, text, warnings)) = pipe("groff", GROFF, &page) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: groff is not installed (apt-get install groff)"
        );
        eprintln!("skipping the rendering check: groff is not installed");
        return;
    };
    assert!(ok && warnings.is_empty(), "groff: {warnings}");
    // groff bolds with backspaces; the plain text is what a reader sees.
    let text = strip_overstrike(&text);
    assert!(text.contains("localci - Run CircleCI configs"), "{text}");
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(&format!("localci-{sub}(1)")),
            "no localci-{sub}(1) in:\n{text}"
        );
    }

    let (code, page, _) = localci(&["man", "execute"]);
    assert_eq!(code, 0);
    let (ok, text, warnings) = pipe("groff", GROFF, &page).unwrap();
    assert!(ok && warnings.is_empty(), "groff: {warnings}");
    let text = strip_overstrike(&text);
    assert!(
        text.contains("localci-execute - Run a workflow (as a DAG) or one job"),
        "{text}"
    );
    assert!(text.contains("--image-map"), "{text}");

    let (code, _, stderr) = localci(&["man", "nope"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("the subcommands are: validate, process, execute"),
        "{stderr}"
    );
}

/// Removes groff's `x\bx` bold and `_\bx` underline, and collapses the justification spaces.
fn strip_overstrike(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
            continue;
        }
        out.push(c);
    }
    let text: String = out.into_iter().collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
