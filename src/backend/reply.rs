//! Caps on one HTTP/1.1 reply from the daemon, checked on the bytes as the transport reads
//! them (issue 9: an endless reply must not take localci's memory). bollard collects a reply
//! it reads whole, each line of a JSON-lines stream (pull progress) and each frame of an
//! exec's output before it hands them on, so each of those is capped here: a reply read whole
//! at [`REPLY_LIMIT`], a JSON line at [`LINE_LIMIT`], an output frame at [`FRAME_LIMIT`].
//! Archives are streamed in chunks and need no cap. The HTTP framing (the head, chunked
//! transfer coding, a switch to a raw stream) is followed only far enough to see the body's
//! bytes; hyper still parses the reply. No Docker semantics beyond which paths reply how.

use std::io;

/// The most bytes read for one reply that bollard reads whole (inspect, list, version ...).
/// The largest real ones (a container list, an image with many labels) are kilobytes.
pub(crate) const REPLY_LIMIT: u64 = 16 * 1024 * 1024;
/// The longest line of a JSON-lines reply (pull progress: a few hundred bytes a line).
pub(crate) const LINE_LIMIT: u64 = 1024 * 1024;
/// The largest frame of a multiplexed output stream (Docker writes at most 32 KiB at once).
pub(crate) const FRAME_LIMIT: u64 = 16 * 1024 * 1024;
/// The longest reply head (status line and headers).
const HEAD_LIMIT: usize = 64 * 1024;

/// How a reply's body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Collected whole: capped as a whole.
    Whole,
    /// JSON objects, one a line (pull progress, events): capped per line.
    JsonLines,
    /// Docker's multiplexed output (8-byte headers with the frame's length): capped per frame.
    Frames,
    /// Read in chunks as it arrives (archives): not capped.
    Chunks,
}

impl Shape {
    /// How the reply to `method path` is read.
    pub(crate) fn of(method: &hyper::Method, path: &str) -> Shape {
        let last = path.rsplit('/').next().unwrap_or_default();
        if (path.contains("/exec/") && last == "start") || matches!(last, "attach" | "logs") {
            Shape::Frames
        } else if path.contains("/containers/") && last == "archive" && method == hyper::Method::GET
            || last == "export"
            || last == "get"
        {
            Shape::Chunks
        } else if path.ends_with("/images/create") || matches!(last, "load" | "events" | "build") {
            Shape::JsonLines
        } else {
            Shape::Whole
        }
    }
}

/// A reply over a cap: the transport's read fails with it.
#[derive(Debug, thiserror::Error)]
#[error("{what} from the daemon exceeded {} MB; localci stopped reading it", limit / (1024 * 1024))]
pub(crate) struct TooLarge {
    what: &'static str,
    limit: u64,
}

fn too_large(what: &'static str, limit: u64) -> io::Error {
    io::Error::other(TooLarge { what, limit })
}

/// `a line of a streamed reply over 1 MB` when a [`TooLarge`] is in `e`'s chain of causes
/// (an io::Error hides it from `source()`: it is looked for inside each one).
pub(crate) fn too_large_in(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        let found = err.downcast_ref::<TooLarge>().or_else(|| {
            err.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<TooLarge>())
        });
        if let Some(big) = found {
            return Some(format!(
                "{} over {} MB",
                big.what,
                big.limit / (1024 * 1024)
            ));
        }
        next = err.source();
    }
    None
}

/// Where in the HTTP framing the next byte is.
#[derive(Debug)]
enum Http {
    Head(Vec<u8>),
    /// The hex digits (and any extension) of a chunk's size line.
    ChunkSize {
        size: u64,
        digits: bool,
        extension: bool,
    },
    ChunkData(u64),
    /// The CR LF after a chunk's data.
    ChunkEnd(u8),
    /// After the last chunk: trailers, then the end.
    Trailers {
        line: u64,
    },
    /// Body bytes up to the end of the connection (or a switch to a raw stream).
    Body,
    /// `Content-Length` bytes of body.
    Length(u64),
    /// After the reply: hyper reads nothing more from a connection made for one request.
    Done,
}

/// Where in the body's own framing the next byte is.
#[derive(Debug)]
enum Piece {
    /// Whole or chunks: counted as a whole.
    Total(u64),
    /// Bytes since the last newline.
    Line(u64),
    /// Inside an 8-byte frame header (bytes of it seen).
    FrameHead([u8; 8], usize),
    FramePayload(u64),
    /// A stream without headers (the daemon sends one for a TTY): a line at a time.
    RawLine(u64),
}

/// Watches one reply's bytes; see the module doc.
#[derive(Debug)]
pub(crate) struct ReplyGuard {
    shape: Shape,
    http: Http,
    piece: Piece,
}

impl ReplyGuard {
    pub(crate) fn new(shape: Shape) -> ReplyGuard {
        let piece = match shape {
            Shape::Whole | Shape::Chunks => Piece::Total(0),
            Shape::JsonLines => Piece::Line(0),
            Shape::Frames => Piece::FrameHead([0; 8], 0),
        };
        ReplyGuard {
            shape,
            http: Http::Head(Vec::new()),
            piece,
        }
    }

