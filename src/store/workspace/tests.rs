use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::*;

/// A tar of `(path, content)` files (a trailing `/` makes a folder).
fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            builder.append_data(&mut header, path, io::empty()).unwrap();
        } else {
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(&mut header, path, content.as_bytes())
                .unwrap();
        }
    }
    builder.into_inner().unwrap()
}

fn write_layer(dir: &Path, node: u32, step: usize, entries: &[(&str, &str)]) -> StoredLayer {
    let mut writer = LayerWriter::create(dir, node, step).unwrap();
    writer.write_all(&tar_of(entries)).unwrap();
    writer.commit().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_layer_round_trips_and_lists_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(".localci/runs/r1/workspace/build");
    let stored = write_layer(
        &dir,
        0,
        3,
        &[("dist/", ""), ("dist/a.js", "a"), ("./b", "bb")],
    );
    assert_eq!(stored.path, dir.join("0-3.tar"));
    assert_eq!(names(&dir), vec!["0-3.tar"], "no temporary file is left");
    let layer = verify("build", &stored.path).unwrap();
    assert_eq!(layer.files, vec!["dist/a.js", "b"]);
    assert_eq!(layer.size, stored.size);
    let mut tar = Vec::new();
    layer.into_reader().unwrap().read_to_end(&mut tar).unwrap();
    assert_eq!(
        tar,
        tar_of(&[("dist/", ""), ("dist/a.js", "a"), ("./b", "bb")])
    );
}

#[test]
fn a_dropped_writer_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut writer = LayerWriter::create(tmp.path(), 0, 1).unwrap();
    writer.write_all(&tar_of(&[("a", "a")])).unwrap();
    drop(writer);
    assert!(names(tmp.path()).is_empty());
    assert!(job_layers(tmp.path()).unwrap().is_empty());
}

#[test]
fn layers_apply_by_node_then_step_and_temporary_files_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    for (node, step) in [(1, 2), (0, 10), (0, 2)] {
        write_layer(tmp.path(), node, step, &[("x", "x")]);
    }
    fs::write(tmp.path().join(".tmp-abc.partial"), "half").unwrap();
    fs::write(tmp.path().join("notes.tar"), "other").unwrap();
    let found: Vec<String> = job_layers(tmp.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(found, vec!["0-2.tar", "0-10.tar", "1-2.tar"]);
    assert!(job_layers(&tmp.path().join("missing")).unwrap().is_empty());
}

#[test]
fn damaged_layers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let stored = write_layer(tmp.path(), 0, 1, &[("a.txt", "hello world")]);
    let mut bytes = fs::read(&stored.path).unwrap();
    // One flipped bit in the file data.
    let at = bytes.windows(5).position(|w| w == b"hello").unwrap();
    bytes[at] ^= 1;
    fs::write(&stored.path, &bytes).unwrap();
    let err = verify("build", &stored.path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, WorkspaceError::Damaged { .. }), "{text}");
    assert!(
        text.contains("SHA-256") && text.contains("run the job build again"),
        "{text}"
    );

    // Truncated: the trailer is gone.
    fs::write(&stored.path, &bytes[..bytes.len() - 10]).unwrap();
    let text = verify("build", &stored.path).unwrap_err().to_string();
    assert!(text.contains("does not end with a layer trailer"), "{text}");
    fs::write(&stored.path, b"tiny").unwrap();
    let text = verify("build", &stored.path).unwrap_err().to_string();
    assert!(text.contains("too short"), "{text}");
}

fn upstream<'a>(job: &'a str, dir: &'a Path, ancestors: &'a BTreeSet<String>) -> Upstream<'a> {
    Upstream {
        job,
        dir,
        ancestors,
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn unordered_jobs_that_wrote_the_same_file_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    write_layer(
        &a,
        0,
        1,
        &[("out/", ""), ("out/shared.log", "a"), ("out/a", "a")],
    );
    write_layer(
        &b,
        0,
        1,
        &[("out/", ""), ("out/shared.log", "b"), ("out/b", "b")],
    );
    write_layer(&c, 0, 1, &[("out/c", "c")]);
    let none = set(&[]);
    let jobs = [
        upstream("a", &a, &none),
        upstream("b", &b, &none),
        upstream("c", &c, &none),
    ];
    let err = prepare_attach(&jobs).unwrap_err();
    let WorkspaceError::Conflicts(conflicts) = &err else {
        panic!("{err}");
    };
    assert_eq!(
        conflicts,
        &vec![Conflict {
            path: "out/shared.log".into(),
            first: "a".into(),
            second: "b".into()
        }],
        "a folder both wrote is no conflict"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("Concurrent upstream jobs persisted the same file(s) into the workspace:\n  - out/shared.log (persisted by a and b)"),
        "{text}"
    );
}

