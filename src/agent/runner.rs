//! The step runner: `circleci-agent __localci-runner`, the primary container's main process
//! after localci's setup when the agent is mounted (engine/stage.rs). It starts the processes
//! localci asks for on its stdin and sends their output and exit codes back on its stdout,
//! the container's attached output, so a step costs no exec round trip of Docker's (each a
//! fixed 40-70 ms: docs/execute.md, "Speed").
//!
//! Binary and length-prefixed both ways, so any bytes pass:
//! - a request: `LCQ1`, id (u32), argc (u32) and each argument, envc (u32) and each
//!   `KEY=VALUE`, then the working folder (empty for the runner's own);
//! - a frame: `LCF1`, kind (u8: 1 stdout, 2 stderr, 3 exit), id (u32), length (u32), the
//!   bytes (for an exit: the code, i32), 4096 bytes at most in all. A string is its length
//!   (u32) and its bytes; all integers big-endian.
//!
//! A process runs as an exec would: the runner's environment (the container's) plus the
//! request's, stdin `/dev/null`, in a session and process group of its own (its pid is the
//! group's id, as the step wrapper's pid file expects), exit code 128+N when signal N ended
//! it. Its output ends once its pipes close, or 2 s after it exited when a process it left
//! behind still holds them: the runner then closes them (as Docker ends an exec's streams).
//! Requests run at once, side by side (background steps), one thread each while they run.
//! The runner ends when its stdin does: localci is done with the container, or gone.
//!
//! Std only: the agent (agent/main.rs) and the library (its tests, and the host side's
//! framing) both compile this file.

#[cfg(test)]
use std::io::Write;
use std::io::{self, Read};

/// The subcommand of the agent that serves requests.
pub(crate) const SUBCOMMAND: &str = "__localci-runner";

const REQUEST: &[u8; 4] = b"LCQ1";
const FRAME: &[u8; 4] = b"LCF1";
/// The longest string a request may hold (a step's inline script is far below).
const MAX_STRING: u32 = 64 << 20;
/// The most strings in one list.
const MAX_LIST: u32 = 1 << 16;

/// The most bytes in one frame's payload: a whole frame fits in `PIPE_BUF` (4096 bytes on
/// Linux), so the kernel writes it in one piece even when another process writes to the
/// container's output too (`echo x > /proc/1/fd/1`); such bytes then lie between frames,
/// where the host skips them ([`Frame::resync`]).
pub(crate) const MAX_PAYLOAD: usize = 4096 - HEADER;
/// Magic, kind, id, length.
const HEADER: usize = 13;

/// The id of the frame that says the runner runs (requests count from 1).
pub(crate) const HELLO: u32 = 0;

pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const EXIT: u8 = 3;

/// One process to start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) id: u32,
    pub(crate) argv: Vec<Vec<u8>>,
    /// `KEY=VALUE`, on top of the runner's environment.
    pub(crate) env: Vec<Vec<u8>>,
    /// Empty: the runner's own working folder.
    pub(crate) dir: Vec<u8>,
}

impl Request {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(REQUEST);
        out.extend_from_slice(&self.id.to_be_bytes());
        list(&mut out, &self.argv);
        list(&mut out, &self.env);
        string(&mut out, &self.dir);
        out
    }

    /// The next request on `input`; `None` at its end (between requests).
    pub(crate) fn read(input: &mut impl Read) -> io::Result<Option<Request>> {
        let mut magic = [0u8; 4];
        match input.read(&mut magic[..1])? {
            0 => return Ok(None),
            _ => input.read_exact(&mut magic[1..])?,
        }
        if &magic != REQUEST {
            return Err(invalid("a request does not begin with LCQ1"));
        }
        let id = read_u32(input)?;
        let argv = read_list(input)?;
        let env = read_list(input)?;
        let dir = read_string(input)?;
        if argv.is_empty() {
            return Err(invalid("a request without a program"));
        }
        Ok(Some(Request { id, argv, env, dir }))
    }
}

/// One frame of the runner's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) id: u32,
    pub(crate) data: Vec<u8>,
}

