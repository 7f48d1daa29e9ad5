//! Makes every image of a run available before anything starts: local images are used as
//! they are; missing ones are pulled (with `auth` credentials, `$VAR` expanded from the project
//! variables as CircleCI does there alone), their layers' progress sent as events. Every image
//! that cannot be had is reported at once, each with the hint that fits it: a name no registry
//! can serve is not pulled at all, and an image a registry does not have is to be built or
//! mapped, not pulled. Creates no container.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::EngineError;
use crate::backend::{Backend, BackendError, Credentials, ImageInfo};
use crate::plan::ImagePlan;
use crate::report::{Event, Events};
use crate::units::format_go;

/// Inspects every image of `images` (the union of a run's jobs; repeats are checked once) and
/// pulls the missing ones; `None` when cancelled. `project` holds the project variables that
/// `auth` may name.
pub async fn ensure(
    backend: &dyn Backend,
    images: &[ImagePlan],
    project: &[(String, String)],
    events: &Events,
    cancel: &CancellationToken,
) -> Result<Option<HashMap<String, ImageInfo>>, EngineError> {
    super::hold::at(super::hold::Moment::Images, events).await;
    if cancel.is_cancelled() {
        return Ok(None);
    }
    let vars: BTreeMap<String, String> = project.iter().cloned().collect();
    let mut found = HashMap::new();
    let mut missing: Vec<&ImagePlan> = Vec::new();
    for image in images {
        if found.contains_key(&image.image) || missing.iter().any(|m| m.image == image.image) {
            continue;
        }
        // A name that is no reference at all would make the daemon answer 400, not 404. An
        // image id is looked up: the engine may well have it.
        if local_only(&image.image) == Some(LocalOnly::InvalidReference) {
            missing.push(image);
            continue;
        }
        match backend.inspect_image(&image.image).await? {
            Some(info) => {
                events.info(format!(
                    "Using local image {}{}",
                    image.image,
                    mapped(image)
                ));
                found.insert(image.image.clone(), info);
            }
            None => missing.push(image),
        }
    }
    let mut problems = unpullable(&missing);
    if problems.is_empty() {
        for image in &missing {
            let pulled = tokio::select! {
                () = cancel.cancelled() => return Ok(None),
                pulled = pull_one(backend, image, &vars, events) => pulled,
            };
            match pulled {
                Ok(info) => {
                    found.insert(image.image.clone(), info);
                }
                Err(problem) => problems.push(problem),
            }
        }
    }
    if problems.is_empty() {
        Ok(Some(found))
    } else {
        Err(ImagesError { problems }.into())
    }
}

fn mapped(image: &ImagePlan) -> String {
    image
        .mapped_from
        .as_ref()
        .map_or(String::new(), |from| format!(" (in place of {from})"))
}

/// When a missing image can certainly not be pulled: each such image, and the other missing
/// ones as not tried (the job cannot start, so nothing is downloaded for it).
fn unpullable(missing: &[&ImagePlan]) -> Vec<ImageProblem> {
    if !missing.iter().any(|m| local_only(&m.image).is_some()) {
        return Vec::new();
    }
    missing
        .iter()
        .map(|image| {
            let why = match local_only(&image.image) {
                Some(what) => Why::LocalOnly(what),
                None => Why::NotTried,
            };
            ImageProblem::new(image, why)
        })
        .collect()
}

/// Pulls one image and inspects it; the problem when that fails.
async fn pull_one(
    backend: &dyn Backend,
    image: &ImagePlan,
    vars: &BTreeMap<String, String>,
    events: &Events,
) -> Result<ImageInfo, ImageProblem> {
    events.info(format!("Pulling image {}{}", image.image, mapped(image)));
    let started = Instant::now();
    let pulled = pull(backend, image, credentials(image, vars), events).await;
    events.send(Event::PullEnded {
        job: events.job(),
        image: image.image.clone(),
    });
    let failed = |e: &BackendError| pull_problem(image, vars, e);
    pulled.map_err(|e| failed(&e))?;
    events.info(format!(
        "Pulled {} in {}",
        image.image,
        format_go(started.elapsed())
    ));
    match backend.inspect_image(&image.image).await {
        Ok(Some(info)) => Ok(info),
        Ok(None) => Err(failed(&BackendError::NotFound(
            "not found after the pull".into(),
        ))),
        Err(e) => Err(failed(&e)),
    }
}

