//! `circleci tests glob` against a real folder tree.

use std::fs;
use std::path::Path;

use crate::agent::glob::{expand_braces, glob};

fn tree(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, file.as_bytes()).unwrap();
    }
    dir
}

fn run(dir: &Path, patterns: &[&str]) -> Vec<String> {
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    glob(&patterns, dir).unwrap()
}

const FILES: &[&str] = &[
    "tests/test_a.py",
    "tests/test_b.py",
    "tests/unit/test_c.py",
    "tests/unit/deep/test_d.py",
    "tests/helpers.txt",
    "src/app.py",
    ".hidden/test_e.py",
];

#[test]
fn a_double_star_matches_zero_or_more_folders() {
    let dir = tree(FILES);
    assert_eq!(
        run(dir.path(), &["tests/**/*.py"]),
        [
            "tests/test_a.py",
            "tests/test_b.py",
            "tests/unit/deep/test_d.py",
            "tests/unit/test_c.py"
        ]
    );
}

#[test]
fn a_star_and_a_question_mark_stay_in_one_folder() {
    let dir = tree(FILES);
    assert_eq!(
        run(dir.path(), &["tests/*.py"]),
        ["tests/test_a.py", "tests/test_b.py"]
    );
    assert_eq!(
        run(dir.path(), &["tests/test_?.py"]),
        run(dir.path(), &["tests/*.py"])
    );
    assert!(run(dir.path(), &["*.py"]).is_empty());
}

#[test]
fn classes_and_braces() {
    let dir = tree(FILES);
    assert_eq!(run(dir.path(), &["tests/test_[a].py"]), ["tests/test_a.py"]);
    assert_eq!(
        run(dir.path(), &["tests/test_[!a].py"]),
        ["tests/test_b.py"]
    );
    assert_eq!(
        run(dir.path(), &["tests/test_[a-z].py"]),
        ["tests/test_a.py", "tests/test_b.py"]
    );
    assert_eq!(
        run(dir.path(), &["{src,tests/unit}/*.py"]),
        ["src/app.py", "tests/unit/test_c.py"]
    );
    assert_eq!(
        run(dir.path(), &["tests/**/*.{py,txt}"]).len(),
        5,
        "alternatives after a double star"
    );
}

#[test]
fn results_are_files_only_sorted_and_unique_across_patterns() {
    let dir = tree(FILES);
    assert_eq!(
        run(dir.path(), &["tests/unit/*", "tests/**/test_c.py", "src/*"]),
        ["src/app.py", "tests/unit/test_c.py"],
        "the folder tests/unit/deep is not listed, test_c.py once"
    );
}

#[test]
fn a_trailing_double_star_matches_every_file_below() {
    let dir = tree(FILES);
    assert_eq!(
        run(dir.path(), &["tests/unit/**"]),
        ["tests/unit/deep/test_d.py", "tests/unit/test_c.py"]
    );
    assert_eq!(run(dir.path(), &["**/*.py"]).len(), 6, "hidden folders too");
}

#[test]
fn paths_keep_the_form_of_the_pattern() {
    let dir = tree(FILES);
    assert_eq!(run(dir.path(), &["./src/*.py"]), ["./src/app.py"]);
    let absolute = format!("{}/src/*.py", dir.path().display());
    assert_eq!(
        run(Path::new("/nonexistent"), &[&absolute]),
        [format!("{}/src/app.py", dir.path().display())]
    );
}

#[test]
fn literal_files_match_only_when_they_exist() {
    let dir = tree(FILES);
    assert_eq!(run(dir.path(), &["src/app.py"]), ["src/app.py"]);
    assert!(run(dir.path(), &["src/missing.py", "nowhere/**/*.py"]).is_empty());
}

#[test]
fn escapes_match_wildcard_characters_literally() {
    let dir = tree(&["odd/a*b.py", "odd/axb.py"]);
    assert_eq!(run(dir.path(), &["odd/a\\*b.py"]), ["odd/a*b.py"]);
}

#[cfg(unix)]
#[test]
fn symlinked_folders_are_not_followed_by_a_double_star() {
    let dir = tree(&["a/test_x.py"]);
    std::os::unix::fs::symlink(dir.path(), dir.path().join("a/loop")).unwrap();
    assert_eq!(run(dir.path(), &["**/*.py"]), ["a/test_x.py"]);
}

#[test]
fn brace_expansion_is_nested_and_bounded() {
    assert_eq!(
        expand_braces("{a,b{1,2}}.py").unwrap(),
        ["a.py", "b1.py", "b2.py"]
    );
    assert_eq!(
        expand_braces("[{]x").unwrap(),
        ["[{]x"],
        "a brace in a class is a character"
    );
    let error = expand_braces(&"{a,b}".repeat(13)).unwrap_err();
    assert!(error.to_string().contains("too many patterns"), "{error}");
    let error = expand_braces("tests/{a,b").unwrap_err();
    assert!(error.to_string().contains("not closed"), "{error}");
}

#[test]
fn bad_patterns_are_errors_that_name_the_pattern() {
    let dir = tree(FILES);
    for (pattern, reason) in [
        ("tests/[a.py", "`[` is not closed"),
        ("", "empty"),
        ("x\\", "lone"),
    ] {
        let error = glob(&[pattern.to_string()], dir.path()).unwrap_err();
        assert!(error.to_string().contains(reason), "{pattern:?}: {error}");
        assert!(
            error.to_string().contains(&format!("{pattern:?}")),
            "{error}"
        );
    }
}

#[test]
fn repeated_double_stars_match_like_one() {
    let dir = tree(FILES);
    assert_eq!(
        run(dir.path(), &["tests/**/**/**/*.py"]),
        run(dir.path(), &["tests/**/*.py"])
    );
}

#[test]
fn stars_backtrack_and_classes_take_a_leading_bracket_and_a_trailing_dash_literally() {
    let dir = tree(&[
        "w/test_a_spec_b.rb",
        "w/test_spec.rb",
        "w/x]y.txt",
        "w/x-y.txt",
        "w/xzy.txt",
    ]);
    assert_eq!(
        run(dir.path(), &["w/test_*spec*.rb"]),
        ["w/test_a_spec_b.rb", "w/test_spec.rb"]
    );
    assert_eq!(run(dir.path(), &["w/*_*_*.rb"]), ["w/test_a_spec_b.rb"]);
    assert_eq!(
        run(dir.path(), &["w/x[]]y.txt"]),
        ["w/x]y.txt"],
        "`]` first is a character"
    );
    assert_eq!(
        run(dir.path(), &["w/x[z-]y.txt"]),
        ["w/x-y.txt", "w/xzy.txt"],
        "`-` last too"
    );
    assert_eq!(
        run(dir.path(), &["w/x[!-]y.txt"]),
        ["w/x]y.txt", "w/xzy.txt"]
    );
}