impl Frame {
    pub(crate) fn encode(kind: u8, id: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + data.len());
        out.extend_from_slice(FRAME);
        out.push(kind);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    /// The first whole frame in `buf`, and how many bytes it took; `Ok(None)` when `buf`
    /// holds only part of one.
    pub(crate) fn parse(buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
        if buf.len() < HEADER {
            if !FRAME.starts_with(&buf[..buf.len().min(4)]) {
                return Err(invalid("the runner's output is not framed"));
            }
            return Ok(None);
        }
        if &buf[..4] != FRAME {
            return Err(invalid("the runner's output is not framed"));
        }
        let kind = buf[4];
        let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
        let len = u32::from_be_bytes([buf[9], buf[10], buf[11], buf[12]]) as usize;
        if !(STDOUT..=EXIT).contains(&kind) || len > MAX_PAYLOAD {
            return Err(invalid("a frame of the runner is damaged"));
        }
        if buf.len() < HEADER + len {
            return Ok(None);
        }
        let frame = Frame {
            kind,
            id,
            data: buf[HEADER..HEADER + len].to_vec(),
        };
        Ok(Some((frame, HEADER + len)))
    }

    /// Where the next frame may begin in `buf` after bytes that are not one (another
    /// process's writes to the container's output): the next magic after the first byte,
    /// else the last bytes that may begin one.
    pub(crate) fn resync(buf: &[u8]) -> usize {
        if buf.len() <= 1 {
            return buf.len();
        }
        match buf[1..].windows(FRAME.len()).position(|w| w == FRAME) {
            Some(at) => at + 1,
            None => {
                let keep = (1..FRAME.len())
                    .rev()
                    .find(|&n| n < buf.len() && buf.ends_with(&FRAME[..n]))
                    .unwrap_or(0);
                buf.len() - keep
            }
        }
    }

