//! The agent's command line.

use crate::agent::args::{Command, SplitArgs, USAGE, duration_micros, node, parse};
use crate::agent::split::{SplitBy, TimingsType};

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn split_args() -> SplitArgs {
    SplitArgs {
        by: SplitBy::Name,
        timings_type: TimingsType::Autodetect,
        index: None,
        total: None,
        show_counts: false,
        time_default: None,
        file: None,
    }
}

#[test]
fn help_in_every_usual_form() {
    for line in [
        "",
        "help",
        "--help",
        "-h",
        "tests split --help",
        "step halt -h",
    ] {
        assert_eq!(parse(&words(line)), Ok(Command::Help(USAGE)), "{line:?}");
    }
}

#[test]
fn glob_takes_patterns() {
    assert_eq!(
        parse(&words("tests glob a/**/*.py b/*.py")),
        Ok(Command::Glob(words("a/**/*.py b/*.py")))
    );
    assert!(parse(&words("tests glob")).is_err());
}

#[test]
fn split_flags_with_and_without_equals() {
    let parsed = parse(&words(
        "tests split --split-by=timings --timings-type classname --index=1 --total 3 --show-counts --time-default=1m30s list.txt",
    ));
    assert_eq!(
        parsed,
        Ok(Command::Split(SplitArgs {
            by: SplitBy::Timings,
            timings_type: TimingsType::Classname,
            index: Some(1),
            total: Some(3),
            show_counts: true,
            time_default: Some(90_000_000),
            file: Some("list.txt".into()),
        }))
    );
    assert_eq!(
        parse(&words("tests split")),
        Ok(Command::Split(split_args()))
    );
}

#[test]
fn run_needs_a_command_and_takes_the_split_flags() {
    let mut args = words("tests run --split-by filesize --verbose --command");
    args.push("xargs pytest -q".into());
    assert_eq!(
        parse(&args),
        Ok(Command::Run {
            split: SplitArgs {
                by: SplitBy::Filesize,
                ..split_args()
            },
            command: "xargs pytest -q".into(),
            verbose: true,
        })
    );
    let error = parse(&words("tests run --split-by=name")).unwrap_err();
    assert!(error.to_string().contains("--command"), "{error}");
}

#[test]
fn bad_values_and_unknown_flags_say_what_is_expected() {
    for (line, expected) in [
        ("tests split --split-by=size", "name, filesize or timings"),
        (
            "tests split --timings-type=file",
            "filename, classname, testname or autodetect",
        ),
        ("tests split --index=one", "a whole number"),
        ("tests split --time-default=soon", "a duration"),
        ("tests split --bogus", "no flag --bogus"),
        ("tests split a.txt b.txt", "one list file"),
        ("tests split --index", "needs a value"),
        ("step halt now", "takes no argument"),
    ] {
        let error = parse(&words(line)).unwrap_err().to_string();
        assert!(error.contains(expected), "{line:?}: {error}");
    }
}

#[test]
fn step_halt_env_subst_and_what_is_not_emulated() {
    assert_eq!(parse(&words("step halt")), Ok(Command::StepHalt));
    assert_eq!(parse(&words("env subst")), Ok(Command::EnvSubst(None)));
    assert_eq!(
        parse(&["env".into(), "subst".into(), "a $B".into()]),
        Ok(Command::EnvSubst(Some("a $B".into())))
    );
    assert_eq!(
        parse(&words("config validate")),
        Ok(Command::NotEmulated("config".into()))
    );
    assert_eq!(
        parse(&words("orb pack src")),
        Ok(Command::NotEmulated("orb".into()))
    );
    assert_eq!(
        parse(&words("tests rerun-failed")),
        Ok(Command::NotEmulated("tests rerun-failed".into()))
    );
}

#[test]
fn the_node_comes_from_flags_then_the_environment_then_defaults() {
    let mut split = split_args();
    assert_eq!(node(&split, None, None), Ok((0, 1)));
    assert_eq!(node(&split, Some("1"), Some("2")), Ok((1, 2)));
    assert_eq!(node(&split, Some(""), Some("")), Ok((0, 1)));
    split.index = Some(0);
    split.total = Some(4);
    assert_eq!(node(&split, Some("1"), Some("2")), Ok((0, 4)));
    split.index = Some(4);
    let error = node(&split, None, None).unwrap_err().to_string();
    assert!(error.contains("out of range"), "{error}");
    split.total = Some(0);
    assert!(node(&split, None, None).is_err());
    assert!(node(&split_args(), Some("x"), None).is_err());
}

#[test]
fn durations_in_go_form_or_plain_seconds() {
    assert_eq!(duration_micros("10s"), Some(10_000_000));
    assert_eq!(duration_micros("1.5s"), Some(1_500_000));
    assert_eq!(duration_micros("1m30s"), Some(90_000_000));
    assert_eq!(duration_micros("250ms"), Some(250_000));
    assert_eq!(duration_micros("2h"), Some(7_200_000_000));
    assert_eq!(duration_micros("3"), Some(3_000_000));
    for bad in ["", "s", "10x", "-1s", "1e400"] {
        assert_eq!(duration_micros(bad), None, "{bad:?}");
    }
}
