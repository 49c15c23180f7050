//! Submitting jobs in one exchange: one remote command stages every job's directory and runs sbatch
//! for each, so a submission costs one channel on an authenticated connection, whatever the number of
//! jobs, and a handful of processes on the login node besides one sbatch per job.
//!
//! The job directories travel as one tar stream on the command's standard input, unpacked into a fresh
//! private staging directory (`mkdir -m 700`, which fails if it exists) next to where they belong, then
//! moved into place without replacing anything (`mv -n`): a job directory appears whole or not at all,
//! and never over an existing one. Then `sbatch --parsable` runs in each, its output going to
//! [`JOB_ID_FILE`] and its exit status to [`SBATCH_STATUS_FILE`]: the id is read from that file, never
//! from what a login shell prints, and a submission whose reply is lost is recovered from it later.
//! Every reply line starts with a random nonce, so nothing a chatty login shell prints can pass for one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{SlurmError, parse_parsable};
use crate::exec::{CommandOutput, Exit};
use crate::types::job_dir::{
    JOB_ID_FILE, SBATCH_CLAIM_FILE, SBATCH_ERROR_FILE, SBATCH_STATUS_FILE, SCRIPT_FILE,
};
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;

/// The script, one line (a csh login shell rejects a quoted newline). Arguments: the nonce, the base
/// directory, the staging directory, the base delay between sbatch attempts in seconds, then for each
/// job its directory's name and what it runs after (`-`, or sbatch's `--dependency` syntax where
/// `@<directory>` stands for the id of a job submitted earlier in this run, read from its `job_id`; a
/// job whose dependency was not submitted is not either).
/// `set -C` makes every `>` an exclusive create: nothing is overwritten, and `.sbatch.claim` is an
/// atomic claim on running sbatch in a directory, which a recovery that gives up on the directory takes
/// first (see [`super::recover`]). The umask for the staged files is set only where they are unpacked:
/// sbatch hands its own umask to the job.
///
/// Inputs go through the store ([`super::store`]) after unpacking, before the directories move into
/// place: each job's [`FROM_STORE_FILE`] lines are linked (or copied) from the store, its
/// [`TO_STORE_FILE`] lines linked into it (replacing an entry by a new name and a rename).
///
/// sbatch is tried again, waiting the base delay, then twice as long each time up to 30 times it
/// (2, 4, ... 60 s), at most 8 times and 150 base delays over the whole exchange (5 minutes), when it
/// says a submission limit was reached (`...SubmitJob...` limits, or Slurm's accounting policy error
/// naming no other limit) or the controller could not take the job; for the errors after which
/// the job may be queued all the same (a timeout, a lost connection), only when `squeue` shows no job
/// of this directory's script. Each attempt's `job_id` and `.sbatch.err` are removed before the next,
/// so they and `.sbatch.status` are the last attempt's, and `.sbatch.err` ends with how many times it
/// was retried over how long.
const SCRIPT: &str = concat!(
    r#"n=$1; base=$2; stage=$3; d0=$4; shift 4; set -C; printf '%s home %s\n' "$n" "$HOME"; st=$base/.slurmkit/store; waited=0; "#,
    r#"say() { printf '%s\n' "$3" | while IFS= read -r l || [ -n "$l" ]; do [ -n "$l" ] && printf '%s %s %s %s\n' "$n" "$1" "$2" "$l"; done; }; "#,
    // Staging directories left by a killed run, a day old or more (a big upload takes hours at worst,
    // and its directory's time does not change while a file streams in).
    r#"for s in "$base"/.slurmkit-stage-*; do [ -d "$s" ] && find "$base" -maxdepth 1 -name '.slurmkit-stage-*' -mmin +1440 -exec rm -rf {} + 2>/dev/null; break; done; "#,
    // Store entries no job directory links to any more, unused for 7 days (see store::STORE_KEEP_DAYS).
    r#"[ -d "$st" ] && find "$st" -maxdepth 1 -type f -links 1 -mmin +10080 -exec rm -f {} + 2>/dev/null; "#,
    // The stream ends with `.slurmkit-complete`: a stream cut short (an input unreadable on the way) is a
    // valid but shorter archive to tar, and must not be submitted.
    r#"if e=$(umask 027; mkdir -p -- "$base" 2>&1 && mkdir -m 700 -- "$stage" 2>&1 && tar -x -f - -C "$stage" 2>&1) && "#,
    r#"{ [ -f "$stage/.slurmkit-complete" ] || { e="the upload was cut short"; false; }; }; then "#,
    // The store, for each job's directory (the odd arguments): a job whose input cannot come from it
    // is not moved into place, and says why.
    r#"m=0; for a; do m=$((m+1)); [ $((m%2)) = 1 ] && [ -d "$stage/$a" ] || continue; j=$stage/$a; f=$j/.slurmkit/from-store; t=$j/.slurmkit/to-store; "#,
    r#"if [ -f "$f" ]; then while IFS= read -r l; do h=${l%% *}; p=${l#* }; ln -- "$st/$h" "$j/$p" 2>/dev/null || cp -- "$st/$h" "$j/$p" 2>/dev/null || "#,
    r#"{ printf 'input %s: %s could not be linked or copied from the input store; submit again to send it\n' "$p" "$st/$h" >"$stage/.x-$((m/2))"; rm -rf -- "$j"; break; }; done <"$f"; rm -f -- "$f"; fi; "#,
    r#"if [ -f "$t" ]; then [ -d "$st" ] || mkdir -p -m 700 -- "$st" 2>/dev/null; while IFS= read -r l; do h=${l%% *}; p=${l#* }; "#,
    r#"ln -- "$j/$p" "$st/.new-$n-$h" 2>/dev/null && mv -f -- "$st/.new-$n-$h" "$st/$h"; done <"$t"; rm -f -- "$t"; fi; done; "#,
    r#"mv -n -- "$stage"/* "$base"/ 2>/dev/null; ok=1; else ok=0; fi; "#,
    r#"i=0; while [ $# -ge 2 ]; do d=$1; w=$2; shift 2; dep=; bad=; "#,
    // Resolve `@<directory>` to the id sbatch wrote there (its last line, before any `;cluster`).
    // The id is read as the host reads it (slurm::parse_parsable): the last non-blank line, trimmed,
    // before any `;cluster`.
    r#"if [ "$w" != - ]; then set -f; for c in $(printf '%s\n' "$w" | tr , ' '); do o=${c%%:*}; case $c in *:*) "#,
    r#"for r in $(printf '%s\n' "${c#*:}" | tr : ' '); do case $r in @*) "#,
    r#"id=$(awk 'NF{l=$0} END{sub(/^[ \t]+/,"",l); sub(/[ \t]+$/,"",l); sub(/;.*/,"",l); print l}' "$base/${r#@}/job_id" 2>/dev/null); "#,
    r#"case $id in ''|*[!0-9_]*) bad=${r#@};; esac;; *) id=$r;; esac; o=$o:$id; done;; esac; dep=${dep:+$dep,}$o; done; set +f; fi; "#,
    r#"if [ -n "$bad" ]; then printf '%s blocked %s %s\n' "$n" "$i" "$bad"; "#,
    r#"elif [ $ok = 1 ] && [ ! -e "$stage/$d" ] && cd -- "$base/$d" && : 2>/dev/null >.sbatch.claim; then printf '%s staged %s\n' "$n" "$i"; "#,
    r#"k=0; kw=0; z=$d0; while :; do sbatch --parsable ${dep:+"--dependency=$dep"} job.sbatch >job_id 2>.sbatch.err; r=$?; "#,
    r#"[ $r = 0 ] || [ $k -ge 8 ] || [ $((waited+z)) -gt $((d0*150)) ] && break; "#,
    r#"case $(cat .sbatch.err) in *SubmitJob*) ;; *Limit*) break;; *'Job violates accounting/QOS policy'*|*'job submit limit'*) ;; "#,
    r#"*'Socket timed out'*|*'Unable to contact slurm controller'*|*'Resource temporarily unavailable'*|*'temporarily unable to accept job'*) "#,
    r#"q=$(squeue --noheader --me --states=all '--Format=JobArrayID:|,Command:' 2>/dev/null) || break; case $q in *"/$d/job.sbatch"*) break;; esac;; "#,
    r#"*) break;; esac; rm -f job_id .sbatch.err; sleep $z; waited=$((waited+z)); kw=$((kw+z)); k=$((k+1)); z=$((z*2)); [ $z -gt $((d0*30)) ] && z=$((d0*30)); done; "#,
    r#"[ $k -gt 0 ] && printf 'slurmkit: sbatch was retried %s times over %s s\n' "$k" "$kw" >>.sbatch.err; printf '%s\n' "$r" >.sbatch.status; "#,
    r#"if [ $r = 0 ]; then while IFS= read -r l || [ -n "$l" ]; do printf '%s id %s %s\n' "$n" "$i" "$l"; done <job_id; "#,
    r#"else printf '%s refused %s %s\n' "$n" "$i" "$r"; say err "$i" "$(cat .sbatch.err)"; fi; "#,
    r#"else printf '%s unstaged %s\n' "$n" "$i"; "#,
    r#"[ $ok = 1 ] && e="$base/$d exists already, could not be moved there, or was given up by a recovery"; "#,
    r#"[ -f "$stage/.x-$i" ] && e=$(cat "$stage/.x-$i"); "#,
    r#"say err "$i" "$e"; fi; i=$((i+1)); done; cd /; rm -rf -- "$stage""#,
);

