//! The tar that installs the agent in a container: `usr/local/bin/circleci` (mode 0755, owner
//! root) and `usr/local/bin/circleci-agent`, a hard link to it (one copy of the bytes on the
//! wire), to be extracted at `/` (Docker creates the missing parent folders).
//!
//! Only the `tar` crate, no I/O and no `crate::` paths: the Docker test (tests/cli/agent.rs)
//! compiles this file too, so it uploads exactly what the engine uploads.

/// Where the agent is installed, relative to `/`.
pub(crate) const INSTALL_PATH: &str = "usr/local/bin/circleci";
/// The second name, a hard link to the first.
pub(crate) const AGENT_PATH: &str = "usr/local/bin/circleci-agent";

/// The archive of `binary`, built in memory.
pub(crate) fn of(binary: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::with_capacity(binary.len() + 4096));
    append(&mut builder, binary).expect("appending to an in-memory tar cannot fail");
    builder
        .into_inner()
        .expect("finishing an in-memory tar cannot fail")
}

/// The entries of [`of`], appended to another archive extracted at `/` (the checkout's).
pub(crate) fn append<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    binary: &[u8],
) -> std::io::Result<()> {
    let mut file = header(tar::EntryType::Regular, binary.len() as u64);
    builder.append_data(&mut file, INSTALL_PATH, binary)?;
    let mut link = header(tar::EntryType::Link, 0);
    builder.append_link(&mut link, AGENT_PATH, INSTALL_PATH)
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    // A fixed time keeps the archive reproducible.
    header.set_mtime(0);
    header
}
