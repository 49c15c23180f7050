//! What goes into a job directory besides the renderer's script, and the lines slurmkit adds to that
//! script so every renderer's jobs find their work the same way.
//!
//! The job directory holds `job.sbatch`, `job.json` (the spec), `args.json` (the job's arguments),
//! `items/<i>.json` for an array of items, the inputs at their places with `.slurmkit/inputs.sha256`,
//! and an empty `results/` for arrays. The prologue, placed after the script's `#SBATCH` block, sets
//! `SLURMKIT_JOB_DIR`, `SLURMKIT_ARGS` (the task's item for arrays of items), `SLURMKIT_RESULT`
//! (`result.json`, or `results/<task>.json`) and `SLURMKIT_DEP_<NAME>` (each dependency's job
//! directory), and checks the inputs against their manifest before anything else runs.

use super::error::LifecycleError;
use super::runner::{RunnerRef, prologue_block};
use crate::config::node::NODE_PLAN_FILE;
use crate::slurm::submit::{Content, MANIFEST_FILE, StagedFile, StagedJob};
use crate::types::job_dir::{SCRIPT_FILE, SPEC_FILE};
use crate::types::shell::quote;
use crate::types::spec::JobSpec;

/// The arguments file; each item is `items/<i>.json`; a result is `result.json` or
/// `results/<task>.json`.
pub const ARGS_FILE: &str = "args.json";
pub const ITEMS_DIR: &str = "items";
pub const RESULT_FILE: &str = "result.json";
pub const RESULTS_DIR: &str = "results";

/// A job this one runs after: the variable naming it and its job directory (absolute).
#[derive(Debug, Clone)]
pub struct DependencyDir {
    pub variable: String,
    pub dir: String,
}

/// A job that runs after another job of its Slurmfile is cancelled by Slurm when that one ends in a
/// way its dependency does not accept, and so on down a graph: otherwise it would stay pending
/// forever, and every job after it too. Added unless the renderer already chose.
const KILL_ON_INVALID_DEP: &str = "#SBATCH --kill-on-invalid-dep=yes\n";

/// For a later part of an array split at the cluster's MaxArraySize: the first part's job directory
/// (absolute), which holds the items, results and outputs of all, and the index of its first item.
#[derive(Debug, Clone, Copy)]
pub struct PartOf<'a> {
    pub first_dir: &'a str,
    pub offset: u64,
}

/// The lines slurmkit adds after the script's `#SBATCH` block (POSIX sh); with `runner`, first of all
/// the hand-over to the node-side runner. A task of an array of items reads item `SLURMKIT_ITEM` (its
/// task id, plus `part`'s offset for a later part of a split array).
pub fn prologue(
    spec: &JobSpec,
    dependencies: &[DependencyDir],
    runner: Option<&RunnerRef>,
    part: Option<PartOf>,
) -> String {
    let mut out = String::from(
        "# slurmkit: where this job's arguments, result and dependencies are, and its inputs checked\n",
    );
    match part {
        None => out.push_str(
            "SLURMKIT_JOB_DIR=${SLURM_SUBMIT_DIR:-$PWD}; export SLURMKIT_JOB_DIR\n",
        ),
        // Submitted from its own directory: work in the first part's, where its outputs are fetched.
        Some(part) => out.push_str(&format!(
            "SLURMKIT_JOB_DIR={}; export SLURMKIT_JOB_DIR\n\
             if [ \"$PWD\" = \"${{SLURM_SUBMIT_DIR:-}}\" ]; then cd -- \"$SLURMKIT_JOB_DIR\" || exit 1; fi\n",
            quote(part.first_dir)
        )),
    }
    if let Some(runner) = runner {
        out.push_str(&prologue_block(runner));
    }
    if spec.items.is_empty() {
        out.push_str(&format!(
            "if [ -n \"${{SLURM_ARRAY_TASK_ID:-}}\" ]; then SLURMKIT_RESULT=\"$SLURMKIT_JOB_DIR/{RESULTS_DIR}/$SLURM_ARRAY_TASK_ID.json\"; \
             else SLURMKIT_RESULT=\"$SLURMKIT_JOB_DIR/{RESULT_FILE}\"; fi\n\
             SLURMKIT_ARGS=\"$SLURMKIT_JOB_DIR/{ARGS_FILE}\"; export SLURMKIT_ARGS SLURMKIT_RESULT\n"
        ));
    } else {
        let offset = part.map_or(0, |p| p.offset);
        out.push_str(&format!(
            "SLURMKIT_ITEM=$(({offset} + ${{SLURM_ARRAY_TASK_ID:-0}})); export SLURMKIT_ITEM\n\
             SLURMKIT_ARGS=\"$SLURMKIT_JOB_DIR/{ITEMS_DIR}/$SLURMKIT_ITEM.json\"; \
             SLURMKIT_RESULT=\"$SLURMKIT_JOB_DIR/{RESULTS_DIR}/$SLURMKIT_ITEM.json\"; export SLURMKIT_ARGS SLURMKIT_RESULT\n"
        ));
    }
    for dependency in dependencies {
        out.push_str(&format!(
            "{}={}; export {}\n",
            dependency.variable,
            quote(&dependency.dir),
            dependency.variable
        ));
    }
    if !spec.inputs.is_empty() {
        out.push_str(&format!(
            "if ! (cd \"$SLURMKIT_JOB_DIR\" && sha256sum --check --quiet --strict {MANIFEST_FILE} >&2); then \
             echo 'slurmkit: an input differs from what was staged (named above), so the job does not run' >&2; exit 1; fi\n"
        ));
    }
    out
}

