//! The exchange's script through a real `sh`, with fake `sbatch` and `squeue`: the input store across
//! submissions, and sbatch tried again after a submission limit.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::*;
use crate::slurm::store::{STORE_DIR, STORE_THRESHOLD};

fn job(name: &str, inputs: Vec<StagedFile>) -> StagedJob {
    StagedJob {
        dir_name: name.to_string(),
        files: vec![StagedFile::bytes(
            "job.sbatch",
            0o750,
            b"#!/bin/sh\ntrue\n".to_vec(),
        )],
        inputs,
        dirs: Vec::new(),
        after: "-".into(),
    }
}

fn input(name: &str, content: Content) -> StagedFile {
    StagedFile {
        name: name.into(),
        mode: 0o440,
        content,
    }
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory with `bin/` (fake programs first on the PATH) and `jobs/` (the base directory).
struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    base: PathBuf,
}

impl Site {
    fn new(sbatch: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let bin = root.join("bin");
        std::fs::create_dir(&bin).unwrap();
        executable(&bin.join("sbatch"), sbatch);
        Site {
            base: root.join("jobs"),
            _dir: dir,
            root,
            bin,
        }
    }

    /// Run the exchange for `jobs`; the reply and how many bytes the stream carried.
    fn exchange(&self, jobs: &[StagedJob], delay: u32) -> (Reply, Vec<Hashed>, usize) {
        let mut input = Vec::new();
        let mut sent = 0u64;
        let hashed = write_archive(jobs, &mut input, &mut |n| sent += n).unwrap();
        assert_eq!(sent, archive_size(jobs), "progress counts what is sent");
        let command = command_with_delay("N", &self.base.display().to_string(), jobs, delay);
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command.as_str())
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .current_dir(&self.root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        let output = CommandOutput {
            exit: Exit::Code(out.status.code().unwrap()),
            stdout: out.stdout,
            stderr: out.stderr,
        };
        (reply("N", jobs.len(), &output), hashed, input.len())
    }
}

fn outcome(reply: &Reply, index: usize) -> String {
    match &reply.outcomes[index] {
        Outcome::Submitted(id) => format!("id {id}"),
        Outcome::Refused { message, .. } => format!("refused: {message}"),
        Outcome::NotStaged { message } => format!("not staged: {message}"),
        Outcome::Blocked { dependency } => format!("blocked by {dependency}"),
        Outcome::Uncertain { cause } => format!("uncertain: {cause}"),
    }
}

