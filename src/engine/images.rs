//! Makes every image of the job available: a local image is used as is; a missing one is
//! pulled (with `auth` credentials, `$VAR` expanded from the project variables as CircleCI
//! does there alone) with one progress line per layer on a terminal.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::EngineError;
use crate::backend::{Backend, BackendError, Credentials, ImageInfo, PullProgress};
use crate::config::format_duration;
use crate::plan::{ImagePlan, JobPlan};
use crate::report::Events;

/// Inspects (and pulls when needed) every image; `None` when cancelled.
pub async fn ensure(
    backend: &dyn Backend,
    plan: &JobPlan,
    progress: bool,
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
                let pulled = tokio::select! {
                    () = cancel.cancelled() => return Ok(None),
                    pulled = pull(backend, image, &vars, progress) => pulled,
                };
                pulled.map_err(|e| image_error(image, &e))?;
                events.info(format!(
                    "Pulled {} in {}",
                    image.image,
                    format_duration(started.elapsed())
                ));
                backend.inspect_image(&image.image).await?.ok_or_else(|| {
                    image_error(
                        image,
                        &BackendError::NotFound("not found after the pull".into()),
                    )
                })?
            }
        };
        found.insert(image.image.clone(), info);
    }
    Ok(Some(found))
}

fn image_error(image: &ImagePlan, e: &BackendError) -> EngineError {
    EngineError::Image {
        image: image.image.clone(),
        mapped_from: image.mapped_from.clone(),
        reason: e.to_string(),
    }
}

async fn pull(
    backend: &dyn Backend,
    image: &ImagePlan,
    vars: &BTreeMap<String, String>,
    progress: bool,
) -> Result<(), BackendError> {
    let credentials = image.auth.as_ref().map(|a| Credentials {
        username: interpolate(&a.username, vars),
        password: interpolate(&a.password, vars),
    });
    let mut bars = Bars::new(progress);
    let mut stream = backend.pull_image(&image.image, credentials);
    while let Some(item) = stream.next().await {
        bars.update(&item?);
    }
    bars.finish();
    Ok(())
}

/// One progress bar per layer, on stderr; drawn only when stderr is a terminal.
struct Bars {
    multi: MultiProgress,
    layers: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new(visible: bool) -> Bars {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            layers: HashMap::new(),
        }
    }

    fn update(&mut self, p: &PullProgress) {
        let Some(layer) = &p.layer else { return };
        let multi = &self.multi;
        let bar = self.layers.entry(layer.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} {msg:<12} {bar:30} {bytes}/{total_bytes}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.set_prefix(layer.clone());
            bar
        });
        bar.set_message(p.status.clone());
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        if let Some(current) = p.current {
            bar.set_position(current);
        }
    }

    fn finish(&self) {
        for bar in self.layers.values() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// Expands `$VAR` and `${VAR}`; unknown variables become empty, as in a shell.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
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
            out.push_str(vars.get(name).map_or("", String::as_str));
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
}