    /// The exit code of an [`EXIT`] frame.
    pub(crate) fn exit_code(&self) -> i64 {
        match self.data[..] {
            [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
            _ => -1,
        }
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn list(out: &mut Vec<u8>, items: &[Vec<u8>]) {
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for item in items {
        string(out, item);
    }
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_string(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = read_u32(input)?;
    if len > MAX_STRING {
        return Err(invalid("a string over 64 MiB in a request"));
    }
    let mut s = vec![0u8; len as usize];
    input.read_exact(&mut s)?;
    Ok(s)
}

fn read_list(input: &mut impl Read) -> io::Result<Vec<Vec<u8>>> {
    let n = read_u32(input)?;
    if n > MAX_LIST {
        return Err(invalid("a list of over 65536 strings in a request"));
    }
    (0..n).map(|_| read_string(input)).collect()
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(unix)]
#[cfg_attr(
    not(test),
    allow(unused_imports, reason = "the agent serves; the library tests it")
)]
pub(crate) use serve_unix::serve;

#[cfg(unix)]
mod serve_unix {
    use std::ffi::{OsStr, c_int, c_short, c_ulong};
    use std::io::{self, Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::{EXIT, Frame, Request, STDERR, STDOUT};

    /// Variables a shell exports to its children of its own accord.
    const SHELL_ADDED: [&str; 3] = ["SHLVL", "OLDPWD", "_"];

    /// How long a process's output may stay open after it exited (a process it left behind
    /// holds its pipes).
    const LINGER: Duration = Duration::from_secs(2);

    /// Serves the requests on `input` until it ends, writing frames to `output`; it first
    /// says that it runs with the exit frame of id 0 ([`super::HELLO`]).
    pub(crate) fn serve<W: Write + Send + 'static>(
        mut input: impl Read,
        output: W,
    ) -> io::Result<()> {
        let output = Arc::new(Mutex::new(output));
        send(&output, EXIT, super::HELLO, &0i32.to_be_bytes());
        while let Some(request) = Request::read(&mut input)? {
            let output = output.clone();
            std::thread::spawn(move || run(request, &output));
        }
        Ok(())
    }

    fn send<W: Write>(output: &Mutex<W>, kind: u8, id: u32, data: &[u8]) {
        let frame = Frame::encode(kind, id, data);
        if let Ok(mut out) = output.lock() {
            // localci gone: nothing to tell anyone.
            let _ = out.write_all(&frame).and_then(|()| out.flush());
        }
    }

    fn run<W: Write + Send + 'static>(request: Request, output: &Arc<Mutex<W>>) {
        let id = request.id;
        let code = match spawn_and_wait(&request, output) {
            Ok(code) => code,
            Err(e) => {
                let message = format!("localci runner: cannot start the process: {e}\n");
                send(output, STDERR, id, message.as_bytes());
                if e.kind() == io::ErrorKind::NotFound {
                    127
                } else {
                    126
                }
            }
        };
        send(output, EXIT, id, &code.to_be_bytes());
    }

    fn spawn_and_wait<W: Write + Send + 'static>(
        request: &Request,
        output: &Arc<Mutex<W>>,
    ) -> io::Result<i32> {
        let mut command = Command::new(OsStr::from_bytes(&request.argv[0]));
        command.args(request.argv[1..].iter().map(|a| OsStr::from_bytes(a)));
        // What the primary's shell added to the environment it passed on: an exec does not
        // get it from the engine.
        for added in SHELL_ADDED {
            command.env_remove(added);
        }
        for pair in &request.env {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (&pair[..], &b""[..]),
            };
            command.env(OsStr::from_bytes(key), OsStr::from_bytes(value));
        }
        if !request.dir.is_empty() {
            command.current_dir(OsStr::from_bytes(&request.dir));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A session (and so a process group) of its own, as an exec's process has.
        // SAFETY: setsid is async-signal-safe and touches no memory of this process.
        unsafe {
            command.pre_exec(|| {
                if setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let mut pipes: Vec<(u8, Box<dyn ReadFd>)> = Vec::new();
        if let Some(out) = child.stdout.take() {
            pipes.push((STDOUT, Box::new(out)));
        }
        if let Some(err) = child.stderr.take() {
            pipes.push((STDERR, Box::new(err)));
        }
        let mut buf = vec![0u8; super::MAX_PAYLOAD];
        let mut deadline: Option<Instant> = None;
        let status = loop {
            if pipes.is_empty() {
                // Its output closed: the process ends (or has ended) on its own.
                break child.wait()?;
            }
            if deadline.is_none() && child.try_wait()?.is_some() {
                deadline = Some(Instant::now() + LINGER);
            }
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // A process it left behind holds its output: closed now (that
                        // process's next write fails), as Docker ends an exec's streams.
                        break child.wait()?;
                    }
                    left.min(POLL_EVERY)
                }
                None => POLL_EVERY,
            };
            for kind in readable(&pipes, wait)? {
                let at = pipes.iter().position(|(k, _)| *k == kind).expect("polled");
                match pipes[at].1.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        pipes.remove(at);
                    }
                    Ok(n) => send(output, kind, request.id, &buf[..n]),
                }
            }
        };
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 255,
        })
    }

    /// A pipe to read from and poll.
    trait ReadFd: Read + AsRawFd + Send {}
    impl<T: Read + AsRawFd + Send> ReadFd for T {}

    /// How often a process is checked for its end while its output stays open.
    const POLL_EVERY: Duration = Duration::from_millis(50);

    #[repr(C)]
    struct PollFd {
        fd: c_int,
        events: c_short,
        revents: c_short,
    }

    const POLLIN: c_short = 0x1;
    const POLLERR: c_short = 0x8;
    const POLLHUP: c_short = 0x10;

    unsafe extern "C" {
        fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
        fn setsid() -> c_int;
    }

    /// The kinds of the pipes that can be read without waiting (data, or their end), after
    /// waiting at most `wait` for one.
    fn readable(pipes: &[(u8, Box<dyn ReadFd>)], wait: Duration) -> io::Result<Vec<u8>> {
        let mut fds: Vec<PollFd> = pipes
            .iter()
            .map(|(_, pipe)| PollFd {
                fd: pipe.as_raw_fd(),
                events: POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = c_int::try_from(wait.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the call's length.
        let n = unsafe { poll(fds.as_mut_ptr(), fds.len() as c_ulong, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        Ok(fds
            .iter()
            .zip(pipes)
            .filter(|(fd, _)| fd.revents & (POLLIN | POLLERR | POLLHUP) != 0)
            .map(|(_, (kind, _))| *kind)
            .collect())
    }
}

/// Writes `frames` of the runner to `out` (for tests of the host side).
#[cfg(test)]
pub(crate) fn write_frames(out: &mut impl Write, frames: &[(u8, u32, &[u8])]) -> io::Result<()> {
    for (kind, id, data) in frames {
        out.write_all(&Frame::encode(*kind, *id, data))?;
    }
    Ok(())
}
