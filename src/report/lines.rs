//! Turns output chunks (split anywhere by the transport) into whole lines, one buffer per
//! stream, so the reporter never prints half a line.

use crate::backend::Stream;

#[derive(Default)]
pub struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Lines longer than this are cut, so one endless line cannot use all memory.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// Feeds a chunk; returns the lines it completed (without their `\n`).
    pub fn push(&mut self, stream: Stream, chunk: &[u8]) -> Vec<String> {
        let buf = self.buffer(stream);
        buf.extend_from_slice(chunk);
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
}
