//! Harness for the end-to-end tests: the real `slurmkit` binary against the real sshd and Slurm that
//! `tests/cluster/up` starts. Each test gets its own project directory, HOME and journal, so tests run
//! in parallel without sharing state (except the cluster itself).

/// Paths of the guest plugins `build.rs` built (see `tests/build.rs`).
pub mod artifacts {
    include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
}

pub mod bench;
pub mod proxy;
pub mod pty;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What `tests/cluster/up` wrote to `$SLURMKIT_CLUSTER_DIR/cluster.json`.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub dir: PathBuf,
    pub host: String,
    pub port: u16,
    pub jump_port: u16,
    pub user: String,
    pub user_home: PathBuf,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub host_key_pub: PathBuf,
    pub host_key: PathBuf,
    pub jump_host_key_pub: PathBuf,
    pub user_ca: PathBuf,
    pub host_ca: PathBuf,
    pub authorized_dir: PathBuf,
    pub slurm_conf: PathBuf,
}

/// The running test cluster. Panics with instructions when it is not up.
pub fn cluster() -> &'static Cluster {
    cluster_if_up().unwrap_or_else(|| {
        panic!(
            "cannot read {}: start the test cluster first with `sudo tests/cluster/up`",
            cluster_json().display()
        )
    })
}

/// Where `tests/cluster/up` describes the cluster.
fn cluster_json() -> PathBuf {
    let dir =
        std::env::var("SLURMKIT_CLUSTER_DIR").unwrap_or_else(|_| "/tmp/slurmkit-cluster".into());
    Path::new(&dir).join("cluster.json")
}

/// The test cluster, if it is up: commands that never reach it (`render`, `plugin`) run without.
pub fn cluster_if_up() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let text = std::fs::read_to_string(cluster_json()).ok()?;
            Some(read_cluster(&text))
        })
        .as_ref()
}

fn read_cluster(text: &str) -> Cluster {
    let json: serde_json::Value = serde_json::from_str(text).expect("cluster.json is JSON");
    let s = |key: &str| {
        json[key]
            .as_str()
            .unwrap_or_else(|| panic!("cluster.json lacks {key}"))
            .to_string()
    };
    let p = |key: &str| PathBuf::from(s(key));
    let port = |key: &str| {
        json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("cluster.json lacks {key}")) as u16
    };
    Cluster {
        dir: p("dir"),
        host: s("host"),
        port: port("port"),
        jump_port: port("jump_port"),
        user: s("user"),
        user_home: p("user_home"),
        key: p("key"),
        known_hosts: p("known_hosts"),
        host_key_pub: p("host_key_pub"),
        host_key: p("host_key"),
        jump_host_key_pub: p("jump_host_key_pub"),
        user_ca: p("user_ca"),
        host_ca: p("host_ca"),
        authorized_dir: p("authorized_dir"),
        slurm_conf: p("slurm_conf"),
    }
}

impl Cluster {
    /// A `[cluster]` table for this cluster (SSH, `reject`, its known_hosts and key).
    pub fn cluster_table(&self) -> String {
        format!(
            "[cluster]\nhostname = \"{}\"\nport = {}\nusername = \"{}\"\nhost_key_policy = \"reject\"\nkey_filename = \"{}\"\nknown_hosts = \"{}\"\n",
            self.host,
            self.port,
            self.user,
            self.key.display(),
            self.known_hosts.display()
        )
    }

    /// A `[cluster]` table reaching the login host through `port` (a proxy in front of it), with a
    /// known_hosts file for that port written into `project`.
    pub fn cluster_table_via(&self, project: &Project, port: u16) -> String {
        let key = std::fs::read_to_string(&self.host_key_pub).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let known = project.write(
            "known_hosts_via",
            &format!("[{}]:{port} {}\n", self.host, key.join(" ")),
        );
        format!(
            "[cluster]\nhostname = \"{}\"\nport = {port}\nusername = \"{}\"\nhost_key_policy = \"reject\"\nkey_filename = \"{}\"\nknown_hosts = \"{}\"\n",
            self.host,
            self.user,
            self.key.display(),
            known.display()
        )
    }

    /// The address of the login host, for a proxy to forward to.
    pub fn address(&self) -> std::net::SocketAddr {
        format!("{}:{}", self.host, self.port).parse().unwrap()
    }

    /// Plain OpenSSH to the login host with the cluster's key and known_hosts: the baseline slurmkit is
    /// compared with, and a way to set up the cluster behind slurmkit's back.
    pub fn plain_ssh(&self, remote: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(["-F", "/dev/null", "-p", &self.port.to_string(), "-i"])
            .arg(&self.key)
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg(format!("{}@{}", self.user, self.host))
            .arg(remote);
        command
    }

    /// Job directories on the cluster whose name starts with `prefix` (a job name unique to one test),
    /// for "nothing was created" checks that hold while other tests submit in parallel.
    pub fn job_dirs_named(&self, prefix: &str) -> Vec<String> {
        self.job_dirs()
            .into_iter()
            .filter(|d| d.starts_with(&format!("{prefix}-")))
            .collect()
    }