fn pull_problem(
    image: &ImagePlan,
    vars: &BTreeMap<String, String>,
    e: &BackendError,
) -> ImageProblem {
    let mut unset = Vec::new();
    if let Some(auth) = &image.auth {
        expand(&auth.username, vars, &mut unset);
        expand(&auth.password, vars, &mut unset);
    }
    let mut seen = std::collections::HashSet::new();
    unset.retain(|name| seen.insert(name.clone()));
    let reason = e.to_string();
    let mut problem = ImageProblem::new(
        image,
        Why::PullFailed {
            failure: PullFailure::of(&reason),
            reason,
        },
    );
    problem.unset = unset;
    problem
}

/// What is wrong with a name that no registry can serve, if it is one: an image id
/// (`sha256:...`), or a name that is not a valid image reference (Docker's reference grammar:
/// lowercase repository components). Every other name may be on a registry (a name without a
/// registry host is Docker Hub's), so it is pulled and the registry's answer decides the hint.
pub(crate) fn local_only(image: &str) -> Option<LocalOnly> {
    let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if image.strip_prefix("sha256:").is_some_and(is_hex) || is_hex(image) {
        return Some(LocalOnly::ImageId);
    }
    let repository = repository(image);
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    let mut parts: Vec<&str> = repository.split('/').collect();
    if parts.len() > 1 && registry_host(image).is_some() {
        parts.remove(0);
    }
    if image.trim() != image || !parts.iter().all(|c| component_ok(c)) {
        return Some(LocalOnly::InvalidReference);
    }
    None
}

/// `repo[:tag][@digest]` without its tag and digest.
fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    }
}

/// The registry a name is pulled from when it names one: a first component with a `.` or a
/// `:` (a port), or `localhost` (Docker's reference rules). `None` means Docker Hub.
fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// Every image of a run that cannot be had, reported together.
#[derive(Debug)]
pub struct ImagesError {
    pub problems: Vec<ImageProblem>,
}

/// One image that cannot be had, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProblem {
    pub image: String,
    /// The image the config names, when `--image-map` replaced it.
    pub mapped_from: Option<String>,
    pub why: Why,
    /// The image has `auth` credentials in the config.
    pub with_auth: bool,
    /// Variables its `auth` refers to that were not given (expanded to nothing).
    pub unset: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Why {
    /// No registry can serve the name.
    LocalOnly(LocalOnly),
    PullFailed {
        reason: String,
        failure: PullFailure,
    },
    /// Missing too, but not pulled: another image of the run cannot be had at all.
    NotTried,
}

/// Why no registry can serve a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalOnly {
    ImageId,
    InvalidReference,
}

impl fmt::Display for LocalOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalOnly::ImageId => "an image id, which only the engine that made it has",
            LocalOnly::InvalidReference => {
                "not a valid image reference (repository names are lowercase letters, digits and . _ - separated by /)"
            }
        })
    }
}

/// What a failed pull means for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry answered that it has no such image (or will not say: Docker Hub answers
    /// "pull access denied" for a repository that does not exist).
    NotThere,
    /// The registry wants (other) credentials.
    Refused,
    /// No registry answered.
    Unreachable,
    Other,
}

impl PullFailure {
    fn of(reason: &str) -> PullFailure {
        let r = reason.to_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| r.contains(w));
        if any(&[
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
        ]) {
            PullFailure::Refused
        } else if any(&[
            "pull access denied",
            "repository does not exist",
            "manifest unknown",
            "not found",
            "no such image",
        ]) {
            PullFailure::NotThere
        } else if any(&[
            "no such host",
            "connection refused",
            "i/o timeout",
            "network is unreachable",
            "dial tcp",
            "tls handshake",
            "server gave http response to https client",
        ]) {
            PullFailure::Unreachable
        } else {
            PullFailure::Other
        }
    }
}