    /// Checks the next bytes read; an error once a cap is passed.
    pub(crate) fn read(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (body, used) = self.http_step(rest)?;
            if body > 0 {
                self.body(&rest[..body])?;
            }
            rest = &rest[used..];
        }
        Ok(())
    }

    /// Takes framing bytes off the front of `bytes`; returns (how many of them, from the
    /// front, are body, how many were used in all).
    fn http_step(&mut self, bytes: &[u8]) -> io::Result<(usize, usize)> {
        match &mut self.http {
            Http::Head(head) => {
                let take = bytes.len().min(HEAD_LIMIT + 4 - head.len());
                let start = head.len().saturating_sub(3);
                head.extend_from_slice(&bytes[..take]);
                let Some(end) = find(&head[start..], b"\r\n\r\n").map(|i| start + i + 4) else {
                    if head.len() > HEAD_LIMIT {
                        return Err(too_large("a reply's head", HEAD_LIMIT as u64));
                    }
                    return Ok((0, take));
                };
                let used = take - (head.len() - end);
                self.http = body_of(&head[..end])?;
                Ok((0, used))
            }
            Http::ChunkSize {
                size,
                digits,
                extension,
            } => {
                let byte = bytes[0];
                match byte {
                    b'\n' => {
                        self.http = if *size == 0 {
                            Http::Trailers { line: 0 }
                        } else {
                            Http::ChunkData(*size)
                        };
                    }
                    b'\r' => {}
                    b';' => *extension = true,
                    _ if *extension => {}
                    _ => {
                        let digit = (byte as char).to_digit(16).ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                        })?;
                        *digits = true;
                        *size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(digit)))
                            .ok_or_else(|| {
                                io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                            })?;
                    }
                }
                Ok((0, 1))
            }
            Http::ChunkData(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                if *left == 0 {
                    self.http = Http::ChunkEnd(2);
                }
                Ok((n, n))
            }
            Http::ChunkEnd(left) => {
                *left -= 1;
                if *left == 0 {
                    self.http = Http::ChunkSize {
                        size: 0,
                        digits: false,
                        extension: false,
                    };
                }
                Ok((0, 1))
            }
            Http::Trailers { line } => {
                match bytes[0] {
                    b'\n' if *line == 0 => self.http = Http::Done,
                    b'\n' => *line = 0,
                    b'\r' => {}
                    _ => {
                        *line += 1;
                        if *line > HEAD_LIMIT as u64 {
                            return Err(too_large("a reply's trailer", HEAD_LIMIT as u64));
                        }
                    }
                }
                Ok((0, 1))
            }
            Http::Length(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                if *left == 0 {
                    self.http = Http::Done;
                }
                Ok((n, n))
            }
            Http::Body => Ok((bytes.len(), bytes.len())),
            // Nothing is expected; count it as body so that it cannot grow unchecked.
            Http::Done => Ok((bytes.len(), bytes.len())),
        }
    }

    fn body(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.piece {
            Piece::Total(total) => {
                *total += bytes.len() as u64;
                if self.shape == Shape::Whole && *total > REPLY_LIMIT {
                    return Err(too_large("a reply", REPLY_LIMIT));
                }
                Ok(())
            }
            Piece::Line(line) => {
                *line = after_newline(*line, bytes);
                if *line > LINE_LIMIT {
                    return Err(too_large("a line of a streamed reply", LINE_LIMIT));
                }
                Ok(())
            }
            Piece::FrameHead(..) | Piece::FramePayload(_) | Piece::RawLine(_) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    rest = &rest[self.frame_step(rest)?..];
                }
                Ok(())
            }
        }
    }

    /// Takes the next bytes of a multiplexed stream; how many.
    fn frame_step(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &mut self.piece {
            // bollard reads a first byte above 2 (no stream id) as a stream without headers.
            Piece::FrameHead(_, 0) if bytes[0] > 2 => {
                self.piece = Piece::RawLine(0);
                Ok(0)
            }
            Piece::FrameHead(head, seen) => {
                let n = (8 - *seen).min(bytes.len());
                head[*seen..*seen + n].copy_from_slice(&bytes[..n]);
                *seen += n;
                if *seen == 8 {
                    let length =
                        u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]));
                    if length > FRAME_LIMIT {
                        return Err(too_large("an output frame", FRAME_LIMIT));
                    }
                    self.piece = if length == 0 {
                        Piece::FrameHead([0; 8], 0)
                    } else {
                        Piece::FramePayload(length)
                    };
                }
                Ok(n)
            }
            Piece::FramePayload(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                if *left == 0 {
                    self.piece = Piece::FrameHead([0; 8], 0);
                }
                Ok(n)
            }
            Piece::RawLine(line) => match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.piece = Piece::FrameHead([0; 8], 0);
                    Ok(i + 1)
                }
                None => {
                    *line += bytes.len() as u64;
                    if *line > LINE_LIMIT {
                        return Err(too_large("an output line", LINE_LIMIT));
                    }
                    Ok(bytes.len())
                }
            },
            Piece::Total(_) | Piece::Line(_) => unreachable!("only frames are stepped"),
        }
    }
}

