//! A site policy: what a site asks of every job before it is submitted, as Slurm's cli_filter would.
//! It reads its rules from its `config` table:
//!
//! ```toml
//! [[policy]]
//! plugin = "plugins/rust_site_policy.wasm"
//! config = { default_partition = "debug", default_account = "proj42", max_time_minutes = 60, max_gpus = 4, log_dir = "policy-log" }
//! [policy.grants]
//! write = ["policy-log"]
//! ```
//!
//! - `setup-defaults`: a job without a partition or an account gets the site's.
//! - `pre-submit`: a job asking for more than `max_gpus` GPUs (`gpus = "8"`, `"a100:8"`, or
//!   `gres = "gpu:8"`, `"gpu:a100:8"`) is refused, saying why and what to do; a time limit above
//!   `max_time_minutes` is cut down to it (the job is amended); anything else is accepted.
//! - `post-submit`: with `log_dir`, appends `<job id>\t<name>\t<partition>\t<minutes>` to
//!   `<log_dir>/submitted.tsv` (a directory the policy must be granted).

wit_bindgen::generate!({ world: "policy", path: "../../../wit" });

use std::io::Write;

use slurmkit::plugin::host::{Level, config, log};

struct SitePolicy;

fn setting(key: &str) -> Option<String> {
    config().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn number(key: &str) -> Option<u64> {
    setting(key).and_then(|v| v.trim().parse().ok())
}

/// The GPU count of `--gpus` (`2`, `a100:2`) or a `gpu` `--gres` (`gpu:2`, `gpu:a100:2`).
fn gpus(job: &Job) -> u64 {
    let count = |text: &str| text.rsplit(':').next().and_then(|n| n.parse::<u64>().ok());
    let from_gpus = job.gpus.as_deref().and_then(count).unwrap_or(0);
    let from_gres = job
        .gres
        .as_deref()
        .into_iter()
        .flat_map(|gres| gres.split(','))
        .filter(|g| g.starts_with("gpu"))
        .map(|g| count(g).unwrap_or(1))
        .sum::<u64>();
    from_gpus.max(from_gres)
}

impl Guest for SitePolicy {
    fn setup_defaults(mut job: Job) -> Job {
        if job.partition.is_none() {
            job.partition = setting("default_partition");
        }
        if job.account.is_none() {
            job.account = setting("default_account");
        }
        job
    }

    fn pre_submit(mut job: Job) -> Verdict {
        if let Some(max) = number("max_gpus") {
            let asked = gpus(&job);
            if asked > max {
                return Verdict::Refuse(format!(
                    "job {} asks for {asked} GPUs; this site allows at most {max} per job: split the work or ask for fewer",
                    job.name
                ));
            }
        }
        let Some(max_minutes) = number("max_time_minutes") else {
            return Verdict::Accept;
        };
        let max = max_minutes * 60;
        match job.time_limit_seconds {
            Some(asked) if asked > max => {
                log(
                    Level::Info,
                    &format!(
                        "job {}: time limit {}m cut to the site's maximum of {max_minutes}m",
                        job.name,
                        asked.div_ceil(60)
                    ),
                );
                job.time_limit_seconds = Some(max);
                Verdict::Amend(job)
            }
            _ => Verdict::Accept,
        }
    }

    fn post_submit(job: Job, job_id: String) -> Result<(), String> {
        let Some(dir) = setting("log_dir") else {
            return Ok(());
        };
        let path = format!("{}/submitted.tsv", dir.trim_end_matches('/'));
        let line = format!(
            "{job_id}\t{}\t{}\t{}\n",
            job.name,
            job.partition.as_deref().unwrap_or("-"),
            job.time_limit_seconds
                .map_or("-".to_string(), |s| s.div_ceil(60).to_string())
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .map_err(|e| format!("cannot write {path}: {e}"))
    }
}

export!(SitePolicy);
