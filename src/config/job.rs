//! Jobs and their executors as a processed (2.0-shaped) config defines them.

use serde::Serialize;

use super::read::{Reader, child, index};
use super::step::{Step, parse_steps};
use crate::source::Span;
use crate::yaml::Node;

/// The default `working_directory` of every job (CircleCI reference).
pub const DEFAULT_WORKING_DIRECTORY: &str = "~/project";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Job {
    pub name: String,
    pub executor: Executor,
    /// As written; `~` is expanded only inside the container.
    pub working_directory: String,
    pub environment: Vec<(String, String)>,
    pub shell: Option<String>,
    pub parallelism: u32,
    pub resource_class: Option<String>,
    pub job_type: JobType,
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    Docker(Vec<DockerImage>),
    Machine(Machine),
    Macos,
    /// No executor key: only valid for approval and no-op jobs.
    None,
}

/// A `machine:` executor: `machine: true` or `machine: {image: ubuntu-2204:2024.01.1, ...}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// The CircleCI image name; `None` for `machine: true` (CircleCI's default image).
    pub image: Option<String>,
    /// `docker_layer_caching`: a no-op locally (the engine's own layer cache is always there).
    pub docker_layer_caching: bool,
    /// `machine.resource_class` (the older spelling of the job's `resource_class`).
    pub resource_class: Option<String>,
    pub shell: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobType {
    Build,
    Approval,
    NoOp,
    Other,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DockerImage {
    pub image: String,
    /// Extra host name of this container (`name:`).
    pub name: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub environment: Vec<(String, String)>,
    pub auth: Option<Auth>,
    pub aws_auth: Option<AwsAuth>,
    #[serde(skip)]
    pub span: Span,
}

/// Registry credentials as written; `$VAR` is expanded at pull time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Auth {
    pub username: String,
    #[serde(skip)]
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AwsAuth {
    pub aws_access_key_id: Option<String>,
    #[serde(skip)]
    pub aws_secret_access_key: Option<String>,
    pub oidc_role_arn: Option<String>,
}

/// Reads one entry of `jobs:`.
pub(crate) fn parse_job(r: &mut Reader, name: &str, node: &Node, pointer: &str) -> Option<Job> {
    if node.as_map().is_none() {
        r.error(node, pointer, format!("job `{name}` must be a map"));
        return None;
    }
    let job_type = match r.opt_text(node, "type", pointer).as_deref() {
        None | Some("build") => JobType::Build,
        Some("approval") => JobType::Approval,
        Some("no-op") => JobType::NoOp,
        Some(_) => JobType::Other,
    };
    let steps = match node.get("steps") {
        Some(s) => parse_steps(r, s, &child(pointer, "steps")),
        None if job_type == JobType::Build => {
            r.error(node, pointer, format!("job `{name}` has no `steps`"));
            Vec::new()
        }
        None => Vec::new(),
    };
    Some(Job {
        name: name.to_string(),
        executor: parse_executor(r, node, pointer),
        working_directory: r
            .opt_text(node, "working_directory", pointer)
            .unwrap_or_else(|| DEFAULT_WORKING_DIRECTORY.to_string()),
        environment: node
            .get("environment")
            .map(|e| r.environment(e, &child(pointer, "environment")))
            .unwrap_or_default(),
        shell: node
            .get("shell")
            .and_then(|s| r.words(s, &child(pointer, "shell"), "`shell`"))
            .map(|w| w.join(" ")),
        parallelism: r.opt_u32(node, "parallelism", pointer).unwrap_or(1).max(1),
        resource_class: r.opt_text(node, "resource_class", pointer),
        job_type,
        steps,
        span: node.span,
    })
}

fn parse_executor(r: &mut Reader, node: &Node, pointer: &str) -> Executor {
    if let Some(docker) = node.get("docker") {
        let p = child(pointer, "docker");
        let Some(items) = docker.as_seq().filter(|s| !s.is_empty()) else {
            r.error(docker, &p, "`docker` must be a non-empty list of images");
            return Executor::Docker(Vec::new());
        };
        let images = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| parse_image(r, item, &index(&p, i)))
            .collect();
        return Executor::Docker(images);
    }
    if let Some(machine) = node.get("machine") {
        return Executor::Machine(parse_machine(r, machine, &child(pointer, "machine")));
    }
    if node.get("macos").is_some() {
        return Executor::Macos;
    }
    Executor::None
}

fn parse_machine(r: &mut Reader, node: &Node, pointer: &str) -> Machine {
    if node.as_map().is_none() {
        // `machine: true` (and `machine: false`, which the schema allows and CircleCI runs the
        // same way): the default image.
        return Machine::default();
    }
    Machine {
        image: r.opt_text(node, "image", pointer),
        docker_layer_caching: r
            .opt_bool(node, "docker_layer_caching", pointer)
            .unwrap_or(false),
        resource_class: r.opt_text(node, "resource_class", pointer),
        shell: node
            .get("shell")
            .and_then(|s| r.words(s, &child(pointer, "shell"), "`shell`"))
            .map(|w| w.join(" ")),
    }
}

fn parse_image(r: &mut Reader, node: &Node, pointer: &str) -> Option<DockerImage> {
    if node.as_map().is_none() {
        r.error_hint(
            node,
            pointer,
            "a docker image must be a map",
            "write it as `- image: name:tag`",
        );
        return None;
    }
    let Some(image) = r.opt_text(node, "image", pointer) else {
        r.error(node, pointer, "a docker image needs `image`");
        return None;
    };
    Some(DockerImage {
        image,
        name: r.opt_text(node, "name", pointer),
        entrypoint: node
            .get("entrypoint")
            .and_then(|e| r.words(e, &child(pointer, "entrypoint"), "`entrypoint`")),
        command: node
            .get("command")
            .and_then(|c| r.words(c, &child(pointer, "command"), "`command`")),
        user: r.opt_text(node, "user", pointer),
        environment: node
            .get("environment")
            .map(|e| r.environment(e, &child(pointer, "environment")))
            .unwrap_or_default(),
        auth: parse_auth(r, node, pointer),
        aws_auth: node.get("aws_auth").map(|a| {
            let p = child(pointer, "aws_auth");
            AwsAuth {
                aws_access_key_id: r.opt_text(a, "aws_access_key_id", &p),
                aws_secret_access_key: r.opt_text(a, "aws_secret_access_key", &p),
                oidc_role_arn: r.opt_text(a, "oidc_role_arn", &p),
            }
        }),
        span: node.span,
    })
}

fn parse_auth(r: &mut Reader, node: &Node, pointer: &str) -> Option<Auth> {
    let auth = node.get("auth")?;
    let p = child(pointer, "auth");
    let username = r.opt_text(auth, "username", &p);
    let password = r.opt_text(auth, "password", &p);
    match (username, password) {
        (Some(username), Some(password)) => Some(Auth { username, password }),
        _ => {
            r.error(auth, &p, "`auth` needs both `username` and `password`");
            None
        }
    }
}
