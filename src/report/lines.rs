//! Turns output chunks (split anywhere by the transport) into whole lines, one buffer per
//! stream, so the reporter never prints half a line.

use std::sync::Arc;

use super::mask::{Secrets, StreamMasker};
use crate::backend::Stream;

#[derive(Default)]
pub struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Masks each stream before it is cut into lines, so a secret written in pieces (or cut by
    /// `MAX_LINE`) is still masked.
    maskers: Option<Box<(StreamMasker, StreamMasker)>>,
}

/// Lines longer than this are cut, so one endless line cannot use all memory.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// A splitter that masks `secrets`.
    pub fn masking(secrets: Arc<Secrets>) -> LineSplitter {
        LineSplitter {
            maskers: (!secrets.is_empty()).then(|| {
                Box::new((
                    StreamMasker::new(secrets.clone()),
                    StreamMasker::new(secrets),
                ))
            }),
            ..LineSplitter::default()
        }
    }

    /// Feeds a chunk; returns the lines it completed (without their `\n`).
    pub fn push(&mut self, stream: Stream, chunk: &[u8]) -> Vec<String> {
        let masked = match &mut self.maskers {
            Some(m) if stream == Stream::Stdout => m.0.push(chunk),
            Some(m) => m.1.push(chunk),
            None => chunk.to_vec(),
        };
        let buf = self.buffer(stream);
        buf.extend_from_slice(&masked);
        let mut lines = Vec::new();
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            lines.push(text(&line[..line.len() - 1]));
        }
        if buf.len() > MAX_LINE {
            lines.push(text(&std::mem::take(buf)));
        }
        lines
    }

    /// What is left once the stream has ended: a last line without `\n`, per stream.
    pub fn finish(&mut self) -> Vec<(Stream, String)> {
        if let Some(m) = &mut self.maskers {
            let (out, err) = (m.0.finish(), m.1.finish());
            self.stdout.extend_from_slice(&out);
            self.stderr.extend_from_slice(&err);
        }
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter_map(|s| {
                let rest = std::mem::take(self.buffer(s));
                (!rest.is_empty()).then(|| (s, text(&rest)))
            })
            .collect()
    }

    fn buffer(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }
}

fn text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.strip_suffix('\r').unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_whole_per_stream() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(Stream::Stdout, b"he"), Vec::<String>::new());
        assert_eq!(s.push(Stream::Stderr, b"err\r\nx"), vec!["err"]);
        assert_eq!(s.push(Stream::Stdout, b"llo\nwor"), vec!["hello"]);
        assert_eq!(
            s.finish(),
            vec![(Stream::Stdout, "wor".into()), (Stream::Stderr, "x".into())]
        );
    }

    // See: issue 9, finding 4 (a secret printed in two writes, or past the line limit, was
    // shown in the clear).
    #[test]
    fn secrets_are_masked_across_chunks_and_the_line_limit() {
        let secret = "p4ssw0rd-xyz";
        let mut s = LineSplitter::masking(Arc::new(Secrets::new([secret])));
        assert_eq!(s.push(Stream::Stdout, b"token: p4ss"), Vec::<String>::new());
        assert_eq!(
            s.push(Stream::Stdout, b"w0rd-xyz\n"),
            vec!["token: ********"]
        );
        // A line longer than the limit is cut; a secret on the cut is still masked.
        let mut long = vec![b'a'; MAX_LINE - 3];
        long.extend_from_slice(secret.as_bytes());
        long.extend_from_slice(b"\n");
        let lines: String = long
            .chunks(1000)
            .flat_map(|c| s.push(Stream::Stderr, c))
            .collect();
        assert!(
            !lines.contains("p4ss") && !lines.contains("xyz"),
            "{}",
            &lines[lines.len() - 20..]
        );
        assert!(lines.ends_with("********"));
        assert_eq!(s.push(Stream::Stdout, b"p4ssw0rd-x"), Vec::<String>::new());
        assert_eq!(s.finish(), vec![(Stream::Stdout, "p4ssw0rd-x".into())]);
    }
}
