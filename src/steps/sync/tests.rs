//! The manifest diff: what a rerun's checkout sends and removes.

use std::cell::Cell;

use super::*;

fn stamp(size: u64, mtime: i128) -> Stamp {
    Stamp {
        size,
        mode: 0o100_644,
        mtime,
        ctime: mtime,
        inode: 7,
    }
}

fn file(name: &str, size: u64, mtime: i128) -> Found {
    Found {
        name: PathBuf::from(name),
        source: PathBuf::from("/repo").join(name),
        kind: Kind::File,
        stamp: stamp(size, mtime),
    }
}

fn dir(name: &str) -> Found {
    Found {
        kind: Kind::Dir,
        stamp: Stamp {
            mode: 0o40_755,
            ..stamp(0, 1)
        },
        ..file(name, 0, 1)
    }
}

fn link(name: &str, to: &str) -> Found {
    Found {
        kind: Kind::Link(PathBuf::from(to)),
        ..file(name, 0, 1)
    }
}

/// A content hash that a test decides: the file's size in the first byte.
fn by_size(f: &Found) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = u8::try_from(f.stamp.size).unwrap();
    h
}

/// The manifest a sync of `found` leaves (every file hashed by [`by_size`]).
fn synced(found: &[Found]) -> Manifest {
    let entries = found
        .iter()
        .map(|f| {
            let hash = (f.kind == Kind::File).then(|| by_size(f));
            let record = Record {
                kind: f.kind.clone(),
                stamp: f.stamp,
                hash,
            };
            (f.name.clone(), record)
        })
        .collect();
    Manifest { entries }
}

fn names(found: &[Found], delta: &Delta) -> Vec<String> {
    delta
        .send
        .iter()
        .map(|&i| found[i].name.display().to_string())
        .collect()
}

fn tree() -> Vec<Found> {
    vec![
        file("README.md", 10, 1),
        dir("src"),
        file("src/app.py", 20, 1),
        file("src/lib.py", 30, 1),
        link("latest", "src/app.py"),
    ]
}

#[test]
fn a_first_sync_sends_everything_but_sockets() {
    let mut found = tree();
    found.push(Found {
        kind: Kind::Other,
        ..file("run.sock", 0, 1)
    });
    let delta = diff(&Manifest::default(), &found, &mut |f| Ok(by_size(f))).unwrap();
    assert_eq!(
        names(&found, &delta),
        ["README.md", "src", "src/app.py", "src/lib.py", "latest"]
    );
    assert!(delta.remove.is_empty());
    assert!(delta.kept.is_empty());
}

#[test]
fn an_unchanged_tree_sends_nothing_and_reads_no_file() {
    let found = tree();
    let hashed = Cell::new(0);
    let delta = diff(&synced(&found), &found, &mut |f| {
        hashed.set(hashed.get() + 1);
        Ok(by_size(f))
    })
    .unwrap();
    assert!(delta.send.is_empty(), "{:?}", names(&found, &delta));
    assert!(delta.remove.is_empty());
    assert_eq!((delta.removed, hashed.get()), (0, 0));
    assert_eq!(delta.kept.len(), found.len());
}

#[test]
fn a_touched_file_with_the_same_content_is_not_sent() {
    let before = tree();
    let mut after = tree();
    after[2].stamp.mtime = 99;
    after[2].stamp.ctime = 99;
    let delta = diff(&synced(&before), &after, &mut |f| Ok(by_size(f))).unwrap();
    assert!(delta.send.is_empty());
    // Its record takes the new times, so the next sync does not read it again.
    assert_eq!(delta.kept[Path::new("src/app.py")].stamp.mtime, 99);
}

#[test]
fn a_changed_file_is_sent_alone() {
    let before = tree();
    let mut after = tree();
    after[3] = file("src/lib.py", 31, 5);
    let delta = diff(&synced(&before), &after, &mut |f| Ok(by_size(f))).unwrap();
    assert_eq!(names(&after, &delta), ["src/lib.py"]);
    assert_eq!(delta.kept.len(), 4);
}