/// The first wait before sbatch is tried again, in seconds (see [`SCRIPT`]).
pub const SBATCH_RETRY_DELAY_S: u32 = 2;

// The script spells the job directory's file names out; they must be the ones the host reads.
const _: () = {
    assert!(matches!(SCRIPT_FILE.as_bytes(), b"job.sbatch"));
    assert!(matches!(JOB_ID_FILE.as_bytes(), b"job_id"));
    assert!(matches!(SBATCH_ERROR_FILE.as_bytes(), b".sbatch.err"));
    assert!(matches!(SBATCH_STATUS_FILE.as_bytes(), b".sbatch.status"));
    assert!(matches!(SBATCH_CLAIM_FILE.as_bytes(), b".sbatch.claim"));
};

/// What a staged file holds.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Vec<u8>),
    /// A local file, read while the stream is written.
    File(PathBuf),
    /// A local file the cluster's input store holds under this sha256 (hex): not sent, linked from
    /// the store into the job directory ([`super::store`]).
    Stored {
        source: PathBuf,
        sha256: String,
    },
}

/// One file to write into a job directory.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// Its path in the job directory (relative, checked).
    pub name: String,
    pub mode: u32,
    pub content: Content,
}

impl StagedFile {
    pub fn bytes(name: &str, mode: u32, bytes: Vec<u8>) -> Self {
        StagedFile {
            name: name.to_string(),
            mode,
            content: Content::Bytes(bytes),
        }
    }
}

