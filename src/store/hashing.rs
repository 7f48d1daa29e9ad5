//! SHA-256 on the fly: a writer that hashes what it passes on, and a reader that checks what
//! it passed on against an expected digest when it reaches the end. Neither buffers data.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(Sha256::digest(bytes).as_slice())
}

/// Passes writes to `inner` and hashes and counts the bytes that `inner` accepted.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The inner writer, the hex digest and the byte count of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            hex(self.hasher.finalize().as_slice()),
            self.written,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads `inner` to its end, then fails instead of reporting the end when the bytes read do
/// not hash to `expected`: a damaged file is an error, never a silent short or wrong read.
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            verified: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        let actual = hex(std::mem::take(&mut self.hasher).finalize().as_slice());
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("its SHA-256 is {actual}, expected {}", self.expected),
            ));
        }
        self.verified = true;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_hashes_what_it_passes_on() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (inner, digest, n) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(n, 3);
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn reader_passes_good_data_and_fails_at_the_end_on_bad_data() {
        let good = sha256_hex(b"abc");
        let mut out = Vec::new();
        VerifyingReader::new(&b"abc"[..], good.clone())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abc");
        let err = VerifyingReader::new(&b"abd"[..], good)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().starts_with("its SHA-256 is "), "{err}");
    }
}