fn manifest_holds(dir: &Path) {
    let check = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", MANIFEST_FILE])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the manifest matches what was staged: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}

const SBATCH_OK: &str = "#!/bin/sh\nbasename \"$PWD\" | tr -cd 0-9; echo\n";

/// A large input sent once is kept in the store; the next submission links it from there instead of
/// sending it, into a directory the stream did not carry; a store entry that is gone fails only its
/// job, saying so; small inputs never go through the store.
#[test]
fn large_inputs_go_through_the_store_across_submissions() {
    let site = Site::new(SBATCH_OK);
    let big = site.root.join("big.bin");
    let content: Vec<u8> = (0..STORE_THRESHOLD + 17).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &content).unwrap();
    let small = site.root.join("small.txt");
    std::fs::write(&small, b"small").unwrap();
    let first = vec![job(
        "j1",
        vec![
            input("data/big.bin", Content::File(big.clone())),
            input("small.txt", Content::File(small.clone())),
        ],
    )];
    let (reply, hashed, first_bytes) = site.exchange(&first, 0);
    assert_eq!(outcome(&reply, 0), "id 1");
    assert_eq!(
        hashed.len(),
        1,
        "only the large input's digest is worth remembering"
    );
    let digest = hashed[0].sha256.clone();
    assert_eq!(
        digest,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content))
    );
    let store = site.base.join(STORE_DIR);
    let entry = store.join(&digest);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&entry), 0o440);
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&entry), ino(&site.base.join("j1/data/big.bin")));
    assert_eq!(
        std::fs::read_dir(&store).unwrap().count(),
        1,
        "small inputs stay out"
    );
    assert!(!site.base.join("j1").join(TO_STORE_FILE).exists());
    manifest_holds(&site.base.join("j1"));

    // The next submission: the store holds it, so it is not sent.
    let stored = Content::Stored {
        source: big.clone(),
        sha256: digest.clone(),
    };
    let gone = Content::Stored {
        source: big.clone(),
        sha256: "0".repeat(64),
    };
    let second = vec![
        job(
            "j2",
            vec![
                input("deep/er/big.bin", stored.clone()),
                input("small.txt", Content::File(small.clone())),
            ],
        ),
        job("j3", vec![input("big.bin", gone)]),
        job("j4", vec![input("again.bin", stored)]),
    ];
    let (reply, hashed, second_bytes) = site.exchange(&second, 0);
    assert!(hashed.is_empty());
    assert!(
        second_bytes < first_bytes / 10,
        "{second_bytes} bytes sent, against {first_bytes}"
    );
    assert_eq!(outcome(&reply, 0), "id 2");
    let j2 = site.base.join("j2");
    assert_eq!(std::fs::read(j2.join("deep/er/big.bin")).unwrap(), content);
    assert_eq!(
        ino(&j2.join("deep/er/big.bin")),
        ino(&entry),
        "linked, not copied"
    );
    assert_eq!(std::fs::metadata(&entry).unwrap().nlink(), 4);
    assert!(!j2.join(FROM_STORE_FILE).exists());
    manifest_holds(&j2);
    let not_staged = outcome(&reply, 1);
    assert!(
        not_staged.starts_with("not staged: input big.bin: ")
            && not_staged.contains("could not be linked or copied from the input store"),
        "{not_staged}"
    );
    assert!(!site.base.join("j3").exists());
    assert_eq!(outcome(&reply, 2), "id 4", "the others go ahead");
    manifest_holds(&site.base.join("j4"));
}

/// Entries nobody links to, unused for a week, are removed by the next exchange; the others stay.
#[test]
fn the_store_forgets_what_nobody_uses() {
    let site = Site::new(SBATCH_OK);
    let store = site.base.join(STORE_DIR);
    std::fs::create_dir_all(&store).unwrap();
    let (unused, linked, recent) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    for name in [&unused, &linked, &recent] {
        std::fs::write(store.join(name), name).unwrap();
    }
    std::fs::hard_link(store.join(&linked), site.base.join("a-job-input")).unwrap();
    let old = std::process::Command::new("touch")
        .args(["-d", "8 days ago"])
        .arg(store.join(&unused))
        .arg(store.join(&linked))
        .status()
        .unwrap();
    assert!(old.success());
    let (reply, _, _) = site.exchange(&[job("j1", Vec::new())], 0);
    assert_eq!(outcome(&reply, 0), "id 1");
    assert!(!store.join(&unused).exists(), "unlinked and old: removed");
    assert!(store.join(&linked).exists(), "a job still links to it");
    assert!(store.join(&recent).exists(), "used lately");
}

/// A site whose sbatch fails with `error` the first `failures` times it runs, then prints an id; it
/// counts its runs in `runs`.
fn flaky(failures: u32, error: &str) -> Site {
    let site = Site::new("");
    let root = site.root.display().to_string();
    std::fs::write(site.root.join("error"), error).unwrap();
    executable(
        &site.bin.join("sbatch"),
        &format!(
            "#!/bin/sh\ncd '{root}' || exit 99\nc=$(cat runs 2>/dev/null || echo 0); c=$((c+1)); echo $c >runs\n\
             if [ $c -le {failures} ]; then cat error >&2; exit 1; fi\necho 42\n"
        ),
    );
    site
}

const LIMIT: &str = "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)";

fn runs(site: &Site) -> String {
    std::fs::read_to_string(site.root.join("runs"))
        .unwrap()
        .trim()
        .to_string()
}

