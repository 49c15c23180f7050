//! Plugin costs, measured in one run so the ratios mean something on whatever machine runs it:
//! cold compile, cached load, instantiate, render call, and the same job rendered by the default
//! renderer compiled natively (the baseline).
//!
//! `cargo bench -p slurmkit --bench plugins [-- --quick]`. Other renderer components can be measured
//! alongside the built-in one: `SLURMKIT_BENCH_PLUGINS=a.wasm,b.wasm` (e.g. the JavaScript example).

use std::path::Path;
use std::time::{Duration, Instant};

use renderer_default::slurmkit::plugin::types as native;
use slurmkit::plugin::renderer::Renderer;
use slurmkit::plugin::{PluginEngine, PluginSpec};
use slurmkit::types::names::{JobName, Partition};
use slurmkit::types::spec::{JobSpec, Payload};
use slurmkit::types::units::{Memory, TimeLimit};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (compiles, calls) = if quick { (2, 50) } else { (5, 500) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "slurmkit plugin benchmark ({compiles} compiles, {calls} calls per figure; medians)\n"
        );
        println!(
            "{:<28} {:>10} {:>13} {:>12} {:>12} {:>12}",
            "component", "size", "cold compile", "cached load", "instantiate", "render call"
        );
        let builtin = measure("renderer-default (builtin)", None, compiles, calls).await;

        let job = native_job();
        let native = median((0..calls * 20).map(|_| {
            let started = Instant::now();
            let script = renderer_default::render_script(std::hint::black_box(&job)).unwrap();
            std::hint::black_box(script);
            started.elapsed()
        }));
        println!(
            "{:<28} {:>10} {:>13} {:>12} {:>12} {:>12}",
            "same job, native Rust",
            "-",
            "-",
            "-",
            "-",
            fmt(native)
        );

        for path in std::env::var("SLURMKIT_BENCH_PLUGINS")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let name = Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            measure(&name, Some(Path::new(path)), 1, calls / 5).await;
        }

        println!();
        println!(
            "cached load vs cold compile: {:.0}x faster",
            builtin.cold.as_secs_f64() / builtin.cached.as_secs_f64()
        );
        println!(
            "render call (fresh instance each call) vs native Rust: {:.0}x ({} vs {})",
            builtin.call.as_secs_f64() / native.as_secs_f64(),
            fmt(builtin.call),
            fmt(native)
        );
        println!(
            "instantiate share of a render call: {:.0}%",
            100.0 * builtin.instantiate.as_secs_f64() / builtin.call.as_secs_f64()
        );
    });
}

struct Figures {
    cold: Duration,
    cached: Duration,
    instantiate: Duration,
    call: Duration,
}

async fn measure(label: &str, path: Option<&Path>, compiles: usize, calls: usize) -> Figures {
    let plugin = match path {
        Some(path) => PluginSpec::from_file(label, path, None).unwrap(),
        None => {
            let engine = PluginEngine::new(None, None).unwrap();
            Renderer::builtin(&engine).await.unwrap().spec().clone()
        }
    };
    let size = plugin.bytes.len();

    let mut cold = Vec::new();
    for _ in 0..compiles {
        let engine = PluginEngine::new(None, None).unwrap();
        let started = Instant::now();
        Renderer::load(&engine, plugin.clone()).await.unwrap();
        cold.push(started.elapsed());
    }

    let cache = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(Some(cache.path().to_path_buf()), None).unwrap();
    Renderer::load(&engine, plugin.clone()).await.unwrap();
    let mut cached = Vec::new();
    for _ in 0..compiles.max(5) {
        let started = Instant::now();
        Renderer::load(&engine, plugin.clone()).await.unwrap();
        cached.push(started.elapsed());
    }
    let cached = median(cached);

    let renderer = Renderer::load(&engine, plugin).await.unwrap();
    let job = host_job();
    let mut instantiate = Vec::new();
    let mut call = Vec::new();
    for _ in 0..calls {
        let started = Instant::now();
        renderer.instantiate().await.unwrap();
        instantiate.push(started.elapsed());
        let started = Instant::now();
        std::hint::black_box(renderer.render(&job).await.unwrap());
        call.push(started.elapsed());
    }
    let figures = Figures {
        cold: median(cold),
        cached,
        instantiate: median(instantiate),
        call: median(call),
    };
    println!(
        "{:<28} {:>10} {:>13} {:>12} {:>12} {:>12}",
        label,
        format!("{} KB", size / 1024),
        fmt(figures.cold),
        fmt(figures.cached),
        fmt(figures.instantiate),
        fmt(figures.call)
    );
    figures
}

fn median(samples: impl IntoIterator<Item = Duration>) -> Duration {
    let mut samples: Vec<Duration> = samples.into_iter().collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn fmt(d: Duration) -> String {
    match d.as_nanos() {
        n if n < 10_000 => format!("{:.2} µs", n as f64 / 1e3),
        n if n < 10_000_000 => format!("{:.0} µs", n as f64 / 1e3),
        n if n < 10_000_000_000 => format!("{:.0} ms", n as f64 / 1e6),
        n => format!("{:.1} s", n as f64 / 1e9),
    }
}

/// The benchmark job, as the host holds it.
fn host_job() -> JobSpec {
    let argv = ["python3", "train.py", "--epochs", "10"]
        .map(String::from)
        .to_vec();
    let mut job = JobSpec::new(JobName::parse("bench").unwrap(), Payload::Command(argv));
    job.environment.insert("OMP_NUM_THREADS".into(), "8".into());
    job.modules = vec!["python/3.11".into(), "cuda/12".into()];
    job.partition = Some(Partition::parse("debug").unwrap());
    job.time_limit = Some(TimeLimit::from_seconds(7200));
    job.ntasks = Some(1);
    job.cpus_per_task = Some(8);
    job.memory = Memory::parse("16G").ok();
    job.extra_directives = vec!["--mail-type=END".into()];
    job
}

/// The same job, as the natively compiled renderer takes it.
fn native_job() -> native::Job {
    native::Job {
        name: "bench".into(),
        payload: native::Payload::Command(vec![
            "python3".into(),
            "train.py".into(),
            "--epochs".into(),
            "10".into(),
        ]),
        working_dir: None,
        environment: vec![("OMP_NUM_THREADS".into(), "8".into())],
        modules: vec!["python/3.11".into(), "cuda/12".into()],
        partition: Some("debug".into()),
        account: None,
        qos: None,
        reservation: None,
        time_limit_seconds: Some(7200),
        nodes: None,
        ntasks: Some(1),
        ntasks_per_node: None,
        cpus_per_task: Some(8),
        memory_mb: Some(16384),
        mem_per_cpu_mb: None,
        gpus: None,
        gres: None,
        constraint: None,
        exclusive: false,
        array: None,
        dependencies: vec![],
        output: Some("slurm-%j.out".into()),
        error: Some("slurm-%j.err".into()),
        extra_directives: vec!["--mail-type=END".into()],
        inputs: vec![],
        outputs: vec![],
        args: "{}".into(),
        item_count: 0,
        after: vec![],
        container: None,
    }
}