/// One job: its directory's name (under the base directory; it must not exist yet), its files (among
/// them [`SCRIPT_FILE`]), its inputs (followed by their sha256 manifest, [`MANIFEST_FILE`], made from
/// the bytes sent), the empty directories it needs, and what it runs after (`-` or sbatch's syntax
/// with `@<directory>` for a job earlier in the same run).
#[derive(Debug, Clone)]
pub struct StagedJob {
    pub dir_name: String,
    pub files: Vec<StagedFile>,
    pub inputs: Vec<StagedFile>,
    pub dirs: Vec<String>,
    pub after: String,
}

/// The manifest the job checks its inputs against before its payload runs (`sha256sum --check`).
pub const MANIFEST_FILE: &str = ".slurmkit/inputs.sha256";

/// In the stream only (the exchange removes them): `<sha256> <name>` lines, one per input to link from
/// the store into the job directory, and one per input sent that the store should keep.
pub const FROM_STORE_FILE: &str = ".slurmkit/from-store";
pub const TO_STORE_FILE: &str = ".slurmkit/to-store";

pub use super::archive::{Hashed, archive_size, write_archive};

/// The command submitting `jobs`, in order, into `base` (absolute); its standard input is
/// [`write_archive`]'s stream.
pub fn command(nonce: &str, base: &str, jobs: &[StagedJob]) -> ShellCommand {
    command_with_delay(nonce, base, jobs, SBATCH_RETRY_DELAY_S)
}