#[test]
fn ordered_jobs_may_overwrite_and_the_later_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_layer(&a, 0, 1, &[("v", "1")]);
    write_layer(&b, 0, 1, &[("v", "2")]);
    // Two layers of one job never conflict either.
    write_layer(&b, 0, 2, &[("v", "3")]);
    let (none, after_a) = (set(&[]), set(&["a"]));
    let jobs = [upstream("a", &a, &none), upstream("b", &b, &after_a)];
    let layers = prepare_attach(&jobs).unwrap();
    let order: Vec<(String, String)> = layers
        .iter()
        .map(|l| {
            (
                l.job.clone(),
                l.path.file_name().unwrap().to_string_lossy().into_owned(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("a".into(), "0-1.tar".into()),
            ("b".into(), "0-1.tar".into()),
            ("b".into(), "0-2.tar".into())
        ]
    );
}

#[test]
fn a_damaged_layer_stops_the_whole_attach() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_layer(&a, 0, 1, &[("a", "a")]);
    let stored = write_layer(&b, 0, 1, &[("b", "b")]);
    let mut bytes = fs::read(&stored.path).unwrap();
    bytes[0] ^= 0x20;
    fs::write(&stored.path, &bytes).unwrap();
    let none = set(&[]);
    let err = prepare_attach(&[upstream("a", &a, &none), upstream("b", &b, &none)]).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Damaged { ref job, .. } if job == "b"),
        "{err}"
    );
}

#[test]
fn symlinks_in_localci_folders_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let repo = tmp.path().join("repo");
    fs::create_dir_all(repo.join(".localci")).unwrap();
    // A repository that ships `.localci/runs` as a link to somewhere else.
    std::os::unix::fs::symlink(&elsewhere, repo.join(".localci/runs")).unwrap();
    let dir = repo.join(".localci/runs/r1/workspace/build");
    let err = LayerWriter::create(&dir, 0, 1).err().expect("refused");
    assert!(
        matches!(&err, WorkspaceError::Symlink { path } if *path == repo.join(".localci/runs")),
        "{err}"
    );
    assert!(
        names(&elsewhere).is_empty(),
        "nothing was made through the link"
    );
    assert!(matches!(
        job_layers(&dir),
        Err(WorkspaceError::Symlink { .. })
    ));

    // A layer file that is a link is not opened.
    let real = repo.join(".localci/real/build");
    let stored = write_layer(&real, 0, 1, &[("a", "a")]);
    let linked = repo.join(".localci/real/build/0-2.tar");
    std::os::unix::fs::symlink(&stored.path, &linked).unwrap();
    assert!(matches!(
        verify("build", &linked),
        Err(WorkspaceError::Symlink { .. })
    ));
}

#[test]
fn components_above_localci_may_be_links() {
    let tmp = tempfile::tempdir().unwrap();
    let real_home = tmp.path().join("real-home");
    fs::create_dir(&real_home).unwrap();
    let home = tmp.path().join("home");
    std::os::unix::fs::symlink(&real_home, &home).unwrap();
    let dir: PathBuf = home.join("repo/.localci/runs/r1/workspace/build");
    write_layer(&dir, 0, 1, &[("a", "a")]);
    assert_eq!(job_layers(&dir).unwrap().len(), 1);
}

#[test]
fn a_layer_of_the_same_step_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    write_layer(tmp.path(), 0, 1, &[("a", "first")]);
    let stored = write_layer(tmp.path(), 0, 1, &[("a", "second!")]);
    let layer = verify("j", &stored.path).unwrap();
    let mut tar = Vec::new();
    layer.into_reader().unwrap().read_to_end(&mut tar).unwrap();
    assert_eq!(tar, tar_of(&[("a", "second!")]));
}