impl ImageProblem {
    fn new(image: &ImagePlan, why: Why) -> ImageProblem {
        ImageProblem {
            image: image.image.clone(),
            mapped_from: image.mapped_from.clone(),
            why,
            with_auth: image.auth.is_some(),
            unset: Vec::new(),
        }
    }

    fn reason(&self) -> String {
        match &self.why {
            Why::LocalOnly(what) => format!("it is missing, and it is {what}"),
            Why::PullFailed { reason, .. } => reason.clone(),
            Why::NotTried => "it is missing too (not pulled, since the run cannot start)".into(),
        }
    }

    /// What to do about it. Every hint ends with the `--image-map` way out.
    pub fn hint(&self) -> String {
        let original = self.mapped_from.as_deref().unwrap_or(&self.image);
        let map = format!("--image-map {original}=<local image>");
        let image = &self.image;
        let build = format!("if you build it yourself: docker build -t {image} <folder>");
        let fix = match &self.why {
            Why::LocalOnly(LocalOnly::ImageId) => {
                "the engine has no image with this id: name an image it has".to_string()
            }
            Why::LocalOnly(LocalOnly::InvalidReference) => {
                "fix the image name in the config".to_string()
            }
            Why::NotTried => "localci pulls it once the other images are fixed".to_string(),
            Why::PullFailed { failure, .. } => match failure {
                PullFailure::NotThere => format!("no registry has it; {build}"),
                PullFailure::Refused => self.credentials_fix(),
                PullFailure::Unreachable => {
                    let from = registry_host(image).unwrap_or("Docker Hub");
                    format!(
                        "{from} cannot be reached; {build}; if it is published there, localci pulls it when {from} can be reached"
                    )
                }
                PullFailure::Other => {
                    format!("pull or build it yourself (docker pull {image})")
                }
            },
        };
        format!("{fix}; or run a local image in its place: {map}")
    }

    fn credentials_fix(&self) -> String {
        if !self.with_auth {
            return "the registry wants credentials: give the image `auth: {username: $USER_VAR, password: $PASS_VAR}` in the config and the variables with -e or --env-file".to_string();
        }
        if self.unset.is_empty() {
            return "the registry refused the image's `auth` credentials: check the username and password (their $VARs come from -e and --env-file)".to_string();
        }
        let names: Vec<String> = self.unset.iter().map(|n| format!("${n}")).collect();
        let one = names.len() == 1;
        format!(
            "the registry refused the image's `auth` credentials; {} used there {} not set: give {} with -e NAME=VALUE or --env-file",
            names.join(", "),
            if one { "is" } else { "are" },
            if one { "it" } else { "them" },
        )
    }
}

impl ImagesError {
    /// One hint for the whole error: the image's own for one image; with several, each hint
    /// is in the message next to its image.
    pub fn hint(&self) -> String {
        match self.problems.as_slice() {
            [one] => one.hint(),
            _ => "nothing was started; fix each image as its line says".to_string(),
        }
    }
}

