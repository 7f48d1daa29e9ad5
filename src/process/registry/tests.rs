//! The registry client against a fake registry on 127.0.0.1 (never the real network).

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// What the fake registry does with one connection.
enum Reply {
    /// 200 with this JSON body.
    Json(String),
    Status(u16),
    /// Reads the request, then says nothing for this long.
    Silent(Duration),
    /// 200 with a body that never ends.
    Endless,
}

/// One request the fake registry read.
struct Seen {
    request_line: String,
    headers: String,
    body: serde_json::Value,
}

struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A registry on 127.0.0.1 that answers one connection per reply, in order.
fn serve(replies: Vec<Reply>) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/graphql-unstable", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for reply in replies {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            answer_one(stream, reply, &log);
        }
    });
    Fake { url, seen }
}

fn answer_one(mut stream: TcpStream, reply: Reply, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        headers.push_str(&lower);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    log.lock().unwrap().push(Seen {
        request_line,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let _ = match reply {
        Reply::Json(text) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        ),
        Reply::Status(code) => write!(
            stream,
            "HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Silent(d) => {
            std::thread::sleep(d);
            Ok(())
        }
        Reply::Endless => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{\"data\": \""
            );
            let chunk = vec![b'a'; 64 * 1024];
            while stream.write_all(&chunk).is_ok() {}
            Ok(())
        }
    };
}

fn orb_reply(version: &str, source: &str) -> Reply {
    Reply::Json(
        serde_json::json!({
            "data": { "orbVersion": {
                "id": "4b3b5d30-0000-4000-8000-000000000000",
                "version": version,
                "orb": { "id": "9f1c0e2a-0000-4000-8000-000000000000" },
                "source": source,
            }}
        })
        .to_string(),
    )
}

const SOURCE: &str = "version: 2.1\ncommands:\n  hello:\n    steps:\n      - run: echo hello\n";

fn registry(fake: &Fake, cache: &Path) -> Registry {
    Registry::new(&fake.url, cache.to_path_buf()).unwrap()
}

#[test]
fn an_exact_version_is_asked_with_the_orb_source_query_and_cached() {
    let cache = tempfile::tempdir().unwrap();
    let fake = serve(vec![orb_reply("1.2.3", SOURCE)]);
    let fetched = registry(&fake, cache.path())
        .fetch("acme/hi@1.2.3")
        .unwrap();
    assert_eq!(fetched.resolved, "acme/hi@1.2.3");
    assert_eq!(fetched.path, cache.path().join("acme/hi@1.2.3.yml"));
    assert_eq!(std::fs::read_to_string(&fetched.path).unwrap(), SOURCE);
    // Nothing but the orb is left in the cache (no temporary file).
    let names: Vec<_> = std::fs::read_dir(cache.path().join("acme"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["hi@1.2.3.yml"]);

    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line, "POST /graphql-unstable HTTP/1.1\r\n");
    assert!(
        seen[0].headers.contains("content-type: application/json"),
        "{}",
        seen[0].headers
    );
    let query = seen[0].body["query"].as_str().unwrap();
    let words: Vec<&str> = query.split_whitespace().collect();
    assert_eq!(
        words.join(" "),
        "query($orbVersionRef: String!) { orbVersion(orbVersionRef: $orbVersionRef) { id version orb { id } source } }"
    );
    assert_eq!(
        seen[0].body["variables"],
        serde_json::json!({ "orbVersionRef": "acme/hi@1.2.3" })
    );
}

#[test]
fn a_partial_version_is_cached_as_the_version_the_registry_resolved() {
    let cache = tempfile::tempdir().unwrap();
    let fake = serve(vec![orb_reply("5.4.1", SOURCE), orb_reply("6.0.0", SOURCE)]);
    let registry = registry(&fake, cache.path());
    let fetched = registry.fetch("acme/node@5").unwrap();
    assert_eq!(fetched.resolved, "acme/node@5.4.1");
    assert!(cache.path().join("acme/node@5.4.1.yml").is_file());
    let volatile = registry.fetch("acme/node@volatile").unwrap();
    assert_eq!(volatile.resolved, "acme/node@6.0.0");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen[0].body["variables"]["orbVersionRef"], "acme/node@5");
    assert_eq!(
        seen[1].body["variables"]["orbVersionRef"],
        "acme/node@volatile"
    );
}

