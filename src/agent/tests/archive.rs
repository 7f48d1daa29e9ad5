//! The tar the engine uploads: the agent under both names, executable, owned by root.

use std::io::Read;

use crate::agent::archive::{AGENT_PATH, INSTALL_PATH, of};
use crate::agent::{agent_archive, install};
use crate::backend::fake::FakeBackend;

#[test]
fn the_archive_holds_the_binary_and_a_hard_link_to_it() {
    let bytes = of(b"\x7fELF pretend");
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entries = archive.entries().unwrap();
    let mut file = entries.next().unwrap().unwrap();
    assert_eq!(file.path().unwrap().to_str(), Some(INSTALL_PATH));
    assert_eq!(file.header().entry_type(), tar::EntryType::Regular);
    assert_eq!(file.header().mode().unwrap(), 0o755);
    assert_eq!(
        (file.header().uid().unwrap(), file.header().gid().unwrap()),
        (0, 0)
    );
    let mut content = Vec::new();
    file.read_to_end(&mut content).unwrap();
    assert_eq!(content, b"\x7fELF pretend");
    drop(file);
    let link = entries.next().unwrap().unwrap();
    assert_eq!(link.path().unwrap().to_str(), Some(AGENT_PATH));
    assert_eq!(link.header().entry_type(), tar::EntryType::Link);
    assert_eq!(
        link.link_name().unwrap().unwrap().to_str(),
        Some(INSTALL_PATH)
    );
    assert_eq!(link.header().mode().unwrap(), 0o755);
    drop(link);
    assert!(entries.next().is_none());
}

#[test]
fn the_embedded_agent_is_a_static_linux_executable() {
    let archive = agent_archive();
    let binary = crate::agent::AGENT_BINARY;
    assert!(binary.starts_with(b"\x7fELF"), "an ELF executable");
    assert!(
        !has_interpreter(binary),
        "linked statically: no dynamic loader needed"
    );
    assert!(archive.len() > binary.len());
    assert!(binary.len() < 4 << 20, "{} bytes", binary.len());
}

/// Whether a 64-bit little-endian ELF file has a `PT_INTERP` program header (a dynamic
/// loader such as `/lib64/ld-linux-x86-64.so.2`, absent from images without a libc).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert_eq!(&elf[4..6], &[2, 1], "ELF64, little endian");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let offset = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).unwrap();
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = offset + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

#[tokio::test]
async fn install_uploads_the_archive_at_the_root() {
    let backend = FakeBackend::new(&["img"]);
    install(&backend, "primary").await.unwrap();
    let state = backend.state();
    assert_eq!(state.uploads.len(), 1);
    let (container, dir, tar) = &state.uploads[0];
    assert_eq!((container.as_str(), dir.as_str()), ("primary", "/"));
    assert_eq!(tar, &agent_archive());
    assert_eq!(
        state
            .files
            .get("/usr/local/bin/circleci")
            .map(Vec::as_slice),
        Some(crate::agent::AGENT_BINARY)
    );
}
