//! Who made a labelled resource, and whether that process still runs: the basis of leftover
//! removal, which must never touch a live run's containers.
//!
//! A pid alone says little: it means nothing on another machine or in another pid namespace
//! (localci in a container with `--net=host` shares the host's name but not its pids), and a
//! dead run's pid may since belong to another process. So a run labels its resources with its
//! pid, its host name and, on Linux, the kernel's boot id, its pid namespace and its start time
//! (from `/proc/<pid>/stat`). A process is judged gone only when all of that is comparable
//! and says so; whenever something cannot be told, the owner counts as alive.

use std::collections::BTreeMap;

use crate::backend::LABEL_PID;

/// Label naming the host the creating process ran on.
pub const LABEL_HOST: &str = "localci.host";
/// Label holding the kernel's boot id (Linux): pids of another boot or machine mean nothing.
pub const LABEL_BOOT: &str = "localci.boot";
/// Label holding the creating process's pid namespace (Linux), in which its pid is valid.
pub const LABEL_PIDNS: &str = "localci.pidns";
/// Label holding the creating process's start time, in clock ticks after boot (Linux).
pub const LABEL_STARTED: &str = "localci.started";

/// The process that made a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    /// `None` off Linux, or when `/proc` cannot be read.
    pub boot: Option<String>,
    pub pidns: Option<String>,
    pub started: Option<u64>,
}

/// What `/proc` and `kill(pid, 0)` say about a pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No such process.
    Missing,
    /// A process exists; what its `/proc/<pid>/stat` says.
    Exists(Stat),
    /// A process exists, but nothing more can be read about it.
    Unreadable,
}

/// The parts of `/proc/<pid>/stat` that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// Exited, not yet reaped by its parent.
    pub zombie: bool,
    pub threads: u64,
    pub started: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        let mut owner = Owner {
            pid,
            host: hostname(),
            boot: None,
            pidns: None,
            started: None,
        };
        // `/proc` may belong to another pid namespace than ours (mounted before an unshare):
        // only trust it when it shows our own pid as ourselves.
        let own = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|text| parse_stat(&text))
            .filter(|stat| stat.pid == pid);
        if let Some(stat) = own {
            owner.started = Some(stat.started);
            owner.boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty());
            owner.pidns = std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|link| pidns_id(&link.to_string_lossy()));
        }
        owner
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (LABEL_PID.to_string(), self.pid.to_string()),
            (LABEL_HOST.to_string(), self.host.clone()),
        ]);
        let optional = [
            (LABEL_BOOT, self.boot.clone()),
            (LABEL_PIDNS, self.pidns.clone()),
            (LABEL_STARTED, self.started.map(|s| s.to_string())),
        ];
        for (label, value) in optional {
            if let Some(value) = value {
                labels.insert(label.to_string(), value);
            }
        }
        labels
    }

    /// The owner named by a resource's labels; `None` without a readable pid and host.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Owner> {
        Some(Owner {
            pid: labels.get(LABEL_PID)?.parse().ok()?,
            host: labels.get(LABEL_HOST)?.clone(),
            boot: labels.get(LABEL_BOOT).cloned(),
            pidns: labels.get(LABEL_PIDNS).cloned(),
            // A label that is not a number matches no process: the owner cannot be told apart.
            started: match labels.get(LABEL_STARTED) {
                Some(text) => Some(text.parse().ok()?),
                None => None,
            },
        })
    }

    /// Whether this owner has certainly ended, as seen by `me`; `probe` looks up a pid.
    pub fn is_gone(&self, me: &Owner, probe: impl Fn(u32) -> Probe) -> bool {
        if self.host != me.host || self.boot != me.boot || self.pidns != me.pidns {
            return false;
        }
        // On Linux, pids are only comparable within one pid namespace of one boot; without
        // those labels (an older localci, or no /proc) nothing can be told.
        if cfg!(target_os = "linux") && (me.boot.is_none() || me.pidns.is_none()) {
            return false;
        }
        if self.pid == me.pid {
            // Our pid: the owner is an earlier process that had it, or us.
            return self.started.is_some() && self.started != me.started;
        }
        match probe(self.pid) {
            Probe::Missing => true,
            Probe::Unreadable => false,
            Probe::Exists(stat) => {
                let reused = self.started.is_some_and(|s| s != stat.started);
                // A zombie leader with live threads is still running them.
                let exited = stat.zombie && stat.threads <= 1;
                reused || exited
            }
        }
    }
}

/// Looks a pid up in this process's pid namespace.
pub fn probe(pid: u32) -> Probe {
    if !process_exists(pid) {
        return Probe::Missing;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| parse_stat(&text))
        .filter(|stat| stat.pid == pid)
        .map_or(Probe::Unreadable, Probe::Exists)
}