/// The length of the current line after `bytes`, `line` bytes long before them.
fn after_newline(line: u64, bytes: &[u8]) -> u64 {
    match bytes.iter().rposition(|b| *b == b'\n') {
        Some(i) => (bytes.len() - i - 1) as u64,
        None => line + bytes.len() as u64,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How the body after `head` is framed.
fn body_of(head: &[u8]) -> io::Result<Http> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut reply = httparse::Response::new(&mut headers);
    reply
        .parse(head)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // 101 Switching Protocols (exec, attach): the raw stream follows; 1xx others, 204, 304:
    // no body, and hyper reads no further on a connection made for one request.
    match reply.code {
        Some(101) => return Ok(Http::Body),
        Some(100..=199 | 204 | 304) => return Ok(Http::Head(Vec::new())),
        _ => {}
    }
    let header = |name: &str| {
        reply
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
        return Ok(Http::ChunkSize {
            size: 0,
            digits: false,
            extension: false,
        });
    }
    match header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        Some(0) => Ok(Http::Done),
        Some(n) => Ok(Http::Length(n)),
        None => Ok(Http::Body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(body: &[u8], size: usize) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in body.chunks(size) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    /// Feeds `bytes` in reads of `step` bytes; the error's text, if any.
    fn feed(shape: Shape, bytes: &[u8], step: usize) -> Option<String> {
        let mut guard = ReplyGuard::new(shape);
        for read in bytes.chunks(step) {
            if let Err(e) = guard.read(read) {
                return Some(e.to_string());
            }
        }
        None
    }

    #[test]
    fn chunk_framing_does_not_hide_a_long_line() {
        let ok: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{{\"status\":\"line {i}\"}}\n").into_bytes())
            .collect();
        for step in [1, 7, 4096] {
            assert_eq!(feed(Shape::JsonLines, &chunked(&ok, 100), step), None);
        }
        let endless = vec![b'x'; LINE_LIMIT as usize + 1];
        let e = feed(Shape::JsonLines, &chunked(&endless, 1000), 4096).unwrap();
        assert_eq!(
            e,
            "a line of a streamed reply from the daemon exceeded 1 MB; localci stopped reading it"
        );
        // Many lines add up to more than the limit: fine, each is short.
        let long: Vec<u8> = std::iter::repeat_n(b"{\"a\":1}\n".as_slice(), 300_000)
            .flatten()
            .copied()
            .collect();
        assert_eq!(feed(Shape::JsonLines, &chunked(&long, 8192), 65536), None);
    }

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn output_frames_are_capped_by_their_declared_length() {
        let head = b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        let mut ok = head.to_vec();
        for i in 0..200u32 {
            ok.extend(frame(1 + u8::from(i % 2 == 1), &vec![b'a'; 30_000]));
        }
        for step in [1000, 3, 65536] {
            assert_eq!(feed(Shape::Frames, &ok, step), None);
        }
        let mut huge = head.to_vec();
        huge.extend([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let e = feed(Shape::Frames, &huge, 5).unwrap();
        assert!(
            e.starts_with("an output frame from the daemon exceeded 16 MB"),
            "{e}"
        );
        // Without headers, a line at a time.
        let mut raw = head.to_vec();
        raw.extend(vec![b'x'; LINE_LIMIT as usize + 10]);
        let e = feed(Shape::Frames, &raw, 4096).unwrap();
        assert!(
            e.starts_with("an output line from the daemon exceeded 1 MB"),
            "{e}"
        );
    }

    #[test]
    fn whole_replies_are_capped_archives_are_not() {
        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.extend(vec![b'x'; REPLY_LIMIT as usize + 1]);
        let e = feed(Shape::Whole, &big, 65536).unwrap();
        assert!(
            e.starts_with("a reply from the daemon exceeded 16 MB"),
            "{e}"
        );
        assert_eq!(feed(Shape::Chunks, &big, 65536), None);
        let head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "y".repeat(HEAD_LIMIT));
        assert!(feed(Shape::Chunks, head.as_bytes(), 4096).is_some());
    }

    #[test]
    fn shapes_follow_the_endpoints() {
        let (get, put, post) = (hyper::Method::GET, hyper::Method::PUT, hyper::Method::POST);
        assert_eq!(Shape::of(&post, "/v1.41/exec/abc/start"), Shape::Frames);
        assert_eq!(Shape::of(&get, "/v1.41/containers/abc/logs"), Shape::Frames);
        assert_eq!(
            Shape::of(&get, "/v1.41/containers/abc/archive"),
            Shape::Chunks
        );
        assert_eq!(
            Shape::of(&put, "/v1.41/containers/abc/archive"),
            Shape::Whole
        );
        assert_eq!(Shape::of(&post, "/v1.41/images/create"), Shape::JsonLines);
        assert_eq!(Shape::of(&get, "/v1.41/containers/abc/json"), Shape::Whole);
        assert_eq!(Shape::of(&get, "/v1.41/exec/abc/json"), Shape::Whole);
        assert_eq!(Shape::of(&get, "/version"), Shape::Whole);
    }
}