/// [`command`], waiting `delay` seconds (then twice as long, ...) before trying sbatch again.
fn command_with_delay(nonce: &str, base: &str, jobs: &[StagedJob], delay: u32) -> ShellCommand {
    let stage = format!("{base}/.slurmkit-stage-{nonce}");
    let mut command = ShellCommand::sh("stage and sbatch", SCRIPT)
        .arg(nonce)
        .arg(base)
        .arg(&stage)
        .arg(delay.to_string());
    for job in jobs {
        command = command.arg(&job.dir_name).arg(&job.after);
    }
    command
}

/// How one job's submission ended.
#[derive(Debug)]
pub enum Outcome {
    /// sbatch queued it with this id.
    Submitted(JobId),
    /// sbatch refused it (nothing was queued); its exit status and what it said.
    Refused { status: String, message: String },
    /// Its directory or files could not be written, so sbatch never ran.
    NotStaged { message: String },
    /// A job it runs after (this directory name) was not submitted, so it was not either.
    Blocked { dependency: String },
    /// It may or may not be queued (the reply was cut short, or sbatch printed no id): the job
    /// directory will tell.
    Uncertain { cause: SlurmError },
}

/// What the exchange reported.
#[derive(Debug)]
pub struct Reply {
    /// The remote `$HOME`, for resolving `~` next time.
    pub home: Option<String>,
    /// One outcome per job, in order.
    pub outcomes: Vec<Outcome>,
    /// Per job, whether its files were written (sbatch was about to run).
    pub staged: Vec<bool>,
}

/// The lines of `text` that were written whole (a reply cut short may end in half a line).
pub(super) fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
}