/// Whether the script's interpreter runs POSIX sh (the prologue's language).
fn runs_sh(script: &str) -> bool {
    let Some(shebang) = script.lines().next().and_then(|l| l.strip_prefix("#!")) else {
        return false;
    };
    let mut words = shebang.split_whitespace();
    let mut program = words.next().unwrap_or("");
    if program.ends_with("/env") {
        program = words.find(|w| !w.starts_with('-')).unwrap_or("");
    }
    let name = program.rsplit('/').next().unwrap_or(program);
    matches!(name, "sh" | "bash" | "dash" | "ksh" | "zsh")
}

/// The script as submitted: the renderer's, with `prologue` after its leading comments (the
/// `#SBATCH` block, which sbatch stops reading at the first command), led by
/// [`KILL_ON_INVALID_DEP`] for a job that runs after others.
pub fn with_prologue(
    spec: &JobSpec,
    script: &str,
    prologue: &str,
) -> Result<String, LifecycleError> {
    let job = spec.name.as_str();
    if !runs_sh(script) {
        return Err(LifecycleError::Script {
            message: format!(
                "the renderer's script for job {job} does not start with a #! line for sh or bash, so slurmkit cannot add the lines that set SLURMKIT_ARGS, SLURMKIT_RESULT and check the inputs"
            ),
        });
    }
    let kill = !spec.after.is_empty() && !script.contains("--kill-on-invalid-dep");
    let prologue = &format!("{}{prologue}", if kill { KILL_ON_INVALID_DEP } else { "" });
    let mut out = String::with_capacity(script.len() + prologue.len());
    let mut placed = false;
    for line in script.split_inclusive('\n') {
        let trimmed = line.trim();
        if !(placed || trimmed.is_empty() || trimmed.starts_with('#')) {
            out.push_str(prologue);
            placed = true;
        }
        out.push_str(line);
    }
    if !placed {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(prologue);
    }
    Ok(out)
}

/// Everything staged for one job: its directory name, the script (with its prologue), the spec, the
/// arguments, the items, the inputs and the directories the job writes into.
/// `node_plan`: the runner's `node.json`, for a job handed to it.
pub fn staged_job(
    dir_name: &str,
    script: String,
    spec: &JobSpec,
    after: String,
    node_plan: Option<&[u8]>,
    has_parts: bool,
) -> StagedJob {
    let spec_json = serde_json::to_vec_pretty(spec).expect("a job spec always serializes");
    let json = |value: &serde_json::Value| {
        let mut bytes = serde_json::to_vec(value).expect("JSON values always serialize");
        bytes.push(b'\n');
        bytes
    };
    let mut files = vec![
        StagedFile::bytes(SCRIPT_FILE, 0o750, script.into_bytes()),
        StagedFile::bytes(SPEC_FILE, 0o640, spec_json),
        StagedFile::bytes(ARGS_FILE, 0o640, json(&spec.args)),
    ];
    let mut dirs = Vec::new();
    if !spec.items.is_empty() {
        dirs.push(ITEMS_DIR.to_string());
        for (index, item) in spec.items.iter().enumerate() {
            files.push(StagedFile::bytes(
                &format!("{ITEMS_DIR}/{index}.json"),
                0o640,
                json(item),
            ));
        }
    }
    if spec.array.is_some() {
        dirs.push(RESULTS_DIR.to_string());
    }
    if has_parts {
        dirs.push(super::split::PARTS_DIR.to_string());
    }
    if let Some(plan) = node_plan {
        dirs.push(".slurmkit".to_string());
        files.push(StagedFile::bytes(NODE_PLAN_FILE, 0o640, plan.to_vec()));
    }
    let inputs = spec
        .inputs
        .iter()
        .map(|input| StagedFile {
            name: input.to.as_str().to_string(),
            // Read-only: a file shared with another job (one copy, linked) is not for writing.
            mode: 0o440,
            content: Content::File(input.source.clone()),
        })
        .collect();
    StagedJob {
        dir_name: dir_name.to_string(),
        files,
        inputs,
        dirs,
        after,
    }
}

