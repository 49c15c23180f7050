//! The input store on the real cluster: a large input is sent once and linked into later jobs; a file
//! changed here is sent again; a store entry altered on the cluster is sent again when its size or its
//! mode gives it away, and otherwise stops the job at its input check, naming the file.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use slurmkit_e2e::{Project, Run, cluster};

/// 2 MiB no earlier run has sent (the store outlives tests).
fn fresh_content(seed: u64) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            | 1;
    (0..2 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// `submit --wait` with the staging logged: the run, and how many bytes of files it sent.
fn submit(project: &Project) -> (Run, u64) {
    let output = project
        .command(&["submit", "--wait"])
        .env("SLURMKIT_LOG", "warn,slurmkit::lifecycle=debug")
        .output()
        .unwrap();
    let run = Run::new(&["submit", "--wait"], output);
    let sent = run
        .stderr
        .lines()
        .find_map(|line| {
            let rest = &line[line.find("sending ")? + "sending ".len()..];
            rest.strip_suffix(" bytes of files")?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no byte count logged:\n{}", run.stderr));
    (run, sent)
}

fn base() -> PathBuf {
    cluster().user_home.join("slurm_jobs")
}

/// The job directory of the job `run` submitted (named `name`).
fn dir_of(name: &str, run: &Run) -> PathBuf {
    let id = run.first_line();
    cluster()
        .job_dirs_named(name)
        .into_iter()
        .map(|dir| base().join(dir))
        .find(|dir| std::fs::read_to_string(dir.join("job_id")).is_ok_and(|text| text.trim() == id))
        .unwrap_or_else(|| panic!("no job directory holds job {id}"))
}

fn inode(path: &std::path::Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

fn on_cluster(command: &str) {
    let out = cluster().plain_ssh(command).output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_large_input_is_sent_once_and_linked_from_the_store() {
    let project = Project::new();
    let name = project.unique_name();
    let content = fresh_content(1);
    let digest = sha256(&content);
    std::fs::create_dir_all(project.path().join("data")).unwrap();
    let local = project.path().join("data/big.bin");
    std::fs::write(&local, &content).unwrap();
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"{name}\"\ninputs = [\"data/big.bin\"]\ntime = \"1m\"\ncommand = [\"sha256sum\", \"data/big.bin\"]\n",
        cluster().cluster_table()
    ));
    let logs = |run: &Run| project.run(&["logs", &run.first_line()]).stdout.clone();

    // First submission: sent whole, and kept in the store.
    let started = std::time::Instant::now();
    let (first, first_sent) = submit(&project);
    first.ok();
    let first_time = started.elapsed();
    assert!(first_sent >= 2 << 20, "{first_sent}");
    assert!(logs(&first).contains(&digest), "{}", logs(&first));
    let entry = base().join(".slurmkit/store").join(&digest);
    let job1 = dir_of(&name, &first).join("data/big.bin");
    assert_eq!(inode(&entry), inode(&job1), "the store keeps the copy sent");

    // Second: not sent; the job's input is the same file on the cluster, and reads the same.
    let started = std::time::Instant::now();
    let (second, second_sent) = submit(&project);
    second.ok();
    let second_time = started.elapsed();
    assert!(second_sent < 64 << 10, "{second_sent} bytes sent again");
    assert!(logs(&second).contains(&digest), "{}", logs(&second));
    let job2 = dir_of(&name, &second).join("data/big.bin");
    assert_eq!(inode(&job2), inode(&entry), "linked from the store");
    assert_eq!(std::fs::read(&job2).unwrap(), content);
    eprintln!(
        "first submission sent {first_sent} bytes in {first_time:?}; the second {second_sent} bytes in {second_time:?}"
    );

    // Changed here: sent again, and the job reads the new content.
    let changed = fresh_content(2);
    let changed_digest = sha256(&changed);
    std::fs::write(&local, &changed).unwrap();
    let (third, third_sent) = submit(&project);
    third.ok();
    assert!(third_sent >= 2 << 20, "{third_sent}");
    assert!(logs(&third).contains(&changed_digest), "{}", logs(&third));

    // Its store entry altered on the cluster, to another size: found out, sent again, replaced.
    let changed_entry = base().join(".slurmkit/store").join(&changed_digest);
    on_cluster(&format!(
        "chmod u+w {0} && echo tampered >> {0}",
        changed_entry.display()
    ));
    let (fourth, fourth_sent) = submit(&project);
    fourth.ok();
    assert!(fourth_sent >= 2 << 20, "sent again: {fourth_sent}");
    assert!(logs(&fourth).contains(&changed_digest), "{}", logs(&fourth));
    let job4 = dir_of(&name, &fourth).join("data/big.bin");
    assert_eq!(
        inode(&changed_entry),
        inode(&job4),
        "the entry was replaced"
    );
    assert_eq!(std::fs::read(&changed_entry).unwrap(), changed);

    // Altered to the same size and left writable: not trusted, sent again.
    on_cluster(&format!(
        "chmod u+w {0} && printf X | dd of={0} bs=1 seek=1000 conv=notrunc 2>/dev/null",
        changed_entry.display()
    ));
    let (again, again_sent) = submit(&project);
    again.ok();
    assert!(again_sent >= 2 << 20, "sent again: {again_sent}");
    assert_eq!(std::fs::read(&changed_entry).unwrap(), changed);

    // Altered to the same size and made read-only again: linked all the same, and the job's input
    // check stops it, naming the file, before its payload runs.
    on_cluster(&format!(
        "chmod u+w {0} && printf X | dd of={0} bs=1 seek=1000 conv=notrunc 2>/dev/null && chmod 440 {0}",
        changed_entry.display()
    ));
    let (fifth, fifth_sent) = submit(&project);
    fifth.expect_code(10);
    assert!(fifth_sent < 64 << 10, "{fifth_sent}");
    let id = fifth.first_line();
    project
        .run(&["logs", &id, "--stderr"])
        .ok()
        .stdout_contains("data/big.bin: FAILED")
        .stdout_contains("an input differs from what was staged");
    assert!(!project.run(&["logs", &id]).stdout.contains("data/big.bin"));
}