#[test]
fn a_same_size_edit_is_found_by_its_hash() {
    let before = tree();
    let mut after = tree();
    after[2].stamp.mtime = 50;
    let delta = diff(&synced(&before), &after, &mut |_| Ok([9u8; 32])).unwrap();
    assert_eq!(names(&after, &delta), ["src/app.py"]);
}

#[test]
fn a_mode_change_or_a_new_link_target_is_sent_without_reading() {
    let before = tree();
    let mut after = tree();
    after[0].stamp.mode = 0o100_755;
    after[4] = link("latest", "src/lib.py");
    let delta = diff(&synced(&before), &after, &mut |_| {
        panic!("nothing needs reading");
    })
    .unwrap();
    assert_eq!(names(&after, &delta), ["README.md", "latest"]);
}

#[test]
fn a_path_that_changed_kind_is_sent() {
    let before = tree();
    let mut after = tree();
    after[4] = file("latest", 3, 1);
    let delta = diff(&synced(&before), &after, &mut |f| Ok(by_size(f))).unwrap();
    assert_eq!(names(&after, &delta), ["latest"]);
}

#[test]
fn removed_paths_are_removed_outermost_first_and_counted_as_files() {
    let before = tree();
    let after = vec![file("README.md", 10, 1), link("latest", "src/app.py")];
    let delta = diff(&synced(&before), &after, &mut |f| Ok(by_size(f))).unwrap();
    assert!(delta.send.is_empty());
    assert_eq!(delta.remove, [PathBuf::from("src")]);
    assert_eq!(delta.removed, 2, "two files went with the folder");
}

#[test]
fn a_new_file_in_a_new_folder_sends_the_folder_first() {
    let before = tree();
    let mut after = tree();
    after.push(dir("docs"));
    after.push(file("docs/a.md", 4, 1));
    let delta = diff(&synced(&before), &after, &mut |f| Ok(by_size(f))).unwrap();
    assert_eq!(names(&after, &delta), ["docs", "docs/a.md"]);
}

#[test]
fn a_file_that_vanishes_while_it_is_read_counts_as_removed() {
    let before = tree();
    let mut after = tree();
    after[2].stamp.mtime = 42;
    let delta = diff(&synced(&before), &after, &mut |f| {
        if f.name == Path::new("src/app.py") {
            Err(io::Error::from(io::ErrorKind::NotFound))
        } else {
            Ok(by_size(f))
        }
    })
    .unwrap();
    assert_eq!(delta.remove, [PathBuf::from("src/app.py")]);
    assert_eq!(delta.removed, 1);
    assert!(!delta.kept.contains_key(Path::new("src/app.py")));
}

#[test]
fn the_last_listing_of_a_name_wins() {
    let before = tree();
    let mut after = tree();
    after.push(file("src/lib.py", 33, 8));
    let delta = diff(&synced(&before), &after, &mut |f| Ok(by_size(f))).unwrap();
    assert_eq!(delta.send, [5]);
}

#[test]
fn the_figures_line_reads_well() {
    let counts = SyncCounts {
        files: 1,
        bytes: 12,
        removed: 0,
        unchanged: 9999,
    };
    assert_eq!(
        sync_line(&counts),
        "checkout: synced 1 file (12 B), 0 removed, 9999 unchanged"
    );
}

#[test]
fn a_path_of_unknown_state_is_sent_again_or_removed() {
    let before = tree();
    let mut manifest = synced(&before);
    for name in ["latest", "src/app.py"] {
        let record = manifest.entries.get_mut(Path::new(name)).unwrap();
        record.kind = Kind::Other;
        record.stamp = Stamp::default();
        record.hash = None;
    }
    let after: Vec<Found> = tree()
        .into_iter()
        .filter(|f| f.name != Path::new("src/app.py"))
        .collect();
    let delta = diff(&manifest, &after, &mut |f| Ok(by_size(f))).unwrap();
    assert_eq!(names(&after, &delta), ["latest"]);
    assert_eq!(delta.remove, [PathBuf::from("src/app.py")]);
}