/// A later part of a split array: its directory holds only its script and spec (the first part's
/// holds the rest).
pub fn staged_part(dir_name: &str, script: String, spec: &JobSpec, after: String) -> StagedJob {
    let spec_json = serde_json::to_vec_pretty(spec).expect("a job spec always serializes");
    StagedJob {
        dir_name: dir_name.to_string(),
        files: vec![
            StagedFile::bytes(SCRIPT_FILE, 0o750, script.into_bytes()),
            StagedFile::bytes(SPEC_FILE, 0o640, spec_json),
        ],
        inputs: Vec::new(),
        dirs: Vec::new(),
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::names::JobName;
    use crate::types::spec::Payload;

    #[test]
    fn the_prologue_goes_after_the_directives() {
        let script = "#!/bin/bash\n#SBATCH --job-name=\"x\"\n\n# comment\nexec 'hostname'\n";
        let x = JobSpec::new(
            JobName::parse("x").unwrap(),
            Payload::Command(vec!["true".into()]),
        );
        let out = with_prologue(&x, script, "PROLOGUE\n").unwrap();
        assert_eq!(
            out,
            "#!/bin/bash\n#SBATCH --job-name=\"x\"\n\n# comment\nPROLOGUE\nexec 'hostname'\n"
        );
        assert!(with_prologue(&x, "#!/usr/bin/env bash\n", "P\n").is_ok());
        assert!(with_prologue(&x, "#!/bin/csh\necho\n", "P\n").is_err());
        assert!(with_prologue(&x, "echo no shebang\n", "P\n").is_err());
        // A job after another is cancelled if that one fails, unless the renderer chose.
        let mut after = x.clone();
        after.after = vec![crate::types::work::After {
            job: JobName::parse("prep").unwrap(),
            kind: crate::wit::DependencyKind::AfterOk,
        }];
        let out = with_prologue(&after, "#!/bin/sh\ntrue\n", "P\n").unwrap();
        assert_eq!(
            out,
            "#!/bin/sh\n#SBATCH --kill-on-invalid-dep=yes\nP\ntrue\n"
        );
        let chosen = "#!/bin/sh\n#SBATCH --kill-on-invalid-dep=no\ntrue\n";
        assert!(
            !with_prologue(&after, chosen, "P\n")
                .unwrap()
                .contains("=yes")
        );
    }

    /// The prologue as sh runs it: the variables a job of items sees in task 1.
    #[test]
    fn the_prologue_points_a_task_at_its_item_and_result() {
        let mut spec = JobSpec::new(
            JobName::parse("sweep").unwrap(),
            Payload::Command(vec!["true".into()]),
        );
        spec.items = vec![
            serde_json::json!({"lr": 0.1}),
            serde_json::json!({"lr": 0.2}),
        ];
        let deps = [DependencyDir {
            variable: "SLURMKIT_DEP_PREP".into(),
            dir: "/jobs/prep dir".into(),
        }];
        let script = format!(
            "{}printf '%s\\n' \"$SLURMKIT_ARGS\" \"$SLURMKIT_RESULT\" \"$SLURMKIT_DEP_PREP\"\n",
            prologue(&spec, &deps, None, None)
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("SLURM_SUBMIT_DIR", "/jobs/sweep")
            .env("SLURM_ARRAY_TASK_ID", "1")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "/jobs/sweep/items/1.json\n/jobs/sweep/results/1.json\n/jobs/prep dir\n"
        );
    }

    /// A later part of a split array: its task 1 runs item offset + 1, from the first part's directory,
    /// where it moves from its own (the directory it was submitted from).
    #[test]
    fn a_later_part_runs_its_items_in_the_first_parts_directory() {
        let mut spec = JobSpec::new(
            JobName::parse("sweep").unwrap(),
            Payload::Command(vec!["true".into()]),
        );
        spec.items = vec![serde_json::json!({"lr": 0.1})];
        let first = tempfile::tempdir().unwrap();
        let own = tempfile::tempdir().unwrap();
        let first_dir = first.path().display().to_string();
        let part = PartOf {
            first_dir: &first_dir,
            offset: 1000,
        };
        let script = format!(
            "{}printf '%s\\n' \"$SLURMKIT_ITEM\" \"$SLURMKIT_ARGS\" \"$SLURMKIT_RESULT\" \"$PWD\"\n",
            prologue(&spec, &[], None, Some(part))
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .current_dir(own.path())
            .env("SLURM_SUBMIT_DIR", own.path())
            .env("SLURM_ARRAY_TASK_ID", "1")
            .output()
            .unwrap();
        let first_real = first.path().canonicalize().unwrap().display().to_string();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!(
                "1001\n{first_dir}/items/1001.json\n{first_dir}/results/1001.json\n{first_real}\n"
            )
        );
    }
}
