//! Makes every image of the job available: a local image is used as is; a missing one is
//! pulled (with `auth` credentials, `$VAR` expanded from the project variables as CircleCI
//! does there alone), its layers' progress sent as events for the reporter to draw.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::EngineError;
use crate::backend::{Backend, BackendError, Credentials, ImageInfo};
use crate::plan::{ImagePlan, JobPlan};
use crate::report::{Event, Events};
use crate::units::format_go;

/// Inspects (and pulls when needed) every image; `None` when cancelled.
pub async fn ensure(
    backend: &dyn Backend,
    plan: &JobPlan,
    events: &Events,
    cancel: &CancellationToken,
) -> Result<Option<HashMap<String, ImageInfo>>, EngineError> {
    let vars: BTreeMap<String, String> = plan.environment.project.iter().cloned().collect();
    let mut found = HashMap::new();
    for image in &plan.images {
        if found.contains_key(&image.image) {
            continue;
        }
        let mapped = image
            .mapped_from
            .as_ref()
            .map_or(String::new(), |from| format!(" (in place of {from})"));
        let info = match backend.inspect_image(&image.image).await? {
            Some(info) => {
                events.info(format!("Using local image {}{mapped}", image.image));
                info
            }
            None => {
                events.info(format!("Pulling image {}{mapped}", image.image));
                let started = Instant::now();
                let credentials = credentials(image, &vars);
                let pulled = tokio::select! {
                    () = cancel.cancelled() => None,
                    pulled = pull(backend, image, credentials, events) => Some(pulled),
                };
                events.send(Event::PullEnded {
                    job: events.job(),
                    image: image.image.clone(),
                });
                let Some(pulled) = pulled else {
                    return Ok(None);
                };
                pulled.map_err(|e| image_error(image, &vars, &e))?;
                events.info(format!(
                    "Pulled {} in {}",
                    image.image,
                    format_go(started.elapsed())
                ));
                backend.inspect_image(&image.image).await?.ok_or_else(|| {
                    let e = BackendError::NotFound("not found after the pull".into());
                    image_error(image, &vars, &e)
                })?
            }
        };
        found.insert(image.image.clone(), info);
    }
    Ok(Some(found))
}

fn image_error(
    image: &ImagePlan,
    vars: &BTreeMap<String, String>,
    e: &BackendError,
) -> EngineError {
    let mut unset = Vec::new();
    if let Some(auth) = &image.auth {
        expand(&auth.username, vars, &mut unset);
        expand(&auth.password, vars, &mut unset);
    }
    let mut seen = std::collections::HashSet::new();
    unset.retain(|name| seen.insert(name.clone()));
    EngineError::Image {
        image: image.image.clone(),
        mapped_from: image.mapped_from.clone(),
        reason: e.to_string(),
        with_auth: image.auth.is_some(),
        unset,
    }
}

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