    /// The job directories on the cluster.
    pub fn job_dirs(&self) -> Vec<String> {
        let base = self.user_home.join("slurm_jobs");
        let mut names: Vec<String> = std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// The `slurmkit` binary under test: `$SLURMKIT_BIN`, or next to this test executable's target dir.
pub fn slurmkit_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SLURMKIT_BIN") {
        return PathBuf::from(bin);
    }
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>/slurmkit
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("slurmkit"))
            .expect("target dir");
        let built = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| {
                panic!(
                    "{} does not exist: build it first with `cargo build -p slurmkit`",
                    bin.display()
                )
            });
        // `cargo test -p slurmkit-e2e` does not rebuild another package's binary: refuse a stale one
        // rather than test old code.
        let root = repo_root();
        let sources = [
            "host/src",
            "host/Cargo.toml",
            "wit",
            "plugins/renderer-default/src",
        ];
        if let Some((newer, _)) = sources
            .iter()
            .flat_map(|p| files_with_mtime(&root.join(p)))
            .find(|(_, modified)| *modified > built)
        {
            panic!(
                "{} is older than {}: rebuild it with `cargo build -p slurmkit`",
                bin.display(),
                newer.display()
            );
        }
        bin
    })
    .clone()
}

/// Every file under `path`, with its modification time.
fn files_with_mtime(path: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Vec::new();
    };
    if meta.is_file() {
        return meta
            .modified()
            .map(|m| vec![(path.to_path_buf(), m)])
            .unwrap_or_default();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| files_with_mtime(&entry.path()))
        .collect()
}

/// `target/e2e-plugin-cache`, next to the binary under test.
fn shared_cache_dir() -> PathBuf {
    slurmkit_bin()
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("e2e-plugin-cache"))
        .expect("target dir")
}

/// A throwaway project: a directory for the Slurmfile, a HOME, and a journal.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("slurmkit-e2e-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home/.ssh")).unwrap();
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A job name no other test uses.
    pub fn unique_name(&self) -> String {
        let suffix: String = self
            .dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        format!("t{}", &suffix[suffix.len().saturating_sub(8)..])
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Copy a built plugin into the project's `plugins/`, returning its path relative to the Slurmfile.
    pub fn install_plugin(&self, built: &str) -> String {
        install_plugin(self.path(), built)
    }

    pub fn slurmfile(&self, contents: &str) -> PathBuf {
        self.write("Slurmfile.toml", contents)
    }

    /// A command running `slurmkit args...` in the project, isolated from the user's own SSH setup.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(slurmkit_bin());
        command
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.home())
            .env("SLURMKIT_DATA_DIR", self.data_dir())
            // Compiled plugins are shared between tests: the Python and JavaScript ones take seconds to compile.
            .env("SLURMKIT_CACHE_DIR", shared_cache_dir())
            .env("SLURMKIT_LOG", "warn,slurmkit::plugin=info")
            .env_remove("SSH_AUTH_SOCK")
            // The site layer is the project's own (`site/Slurmfile.toml`, absent unless a test
            // writes it), never the machine's /etc/slurmkit.
            .env(
                "SLURMKIT_SITE_CONFIG",
                self.dir.path().join("site/Slurmfile.toml"),
            )
            .env_remove("SLURMFILE")
            .env_remove("SLURM_ENV")
            .stdin(std::process::Stdio::null());
        match cluster_if_up() {
            Some(cluster) => command.env("SLURM_CONF", &cluster.slurm_conf),
            None => command.env_remove("SLURM_CONF"),
        };
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run slurmkit");
        Run::new(args, output)
    }
}

/// A finished `slurmkit` run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(args: &[&str], output: Output) -> Self {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Assert the exit code; on failure, show everything.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "slurmkit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    #[track_caller]
    pub fn stderr_contains(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr of slurmkit {:?} lacks {text:?}:\n{}",
            self.args,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_contains(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout of slurmkit {:?} lacks {text:?}:\n{}",
            self.args,
            self.stdout
        );
        self
    }

    /// The first stdout line: `submit` prints the job id there.
    pub fn first_line(&self) -> String {
        self.stdout.lines().next().unwrap_or("").trim().to_string()
    }
}

/// Poll `check` until it returns `Some`, for up to `timeout`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if started.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Compare `actual` with `tests/golden/<name>`; with `SLURMKIT_BLESS=1`, write it there instead
/// (then review the diff).
#[track_caller]
pub fn assert_golden(name: &str, actual: &str) {
    let path = repo_root().join("tests/golden").join(name);
    if std::env::var_os("SLURMKIT_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): create it with SLURMKIT_BLESS=1",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "{} differs (rerun with SLURMKIT_BLESS=1 and review the diff):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The repository root (for examples and plugin sources).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repo")
        .to_path_buf()
}

/// Copy a built plugin into `dir/plugins/`, returning its path relative to `dir`.
pub fn install_plugin(dir: &Path, built: &str) -> String {
    let name = Path::new(built).file_name().unwrap().to_string_lossy();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(built, dir.join("plugins").join(&*name)).unwrap();
    format!("plugins/{name}")
}