impl fmt::Display for ImagesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [one] = self.problems.as_slice() {
            return write!(f, "cannot use image {}: {}", one.image, one.reason());
        }
        write!(
            f,
            "{} images of the run cannot be used:",
            self.problems.len()
        )?;
        for p in &self.problems {
            let instead = p
                .mapped_from
                .as_ref()
                .map_or(String::new(), |m| format!(" (in place of {m})"));
            write!(
                f,
                "\n  {}{instead}: {}\n    {}",
                p.image,
                p.reason(),
                p.hint()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ImagesError {}

/// The image's `auth`, its `$VAR`s expanded.
fn credentials(image: &ImagePlan, vars: &BTreeMap<String, String>) -> Option<Credentials> {
    image.auth.as_ref().map(|a| Credentials {
        username: interpolate(&a.username, vars),
        password: interpolate(&a.password, vars),
    })
}

/// Pulls one image, sending each layer's progress.
async fn pull(
    backend: &dyn Backend,
    image: &ImagePlan,
    credentials: Option<Credentials>,
    events: &Events,
) -> Result<(), BackendError> {
    let mut stream = backend.pull_image(&image.image, credentials);
    while let Some(item) = stream.next().await {
        let progress = item?;
        // Lines without a layer ("Digest: ...", "Status: ...") say nothing the summary won't.
        if let Some(layer) = progress.layer {
            events.send(Event::LayerProgress {
                job: events.job(),
                image: image.image.clone(),
                layer,
                status: progress.status,
                current: progress.current,
                total: progress.total,
            });
        }
        super::hold::at(super::hold::Moment::Pull, events).await;
    }
    Ok(())
}

/// Expands `$VAR` and `${VAR}`; unknown variables become empty, as in a shell.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    expand(text, vars, &mut Vec::new())
}

/// [`interpolate`], noting the names of the variables that are not set in `unset`.
fn expand(text: &str, vars: &BTreeMap<String, String>, unset: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => unset.push(name.to_string()),
            }
            rest = &after[consumed..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeBackend;

    fn plan(image: &str) -> ImagePlan {
        ImagePlan {
            image: image.to_string(),
            mapped_from: None,
            name: None,
            entrypoint: None,
            command: None,
            user: None,
            environment: Vec::new(),
            auth: None,
        }
    }

    fn problem(image: &str, reason: &str) -> ImageProblem {
        pull_problem(
            &plan(image),
            &BTreeMap::new(),
            &BackendError::Api(reason.into()),
        )
    }

    async fn ensure_all(
        backend: &FakeBackend,
        images: &[ImagePlan],
    ) -> Result<Option<HashMap<String, ImageInfo>>, EngineError> {
        let (tx, _rx) = crate::report::channel();
        let events = Events::new(tx, crate::report::JobRef::new("build", None));
        ensure(backend, images, &[], &events, &CancellationToken::new()).await
    }

    #[tokio::test]
    async fn every_missing_image_is_reported_at_once() {
        let backend = FakeBackend::new(&["present"]);
        let images = [
            plan("present"),
            plan("gone-a"),
            plan("gone-b"),
            plan("gone-a"),
        ];
        let Err(EngineError::Images(e)) = ensure_all(&backend, &images).await else {
            panic!("two images are missing");
        };
        let names: Vec<&str> = e.problems.iter().map(|p| p.image.as_str()).collect();
        assert_eq!(names, ["gone-a", "gone-b"]);
        let text = e.to_string();
        assert!(
            text.starts_with("2 images of the run cannot be used:\n  gone-a: pull access denied"),
            "{text}"
        );
        assert!(text.contains("\n    no registry has it; if you build it yourself: docker build -t gone-b <folder>; or run a local image in its place: --image-map gone-b=<local image>"), "{text}");
        assert_eq!(
            e.hint(),
            "nothing was started; fix each image as its line says"
        );
    }

    #[tokio::test]
    async fn a_name_no_registry_can_serve_is_not_pulled_and_nothing_else_is() {
        let backend = FakeBackend::new(&[]);
        backend.state().pullable.insert("pullable".into());
        let id = format!("sha256:{}", "ab".repeat(32));
        let images = [plan("pullable"), plan(&id), plan("Local/Dev")];
        let Err(EngineError::Images(e)) = ensure_all(&backend, &images).await else {
            panic!("an image id cannot be pulled");
        };
        assert!(
            backend.state().pulled.is_empty(),
            "nothing is pulled for a run that cannot start"
        );
        let whys: Vec<&Why> = e.problems.iter().map(|p| &p.why).collect();
        assert_eq!(whys[0], &Why::NotTried);
        assert_eq!(whys[1], &Why::LocalOnly(LocalOnly::ImageId));
        assert_eq!(whys[2], &Why::LocalOnly(LocalOnly::InvalidReference));
        assert!(!e.problems[1].hint().contains("docker pull"));
    }

    #[tokio::test]
    async fn an_image_id_the_engine_has_is_used() {
        let id = format!("sha256:{}", "cd".repeat(32));
        let backend = FakeBackend::new(&[id.as_str()]);
        let found = ensure_all(&backend, &[plan(&id)]).await.unwrap().unwrap();
        assert!(found.contains_key(&id));
    }

    #[tokio::test]
    async fn missing_images_are_pulled_and_repeats_checked_once() {
        let backend = FakeBackend::new(&["a"]);
        backend.state().pullable.insert("b".into());
        let found = ensure_all(&backend, &[plan("a"), plan("b"), plan("b")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(backend.state().pulled, ["b"]);
    }

    #[test]
    fn local_only_names() {
        assert!(local_only(&"0".repeat(64)).is_some());
        assert!(local_only("MyImage:dev").is_some());
        assert!(local_only("my image").is_some());
        for fine in [
            "myimage:dev",
            "localci-test/busybox:latest",
            "cimg/python:3.12",
            "127.0.0.1:5000/app:1",
            "Registry.Example.com/team/app@sha256:abc",
            "localhost/app",
        ] {
            assert_eq!(local_only(fine), None, "{fine}");
        }
    }

    #[test]
    fn each_failure_gets_the_hint_that_fits() {
        let missing = problem("127.0.0.1:5000/app:1", "manifest unknown");
        assert!(missing.hint().starts_with("no registry has it; if you build it yourself: docker build -t 127.0.0.1:5000/app:1 <folder>"), "{}", missing.hint());
        let offline = problem(
            "localci-test/x:1",
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host",
        );
        let hint = offline.hint();
        assert!(hint.starts_with("Docker Hub cannot be reached; if you build it yourself: docker build -t localci-test/x:1"), "{hint}");
        assert!(!hint.contains("docker pull"), "{hint}");
        let refused = problem("127.0.0.1:5000/app:1", "connection refused");
        assert!(
            refused
                .hint()
                .starts_with("127.0.0.1:5000 cannot be reached;")
        );
        let mut with_auth = problem("r.example/app", "unauthorized: authentication required");
        with_auth.with_auth = true;
        assert!(
            with_auth
                .hint()
                .starts_with("the registry refused the image's `auth` credentials: check")
        );
        with_auth.unset = vec!["REG_PASS".into()];
        assert!(
            with_auth
                .hint()
                .contains("$REG_PASS used there is not set: give it with -e")
        );
        let none = problem("r.example/app", "no basic auth credentials");
        assert!(
            none.hint()
                .starts_with("the registry wants credentials: give the image `auth:")
        );
        for p in [missing, offline, refused, with_auth, none] {
            let original = p.image.clone();
            assert!(
                p.hint()
                    .ends_with(&format!("--image-map {original}=<local image>")),
                "{}",
                p.hint()
            );
        }
    }

    #[test]
    fn interpolates_like_circleci_auth() {
        let vars = BTreeMap::from([
            ("USER".to_string(), "me".to_string()),
            ("PW".to_string(), "s3".to_string()),
        ]);
        assert_eq!(interpolate("$USER", &vars), "me");
        assert_eq!(interpolate("${PW}-x", &vars), "s3-x");
        assert_eq!(interpolate("a$MISSING.b", &vars), "a.b");
        assert_eq!(interpolate("cost $5 $", &vars), "cost  $");
        assert_eq!(interpolate("plain", &vars), "plain");
    }

    #[test]
    fn notes_the_variables_that_are_not_set() {
        let vars = BTreeMap::from([("USER".to_string(), "me".to_string())]);
        let mut unset = Vec::new();
        assert_eq!(expand("$USER:${PASS}/$PASS", &vars, &mut unset), "me:/");
        assert_eq!(unset, vec!["PASS", "PASS"]);
    }
}