#[test]
fn an_answer_that_does_not_fit_the_reference_is_refused_and_not_cached() {
    let cache = tempfile::tempdir().unwrap();
    let fake = serve(vec![
        orb_reply("6.0.0", SOURCE),
        orb_reply("../../escape", SOURCE),
        orb_reply("1.0.0", "- not\n- an orb\n"),
    ]);
    let registry = registry(&fake, cache.path());
    let wrong = registry.fetch("acme/node@5").unwrap_err();
    assert!(
        matches!(&wrong, FetchError::WrongVersion { got, .. } if got == "6.0.0"),
        "{wrong:?}"
    );
    let escape = registry.fetch("acme/node@volatile").unwrap_err();
    assert!(
        matches!(escape, FetchError::WrongVersion { .. }),
        "{escape:?}"
    );
    let list = registry.fetch("acme/node@1.0.0").unwrap_err();
    assert!(matches!(list, FetchError::NotAnOrb(_)), "{list:?}");
    assert!(!wrong.is_silent());
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

#[test]
fn not_found_and_registry_errors_name_the_reason() {
    let cache = tempfile::tempdir().unwrap();
    let fake = serve(vec![
        Reply::Json(r#"{"data":{"orbVersion":null}}"#.to_string()),
        Reply::Json(r#"{"data":null,"errors":[{"message":"Invalid orb reference"}]}"#.to_string()),
        Reply::Status(502),
        Reply::Json("<html>".to_string()),
    ]);
    let registry = registry(&fake, cache.path());
    let missing = registry.fetch("acme/nothing@1.0.0").unwrap_err();
    assert!(matches!(missing, FetchError::NotFound), "{missing:?}");
    assert_eq!(missing.to_string(), "the registry has no such orb version");
    let error = registry.fetch("acme/nothing@2.0.0").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the registry says: Invalid orb reference"
    );
    let status = registry.fetch("acme/nothing@3.0.0").unwrap_err();
    assert!(matches!(status, FetchError::Status(502)), "{status:?}");
    let html = registry.fetch("acme/nothing@4.0.0").unwrap_err();
    assert!(matches!(html, FetchError::Reply(_)), "{html:?}");
    assert!(!cache.path().join("acme").exists());
}

#[test]
fn a_slow_registry_times_out_and_is_not_asked_again_in_the_run() {
    let cache = tempfile::tempdir().unwrap();
    let fake = serve(vec![Reply::Silent(Duration::from_secs(10))]);
    let registry = registry(&fake, cache.path())
        .with_timeouts(Duration::from_secs(2), Duration::from_millis(400));
    let started = Instant::now();
    let slow = registry.fetch("acme/hi@1.0.0").unwrap_err();
    assert!(matches!(slow, FetchError::Timeout(_)), "{slow:?}");
    assert!(!slow.is_silent(), "a timeout is worth a warning");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let again = registry.fetch("acme/other@1.0.0").unwrap_err();
    assert!(matches!(again, FetchError::Skipped), "{again:?}");
    assert_eq!(fake.seen.lock().unwrap().len(), 1);
}

#[test]
fn an_oversized_reply_is_cut_off_at_the_limit() {
    let cache = tempfile::tempdir().unwrap();
    let fake = serve(vec![Reply::Endless]);
    let started = Instant::now();
    let huge = registry(&fake, cache.path())
        .fetch("acme/hi@1.0.0")
        .unwrap_err();
    assert!(
        matches!(huge, FetchError::TooLarge(REPLY_LIMIT)),
        "{huge:?}"
    );
    assert!(huge.to_string().contains("larger than 4 MB"), "{huge}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_registry_is_silent_fast_and_asked_once() {
    let cache = tempfile::tempdir().unwrap();
    // A port nothing listens on: the connection is refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = Registry::new(
        &format!("http://127.0.0.1:{port}/graphql"),
        cache.path().into(),
    )
    .unwrap();
    let started = Instant::now();
    let refused = registry.fetch("acme/hi@1.0.0").unwrap_err();
    assert!(refused.is_silent(), "{refused:?}");
    assert!(matches!(refused, FetchError::Unreachable(_)), "{refused:?}");
    assert!(matches!(
        registry.fetch("acme/hi@2.0.0").unwrap_err(),
        FetchError::Skipped
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_cache_is_written_without_following_a_planted_symlink() {
    let cache = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), cache.path().join("acme")).unwrap();
    let fake = serve(vec![orb_reply("1.0.0", SOURCE)]);
    let refused = registry(&fake, cache.path())
        .fetch("acme/hi@1.0.0")
        .unwrap_err();
    assert!(matches!(refused, FetchError::Cache { .. }), "{refused:?}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn references_that_cannot_name_a_cache_file_are_not_asked() {
    let cache = tempfile::tempdir().unwrap();
    let registry = Registry::new("http://127.0.0.1:9/graphql", cache.path().into()).unwrap();
    for bad in ["../hi@1.0.0", "acme/..@1.0.0", "acme@1.0.0", "acme/hi"] {
        let e = registry.fetch(bad).unwrap_err();
        assert!(matches!(e, FetchError::BadReference(_)), "{bad}: {e:?}");
    }
}

#[test]
fn the_environment_picks_the_registry_or_turns_it_off() {
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let cache = PathBuf::from("/nowhere");
    let default = Registry::from_env(&env(&[]), cache.clone())
        .unwrap()
        .unwrap();
    assert_eq!(default.url(), DEFAULT_URL);
    assert_eq!(default.endpoint.port, 443);
    assert!(default.endpoint.https);
    let local = Registry::from_env(
        &env(&[(URL_VAR, "http://127.0.0.1:8080/graphql-unstable")]),
        cache.clone(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(local.endpoint.authority, "127.0.0.1:8080");
    assert_eq!(local.endpoint.path, "/graphql-unstable");
    assert!(!local.endpoint.https);
    for off in ["1", "true", "YES"] {
        assert!(
            Registry::from_env(&env(&[(OFFLINE_VAR, off)]), cache.clone())
                .unwrap()
                .is_none()
        );
    }
    assert!(
        Registry::from_env(&env(&[(OFFLINE_VAR, "0")]), cache.clone())
            .unwrap()
            .is_some()
    );
    let bad = Registry::from_env(&env(&[(URL_VAR, "ftp://example.com/x")]), cache).unwrap_err();
    assert!(bad.to_string().contains("https:// or http://"), "{bad}");
}
