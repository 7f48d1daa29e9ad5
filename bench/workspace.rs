//! Benchmark of `attach_workspace` against the `tar` pipeline it stands for (issue 7:
//! "Attaching a 100 MB / 10,000-file workspace: within 1.5x of the same `tar` pipeline").
//!
//! Run with `cargo run --release --example workspace` (options: `--files N`, `--mb N`,
//! `--runs N`, `--work DIR`). Needs Docker, the `localci-test/busybox:latest` image
//! (`bash tests/images/build.sh`) and `tar` and `docker` on PATH for the baseline.
//!
//! It stores one layer of N files, then, in each round and in alternating order, attaches it
//! into a fresh busybox container the way the step does (verify the layer's SHA-256 and list
//! its files for the conflict check, then stream it into the container) and runs
//! `tar -C dir -cf - . | docker cp - ctr:/ws` into another fresh container. The target folder
//! exists in both before the clock starts. Both results are checked (file count), and every
//! container is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use localci::backend::docker::DockerBackend;
use localci::backend::{Backend, ContainerSpec, ExecSpec, LABEL};
use localci::steps::process::collect;
use localci::steps::workspace::apply_layer;
use localci::store::workspace::{LayerWriter, Upstream, prepare_attach};

const IMAGE: &str = "localci-test/busybox:latest";
const AT: &str = "/ws";

struct Options {
    files: usize,
    mb: usize,
    runs: usize,
    work: Option<PathBuf>,
}

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\nusage: workspace [--files N] [--mb N] [--runs N] [--work DIR]");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options).await {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        files: 10_000,
        mb: 100,
        runs: 3,
        work: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: {value:?} is not a positive number"))
        };
        match flag.as_str() {
            "--files" => o.files = number()?,
            "--mb" => o.mb = number()?,
            "--runs" => o.runs = number()?,
            "--work" => o.work = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

async fn run(o: &Options) -> Result<(), Error> {
    let temp = tempfile::tempdir()?;
    let work = o.work.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let data = work.join("data");
    let layers = work.join(".localci/runs/bench/workspace/build");
    let bytes = make_tree(&data, o.files, o.mb << 20)?;
    let started = Instant::now();
    let stored = store_layer(&data, &layers)?;
    println!(
        "workspace: {} files, {:.1} MB of data; layer {:.1} MB stored in {:.2}s",
        o.files,
        bytes as f64 / 1e6,
        stored as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let backend = DockerBackend::connect(env).await?;
    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    for round in 0..o.runs {
        // Alternate which goes first, so neither always meets a cold or warm daemon.
        if round % 2 == 0 {
            ours.push(attach_once(&backend, &layers, o.files).await?);
            baseline.push(pipeline_once(&backend, &data, o.files).await?);
        } else {
            baseline.push(pipeline_once(&backend, &data, o.files).await?);
            ours.push(attach_once(&backend, &layers, o.files).await?);
        }
        println!(
            "round {}: attach_workspace {:.2}s, tar | docker cp {:.2}s",
            round + 1,
            ours[round].as_secs_f64(),
            baseline[round].as_secs_f64()
        );
    }
    let (ours, baseline) = (median(&mut ours), median(&mut baseline));
    println!(
        "median: attach_workspace {:.2}s, tar | docker cp {:.2}s, ratio {:.2}x (target <= 1.5x)",
        ours.as_secs_f64(),
        baseline.as_secs_f64(),
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
    Ok(())
}

/// `files` files in folders of 100, `total` bytes in all; returns the bytes written.
fn make_tree(dir: &Path, files: usize, total: usize) -> Result<u64, Error> {
    let size = total / files;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut content = vec![0u8; size];
    let mut written = 0;
    for i in 0..files {
        let folder = dir.join(format!("d{:03}", i / 100));
        fs::create_dir_all(&folder)?;
        for chunk in content.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        fs::write(folder.join(format!("f{i:05}.bin")), &content)?;
        written += size as u64;
    }
    Ok(written)
}

/// The layer persist would write for `paths: [.]`.
fn store_layer(data: &Path, layers: &Path) -> Result<u64, Error> {
    let mut builder = tar::Builder::new(LayerWriter::create(layers, 0, 1)?);
    builder.append_dir_all(".", data)?;
    let mut writer = builder.into_inner()?;
    writer.flush()?;
    Ok(writer.commit()?.size)
}

/// A fresh container with an empty `/ws`; removed when dropped.
struct Fresh(String);

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

async fn fresh(backend: &DockerBackend) -> Result<Fresh, Error> {
    let spec = ContainerSpec {
        image: IMAGE.into(),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        labels: [(LABEL.to_string(), "bench-workspace".to_string())].into(),
        init: true,
        ..ContainerSpec::default()
    };
    let container = Fresh(backend.create_container(spec).await?);
    backend.start_container(&container.0).await?;
    shell(backend, &container, &format!("mkdir -p {AT}")).await?;
    Ok(container)
}

async fn shell(backend: &DockerBackend, container: &Fresh, script: &str) -> Result<String, Error> {
    let spec = ExecSpec {
        cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..ExecSpec::default()
    };
    let out = collect(backend, &container.0, spec).await?;
    if out.exit_code != 0 {
        return Err(format!("{script}: {}", out.stderr).into());
    }
    Ok(out.stdout)
}

async fn check(backend: &DockerBackend, container: &Fresh, files: usize) -> Result<(), Error> {
    let count = shell(backend, container, &format!("find {AT} -type f | wc -l")).await?;
    if count.trim() != files.to_string() {
        return Err(format!("expected {files} files in {AT}, found {}", count.trim()).into());
    }
    Ok(())
}

async fn attach_once(
    backend: &DockerBackend,
    layers: &Path,
    files: usize,
) -> Result<Duration, Error> {
    let container = fresh(backend).await?;
    let started = Instant::now();
    let verified = {
        let layers = layers.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let ancestors = BTreeSet::new();
            prepare_attach(&[Upstream {
                job: "build",
                dir: &layers,
                ancestors: &ancestors,
            }])
        })
        .await??
    };
    for layer in verified {
        apply_layer(backend, &container.0, AT, layer, None).await?;
    }
    let elapsed = started.elapsed();
    check(backend, &container, files).await?;
    Ok(elapsed)
}

async fn pipeline_once(
    backend: &DockerBackend,
    data: &Path,
    files: usize,
) -> Result<Duration, Error> {
    let container = fresh(backend).await?;
    let script = format!(
        "tar -C '{}' -cf - . | docker cp - {}:{AT}",
        data.display(),
        container.0
    );
    let started = Instant::now();
    let status = Command::new("sh").args(["-c", &script]).status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("`{script}` failed: {status}").into());
    }
    check(backend, &container, files).await?;
    Ok(elapsed)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}