/// Read the reply to [`command`] for `count` jobs.
pub fn reply(nonce: &str, count: usize, output: &CommandOutput) -> Reply {
    #[derive(Default)]
    struct Lines {
        staged: bool,
        id: Vec<String>,
        refused: Option<String>,
        unstaged: bool,
        blocked: Option<String>,
        err: Vec<String>,
    }
    let mut home = None;
    let mut jobs: BTreeMap<usize, Lines> = BTreeMap::new();
    let text = output.stdout_text();
    for line in complete_lines(&text) {
        let Some(rest) = line.strip_prefix(nonce).and_then(|r| r.strip_prefix(' ')) else {
            continue;
        };
        let (tag, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if tag == "home" {
            home = Some(rest.to_string());
            continue;
        }
        let (index, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let job = jobs.entry(index).or_default();
        match tag {
            "staged" => job.staged = true,
            "id" => job.id.push(value.to_string()),
            "refused" => job.refused = Some(value.to_string()),
            "unstaged" => job.unstaged = true,
            "blocked" => job.blocked = Some(value.to_string()),
            "err" if !value.is_empty() => job.err.push(value.to_string()),
            _ => {}
        }
    }
    let cut_short = || match &output.exit {
        Exit::Unknown => "the connection closed before the reply was complete".to_string(),
        exit => format!(
            "the submission script ended ({exit}) without saying how sbatch went: {}",
            output.stderr_text().trim()
        ),
    };
    let mut staged = Vec::with_capacity(count);
    let outcomes = (0..count)
        .map(|index| {
            let job = jobs.remove(&index).unwrap_or_default();
            staged.push(job.staged);
            let message = job.err.join("\n");
            if !job.id.is_empty() {
                match parse_parsable(&job.id.join("\n")) {
                    Ok(id) => Outcome::Submitted(id),
                    Err(cause) => Outcome::Uncertain { cause },
                }
            } else if let Some(status) = job.refused {
                if super::surely_refused(&status, &message) {
                    Outcome::Refused { status, message }
                } else {
                    // Killed, or a lost reply from a busy controller: the job may be queued.
                    Outcome::Uncertain {
                        cause: SlurmError::UnclearRefusal { status, message },
                    }
                }
            } else if let Some(dependency) = job.blocked {
                Outcome::Blocked { dependency }
            } else if job.unstaged {
                Outcome::NotStaged { message }
            } else {
                Outcome::Uncertain {
                    cause: SlurmError::UnreadableReply {
                        reason: cut_short(),
                    },
                }
            }
        })
        .collect();
    Reply {
        home,
        outcomes,
        staged,
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod exchange_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, script: &str) -> StagedJob {
        StagedJob {
            dir_name: name.to_string(),
            files: vec![
                StagedFile::bytes("job.sbatch", 0o750, script.as_bytes().to_vec()),
                StagedFile::bytes("job.json", 0o640, b"{}".to_vec()),
            ],
            inputs: Vec::new(),
            dirs: Vec::new(),
            after: "-".into(),
        }
    }

    /// Run `script` in a real `sh` with `bin` first on the PATH (a fake sbatch), `input` on stdin.
    fn run_script(script: &str, bin: &std::path::Path, input: &[u8]) -> CommandOutput {
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        CommandOutput {
            exit: Exit::Code(out.status.code().unwrap()),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    fn archive(jobs: &[StagedJob]) -> Vec<u8> {
        let mut out = Vec::new();
        write_archive(jobs, &mut out, &mut |_| {}).unwrap();
        out
    }

    /// The script as a real `sh` runs it, with a fake `sbatch` on the PATH: files land byte for byte
    /// with their modes, every job gets its outcome, an existing directory is left alone, and a chatty
    /// shell cannot fake a reply.
    #[test]
    fn the_script_stages_and_submits_through_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let sbatch = bin.join("sbatch");
        // Refuses scripts that say so; otherwise prints an id made from the directory's name.
        std::fs::write(
            &sbatch,
            "#!/bin/sh\necho \"$@\" >sbatch.args\nfor last; do :; done\nif grep -q refuse \"$last\"; then echo 'sbatch: error: refused' >&2; exit 1; fi\necho \"noise from a wrapper\"\nbasename \"$PWD\" | tr -cd 0-9; echo ';cluster'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
        let base = dir.path().join("jobs");
        let existing = base.join("j3");
        std::fs::create_dir_all(&existing).unwrap();
        std::fs::write(existing.join("job.sbatch"), "mine").unwrap();
        let weird = "#!/bin/bash\necho 'x; $(id)' \"`id`\"\n\0binary\x01\n";
        let input_file = dir.path().join("data.csv");
        std::fs::write(&input_file, "a,b\n1,2\n").unwrap();
        let mut j5 = job("j5", "#!/bin/bash\ntrue\n");
        j5.after = "afterok:@j1:@j4,afterany:77".into();
        j5.inputs = vec![StagedFile {
            name: "data/in.csv".into(),
            mode: 0o640,
            content: Content::File(input_file.clone()),
        }];
        j5.dirs = vec!["results".into()];
        let mut j4 = job("j4", "#!/bin/bash\ntrue\n");
        j4.inputs = vec![StagedFile {
            name: "shared.csv".into(),
            mode: 0o440,
            content: Content::File(input_file.clone()),
        }];
        let mut j6 = job("j6", "#!/bin/bash\ntrue\n");
        j6.after = "afterok:@j2".into();
        let jobs = vec![
            job("j1", weird),
            job("j2", "#!/bin/bash\nrefuse\n"),
            job("j3", "#!/bin/bash\n"),
            j4,
            j5,
            j6,
        ];
        let command = command("NONCE", &base.display().to_string(), &jobs);
        let input = archive(&jobs);
        // A chatty shell prints lines that look like replies, without the nonce.
        let script = format!("echo 'OTHER id 0 666'; echo 'id 0 7'; {}", command.as_str());
        let output = run_script(&script, &bin, &input);
        let reply = reply("NONCE", 6, &output);
        assert!(reply.home.is_some());
        let outcomes: Vec<String> = reply
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Submitted(id) => format!("id {id}"),
                Outcome::Refused { message, .. } => format!("refused: {message}"),
                Outcome::NotStaged { message } => format!("not staged: {message}"),
                Outcome::Blocked { dependency } => format!("blocked by {dependency}"),
                Outcome::Uncertain { cause } => format!("uncertain: {cause}"),
            })
            .collect();
        assert_eq!(
            outcomes[0], "id 1",
            "the id sbatch wrote, not the shell's lines: {outcomes:?}"
        );
        assert_eq!(outcomes[1], "refused: sbatch: error: refused");
        assert!(
            outcomes[2].starts_with("not staged: ") && outcomes[2].contains("exists already"),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[3], "id 4", "the jobs after a failure still go");
        assert_eq!(outcomes[4], "id 5");
        assert_eq!(
            std::fs::read_to_string(base.join("j5/sbatch.args")).unwrap(),
            "--parsable --dependency=afterok:1:4,afterany:77 job.sbatch\n",
            "earlier jobs' ids, read from their directories"
        );
        assert_eq!(outcomes[5], "blocked by j2", "its dependency was refused");
        assert!(!base.join("j6/job_id").exists(), "sbatch never ran for j6");
        assert_eq!(reply.staged, [true, true, false, true, true, false]);
        let j5 = base.join("j5");
        assert_eq!(
            std::fs::read_to_string(j5.join("data/in.csv")).unwrap(),
            "a,b\n1,2\n"
        );
        assert!(j5.join("results").is_dir());
        use std::os::unix::fs::MetadataExt;
        let (shared, copy) = (
            std::fs::metadata(base.join("j4/shared.csv")).unwrap(),
            std::fs::metadata(j5.join("data/in.csv")).unwrap(),
        );
        assert_eq!(
            shared.ino(),
            copy.ino(),
            "sent once, linked into the second job"
        );
        let check = std::process::Command::new("sha256sum")
            .args(["--check", "--strict", MANIFEST_FILE])
            .current_dir(&j5)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "the manifest matches what was staged: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let j1 = base.join("j1");
        assert_eq!(
            std::fs::read(j1.join("job.sbatch")).unwrap(),
            weird.as_bytes()
        );
        assert_eq!(std::fs::read(j1.join("job.json")).unwrap(), b"{}");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&j1), 0o700);
        assert_eq!(mode(&j1.join("job.sbatch")), 0o750);
        assert_eq!(mode(&j1.join("job.json")), 0o640);
        assert_eq!(
            std::fs::read_to_string(j1.join("job_id")).unwrap(),
            "noise from a wrapper\n1;cluster\n"
        );
        assert_eq!(
            std::fs::read_to_string(base.join("j2/.sbatch.status")).unwrap(),
            "1\n"
        );
        assert_eq!(
            std::fs::read_to_string(existing.join("job.sbatch")).unwrap(),
            "mine",
            "an existing directory is never written into"
        );
        let mut names: Vec<String> = std::fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["j1", "j2", "j3", "j4", "j5", "j6"],
            "no staging directory left behind"
        );
    }

    /// An input that cannot be read ends the stream early, as a valid but shorter archive: the script
    /// sees no end mark and submits nothing, not even the jobs that arrived whole.
    #[test]
    fn an_upload_cut_short_submits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("sbatch"), "#!/bin/sh\necho 1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("sbatch"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let base = dir.path().join("jobs");
        let mut broken = job("j2", "#!/bin/bash\n");
        broken.inputs = vec![StagedFile {
            name: "gone.csv".into(),
            mode: 0o440,
            content: Content::File(dir.path().join("deleted-since-planning.csv")),
        }];
        let jobs = vec![job("j1", "#!/bin/bash\n"), broken];
        let mut input = Vec::new();
        assert!(write_archive(&jobs, &mut input, &mut |_| {}).is_err());
        let command = command("N", &base.display().to_string(), &jobs);
        let output = run_script(command.as_str(), &bin, &input);
        let reply = reply("N", 2, &output);
        for outcome in &reply.outcomes {
            assert!(
                matches!(outcome, Outcome::NotStaged { message } if message.contains("cut short")),
                "{outcome:?}"
            );
        }
        assert!(!base.join("j1").exists(), "nothing moved into place");
    }

    #[test]
    fn a_reply_cut_short_leaves_the_outcome_uncertain() {
        let output = CommandOutput {
            exit: Exit::Unknown,
            stdout: b"N home /h\nN staged 0\n".to_vec(),
            stderr: Vec::new(),
        };
        let reply = reply("N", 2, &output);
        assert_eq!(reply.home.as_deref(), Some("/h"));
        assert!(matches!(reply.outcomes[0], Outcome::Uncertain { .. }));
        assert!(matches!(reply.outcomes[1], Outcome::Uncertain { .. }));
        assert_eq!(reply.staged, [true, false]);
    }
}