/// Whether a process with this pid exists (zombies included) in this pid namespace.
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Reads `pid (comm) state ppid ...`; `comm` may hold spaces and parentheses, so the fields
/// are counted from its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (head, tail) = text.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    // Fields from the 3rd (state) on: num_threads is the 20th, starttime the 22nd.
    let fields: Vec<&str> = tail.split_whitespace().collect();
    Some(Stat {
        pid,
        zombie: *fields.first()? == "Z",
        threads: fields.get(17)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

/// `pid:[4026531836]` -> `4026531836`.
fn pidns_id(link: &str) -> String {
    link.strip_prefix("pid:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(link)
        .to_string()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(pid: u32, comm: &str, state: &str, threads: u64, started: u64) -> String {
        let mut fields = vec!["0".to_string(); 49];
        fields[0] = state.to_string();
        fields[17] = threads.to_string();
        fields[19] = started.to_string();
        format!("{pid} ({comm}) {}", fields.join(" "))
    }

    #[test]
    fn stat_lines_are_read_past_odd_command_names() {
        let line = stat_line(42, "we ird) (x", "S", 7, 123_456);
        let stat = parse_stat(&line).unwrap();
        assert_eq!(
            stat,
            Stat {
                pid: 42,
                zombie: false,
                threads: 7,
                started: 123_456
            }
        );
        assert!(parse_stat(&stat_line(1, "z", "Z", 1, 5)).unwrap().zombie);
        assert_eq!(parse_stat("42 (short) S 1 2"), None);
        assert_eq!(parse_stat(""), None);
    }

    fn me() -> Owner {
        Owner {
            pid: 100,
            host: "box".into(),
            boot: Some("b1".into()),
            pidns: Some("4026531836".into()),
            started: Some(5000),
        }
    }

    fn other(pid: u32, started: u64) -> Owner {
        Owner {
            pid,
            started: Some(started),
            ..me()
        }
    }

    fn running(pid: u32, started: u64) -> Probe {
        Probe::Exists(Stat {
            pid,
            zombie: false,
            threads: 4,
            started,
        })
    }

    #[test]
    fn only_a_comparable_owner_that_has_ended_is_gone() {
        let missing = |_| Probe::Missing;
        assert!(other(7, 10).is_gone(&me(), missing));
        assert!(!other(7, 10).is_gone(&me(), |pid| running(pid, 10)));
        assert!(!other(7, 10).is_gone(&me(), |_| Probe::Unreadable));
        // Pid reused by a process that started later.
        assert!(other(7, 10).is_gone(&me(), |pid| running(pid, 99)));
        // Exited but not reaped; unless other threads still run.
        let zombie = |threads| {
            move |pid| {
                Probe::Exists(Stat {
                    pid,
                    zombie: true,
                    threads,
                    started: 10,
                })
            }
        };
        assert!(other(7, 10).is_gone(&me(), zombie(1)));
        assert!(!other(7, 10).is_gone(&me(), zombie(3)));
    }

    // See: review finding 2 (a live run's containers removed by another run).
    #[test]
    fn owners_elsewhere_are_never_gone() {
        let missing = |_| Probe::Missing;
        let elsewhere = [
            Owner {
                host: "other".into(),
                ..other(7, 10)
            },
            // Another pid namespace on this host: its pid 7 is not our pid 7.
            Owner {
                pidns: Some("4026532999".into()),
                ..other(7, 10)
            },
            Owner {
                boot: Some("b2".into()),
                ..other(7, 10)
            },
            // Made by a localci that did not record where its pid is valid.
            Owner {
                boot: None,
                pidns: None,
                started: None,
                ..other(7, 10)
            },
        ];
        for owner in elsewhere {
            assert!(!owner.is_gone(&me(), missing), "{owner:?}");
        }
    }

    #[test]
    fn our_own_pid_is_us_unless_it_started_at_another_time() {
        let missing = |_| Probe::Missing;
        assert!(!me().is_gone(&me(), missing));
        assert!(other(100, 4000).is_gone(&me(), missing));
    }

    #[test]
    fn labels_round_trip() {
        let owner = me();
        assert_eq!(Owner::from_labels(&owner.labels()), Some(owner));
        let mut labels = me().labels();
        labels.insert(LABEL_STARTED.into(), "soon".into());
        assert_eq!(Owner::from_labels(&labels), None);
        labels.remove(LABEL_PID);
        assert_eq!(Owner::from_labels(&labels), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn real_processes_are_probed() {
        let me = Owner::me();
        assert!(me.boot.is_some() && me.pidns.is_some() && me.started.is_some());
        let Probe::Exists(own) = probe(me.pid) else {
            panic!("this process is found")
        };
        assert_eq!((own.started, own.zombie), (me.started.unwrap(), false));
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let Probe::Exists(stat) = probe(sleeper.id()) else {
            panic!("a running child is found")
        };
        let owner = other(sleeper.id(), stat.started);
        let owner = Owner {
            host: me.host.clone(),
            boot: me.boot.clone(),
            pidns: me.pidns.clone(),
            ..owner
        };
        assert!(!owner.is_gone(&me, probe));
        let reused = Owner {
            started: Some(stat.started + 1),
            ..owner.clone()
        };
        assert!(
            reused.is_gone(&me, probe),
            "another start time: the pid was reused"
        );
        sleeper.kill().unwrap();
        // Killed, not yet reaped: a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !matches!(probe(sleeper.id()), Probe::Exists(s) if s.zombie) {
            assert!(
                std::time::Instant::now() < deadline,
                "never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(owner.is_gone(&me, probe));
        sleeper.wait().unwrap();
        assert_eq!(probe(owner.pid), Probe::Missing);
        assert!(owner.is_gone(&me, probe));
    }
}