/// A submission limit: sbatch is tried again until it takes the job, and the job directory says so.
#[test]
fn a_submission_limit_is_waited_out() {
    let site = flaky(2, LIMIT);
    let (reply, _, _) = site.exchange(&[job("j1", Vec::new())], 0);
    assert_eq!(outcome(&reply, 0), "id 42");
    assert_eq!(runs(&site), "3");
    let j1 = site.base.join("j1");
    assert_eq!(std::fs::read_to_string(j1.join("job_id")).unwrap(), "42\n");
    assert_eq!(
        std::fs::read_to_string(j1.join(".sbatch.status")).unwrap(),
        "0\n"
    );
    assert_eq!(
        std::fs::read_to_string(j1.join(".sbatch.err")).unwrap(),
        "slurmkit: sbatch was retried 2 times over 0 s\n",
        "the last attempt's stderr only"
    );
}

/// A limit that does not go away: tried a bounded number of times, and the refusal says so.
#[test]
fn a_limit_that_stays_is_a_refusal_after_a_bounded_number_of_tries() {
    let site = flaky(100, LIMIT);
    let (reply, _, _) = site.exchange(&[job("j1", Vec::new())], 0);
    let refused = outcome(&reply, 0);
    assert!(
        refused.starts_with("refused: ") && refused.contains("QOSMaxSubmitJobPerUserLimit"),
        "{refused}"
    );
    assert!(
        refused.ends_with("slurmkit: sbatch was retried 8 times over 0 s"),
        "{refused}"
    );
    assert_eq!(runs(&site), "9");
}

/// Anything else sbatch refuses is not tried again; nor is a limit on the job's own size.
#[test]
fn other_refusals_are_not_retried() {
    for error in [
        "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
        "sbatch: error: QOSMaxWallDurationPerJobLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
    ] {
        let site = flaky(1, error);
        let (reply, _, _) = site.exchange(&[job("j1", Vec::new())], 0);
        let refused = outcome(&reply, 0);
        assert_eq!(refused, format!("refused: {error}"));
        assert_eq!(runs(&site), "1", "{error}");
    }
}

/// After a timeout the job may be queued all the same: sbatch is tried again only when squeue shows
/// no job of this directory, and not at all when squeue cannot tell.
#[test]
fn a_timeout_is_retried_only_when_squeue_shows_no_such_job() {
    let timeout =
        "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation";
    for (squeue, sbatch_runs, result) in [
        ("#!/bin/sh\necho '7|/elsewhere/job.sbatch'\n", "2", "id 42"),
        ("#!/bin/sh\necho \"7|$PWD/job.sbatch\"\n", "1", "uncertain"),
        ("#!/bin/sh\nexit 1\n", "1", "uncertain"),
    ] {
        let site = flaky(1, timeout);
        executable(&site.bin.join("squeue"), squeue);
        let (reply, _, _) = site.exchange(&[job("j1", Vec::new())], 0);
        assert!(
            outcome(&reply, 0).starts_with(result),
            "{squeue}: {}",
            outcome(&reply, 0)
        );
        assert_eq!(runs(&site), sbatch_runs, "{squeue}");
    }
}

/// The waits, with the real base delay (a fake `sleep` records them): doubling up to a minute, at most
/// 8 tries per job, and 5 minutes over the whole exchange, so a second job limited too gets the rest.
#[test]
fn the_waits_double_up_to_a_minute_within_five_minutes_in_all() {
    let site = flaky(100, LIMIT);
    let root = site.root.display().to_string();
    executable(
        &site.bin.join("sleep"),
        &format!("#!/bin/sh\necho \"$1\" >>'{root}/slept'\n"),
    );
    let jobs = [job("j1", Vec::new()), job("j2", Vec::new())];
    let (reply, _, _) = site.exchange(&jobs, SBATCH_RETRY_DELAY_S);
    let slept = std::fs::read_to_string(site.root.join("slept")).unwrap();
    assert_eq!(
        slept.split_whitespace().collect::<Vec<_>>(),
        [
            "2", "4", "8", "16", "32", "60", "60", "60", "2", "4", "8", "16"
        ]
    );
    assert!(
        outcome(&reply, 0).ends_with("retried 8 times over 242 s"),
        "{}",
        outcome(&reply, 0)
    );
    assert!(
        outcome(&reply, 1).ends_with("retried 4 times over 30 s"),
        "{}",
        outcome(&reply, 1)
    );
    assert_eq!(runs(&site), "14");
}
