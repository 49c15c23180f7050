//! Per-test OpenSSH servers, keys, certificates and agents, for cases the shared cluster's two sshds
//! cannot show: host certificates, other authorized keys, lower MaxAuthTries, more jump hosts.
//!
//! Every server runs `/usr/sbin/sshd -D -e` (sshd re-executes itself, so the path must be absolute) on a
//! free 127.0.0.1 port, logs into its own directory, sets `SLURM_CONF` for sessions so Slurm commands
//! reach the test cluster, and is killed when its handle drops. Everything is made with the real
//! `ssh-keygen`, `ssh-agent` and `ssh-add`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster;

/// Run a command that must succeed; panic with its output otherwise.
#[track_caller]
pub fn run_ok(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Key types the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    Rsa,
}

/// `ssh-keygen -t <type> -f <dir>/<name>` without a passphrase; returns the private key's path
/// (the public key is next to it with `.pub`).
pub fn keygen(dir: &Path, name: &str, key_type: KeyType) -> PathBuf {
    keygen_with_passphrase(dir, name, key_type, "")
}

/// As [`keygen`], with the private key encrypted under `passphrase`.
pub fn keygen_with_passphrase(
    dir: &Path,
    name: &str,
    key_type: KeyType,
    passphrase: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-q", "-N", passphrase, "-C", name, "-f"])
        .arg(&path);
    match key_type {
        KeyType::Ed25519 => command.args(["-t", "ed25519"]),
        KeyType::Rsa => command.args(["-t", "rsa", "-b", "2048"]),
    };
    run_ok(&mut command);
    path
}

/// `<key>.pub` for a private key path.
pub fn public(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

/// The `type base64` part of a public key file (no comment).
pub fn public_key_text(key_pub: &Path) -> String {
    let text = std::fs::read_to_string(key_pub).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What to put in a certificate (`ssh-keygen -s`).
#[derive(Debug, Clone)]
pub struct CertSpec<'a> {
    pub id: &'a str,
    /// `-n`; empty means no principals at all.
    pub principals: &'a [&'a str],
    /// `-V`, e.g. `-5m:+1h` or `20200101:20200102`.
    pub validity: &'a str,
    /// `-h`: a host certificate.
    pub host: bool,
    /// `-O` options, e.g. `force-command=/bin/true`.
    pub options: &'a [&'a str],
}

impl<'a> CertSpec<'a> {
    pub fn user(id: &'a str, principals: &'a [&'a str]) -> Self {
        CertSpec {
            id,
            principals,
            validity: "-5m:+1d",
            host: false,
            options: &[],
        }
    }

    pub fn host(id: &'a str, principals: &'a [&'a str]) -> Self {
        CertSpec {
            host: true,
            ..CertSpec::user(id, principals)
        }
    }

    pub fn validity(self, validity: &'a str) -> Self {
        CertSpec { validity, ..self }
    }

    pub fn options(self, options: &'a [&'a str]) -> Self {
        CertSpec { options, ..self }
    }
}

/// Sign `<key>.pub` with the CA private key `ca`; returns `<key>-cert.pub` (OpenSSH's implicit
/// certificate name).
pub fn sign(ca: &Path, key: &Path, spec: &CertSpec) -> PathBuf {
    let mut command = Command::new("ssh-keygen");
    command
        .arg("-q")
        .arg("-s")
        .arg(ca)
        .args(["-I", spec.id])
        .arg(format!("-V{}", spec.validity));
    if !spec.principals.is_empty() {
        command.args(["-n", &spec.principals.join(",")]);
    }
    if spec.host {
        command.arg("-h");
    }
    for option in spec.options {
        command.args(["-O", option]);
    }
    command.arg(public(key));
    run_ok(&mut command);
    let cert = PathBuf::from(format!("{}-cert.pub", key.display()));
    assert!(cert.exists(), "ssh-keygen wrote no {}", cert.display());
    cert
}

/// A port nobody listens on right now (the OS picked it; a race with other processes is retried by
/// [`SshdBuilder::start`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// How to configure one sshd.
#[derive(Debug, Clone)]
pub struct SshdBuilder {
    /// The host key type (the key is made fresh per server).
    host_key: KeyType,
    /// Extra host keys, for servers that hold several types.
    extra_host_keys: Vec<KeyType>,
    /// Sign the host key with this CA into a host certificate.
    host_certificate: Option<(PathBuf, CertSpecOwned)>,
    authorized_keys: Option<String>,
    lines: Vec<String>,
    /// A PAM configuration of its own (see [`SshdBuilder::pam`]).
    pam: Option<String>,
}

#[derive(Debug, Clone)]
struct CertSpecOwned {
    id: String,
    principals: Vec<String>,
    validity: String,
    host: bool,
    options: Vec<String>,
}

impl Default for SshdBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SshdBuilder {
    pub fn new() -> Self {
        SshdBuilder {
            host_key: KeyType::Ed25519,
            extra_host_keys: Vec::new(),
            host_certificate: None,
            authorized_keys: None,
            lines: Vec::new(),
            pam: None,
        }
    }

    pub fn host_key(mut self, key_type: KeyType) -> Self {
        self.host_key = key_type;
        self
    }

    pub fn extra_host_key(mut self, key_type: KeyType) -> Self {
        self.extra_host_keys.push(key_type);
        self
    }

    /// Present a certificate for the host key, signed by `ca` as `spec` says (`spec.host = false`
    /// makes a user certificate, which a client must refuse as a host certificate).
    pub fn host_certificate(mut self, ca: &Path, spec: &CertSpec) -> Self {
        self.host_certificate = Some((
            ca.to_path_buf(),
            CertSpecOwned {
                id: spec.id.into(),
                principals: spec.principals.iter().map(|p| p.to_string()).collect(),
                validity: spec.validity.into(),
                host: spec.host,
                options: spec.options.iter().map(|o| o.to_string()).collect(),
            },
        ));
        self
    }

    /// Use this authorized_keys content instead of the cluster's (`<authorized_dir>/%u`).
    pub fn authorized_keys(mut self, contents: &str) -> Self {
        self.authorized_keys = Some(contents.to_string());
        self
    }

    /// Any sshd_config line, e.g. `MaxAuthTries 2`. Lines added here come first, so they win over
    /// the defaults (sshd keeps the first value of a keyword).
    pub fn line(mut self, line: &str) -> Self {
        self.lines.push(line.to_string());
        self
    }

    /// Authenticate through PAM with this configuration (`auth ...` lines and so on), used by this
    /// server alone: sshd names its PAM service after the name it runs under, so it runs as a link
    /// with a unique name and the configuration goes to `/etc/pam.d/<that name>`, removed when the
    /// server stops. No other sshd's PAM configuration is touched.
    pub fn pam(mut self, config: &str) -> Self {
        self.pam = Some(config.to_string());
        self.lines.push("UsePAM yes".into());
        self.lines.push("KbdInteractiveAuthentication yes".into());
        self
    }

    pub fn start(self) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("slurmkit-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let host_key = keygen(d, "host_key", self.host_key);
        let extra: Vec<PathBuf> = self
            .extra_host_keys
            .iter()
            .enumerate()
            .map(|(i, t)| keygen(d, &format!("host_key_extra{i}"), *t))
            .collect();
        let host_cert = self.host_certificate.as_ref().map(|(ca, spec)| {
            let principals: Vec<&str> = spec.principals.iter().map(String::as_str).collect();
            let options: Vec<&str> = spec.options.iter().map(String::as_str).collect();
            sign(
                ca,
                &host_key,
                &CertSpec {
                    id: &spec.id,
                    principals: &principals,
                    validity: &spec.validity,
                    host: spec.host,
                    options: &options,
                },
            )
        });
        let c = cluster();
        let authorized = match &self.authorized_keys {
            Some(contents) => {
                let path = d.join("authorized_keys");
                std::fs::write(&path, contents).unwrap();
                path.display().to_string()
            }
            None => format!("{}/%u", c.authorized_dir.display()),
        };
        let mut config: Vec<String> = self.lines.clone();
        config.push(format!("HostKey {}", host_key.display()));
        for key in &extra {
            config.push(format!("HostKey {}", key.display()));
        }
        if let Some(cert) = &host_cert {
            config.push(format!("HostCertificate {}", cert.display()));
        }
        let user_ca_pub = public(&c.user_ca);
        config.extend([
            "ListenAddress 127.0.0.1".to_string(),
            format!("PidFile {}", d.join("sshd.pid").display()),
            format!("AuthorizedKeysFile {authorized}"),
            format!("TrustedUserCAKeys {}", user_ca_pub.display()),
            "StrictModes no".into(),
            "UsePAM no".into(),
            "PasswordAuthentication no".into(),
            "KbdInteractiveAuthentication no".into(),
            "PermitRootLogin prohibit-password".into(),
            "AllowTcpForwarding yes".into(),
            "Subsystem sftp internal-sftp".into(),
            format!("SetEnv SLURM_CONF={}", c.slurm_conf.display()),
            "LogLevel VERBOSE".into(),
            "MaxStartups 100".into(),
        ]);
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (run the tests as root)");
        let (program, pam_file) = match &self.pam {
            None => (PathBuf::from("/usr/sbin/sshd"), None),
            Some(config) => {
                let name = format!(
                    "slurmkit-test-sshd-{}-{}",
                    std::process::id(),
                    d.file_name().unwrap().to_string_lossy().replace('.', "")
                )
                // PAM looks the service up in lower case.
                .to_lowercase();
                let program = d.join(&name);
                std::os::unix::fs::symlink("/usr/sbin/sshd", &program).unwrap();
                let file = PathBuf::from("/etc/pam.d").join(&name);
                std::fs::write(&file, config).expect("write the test's PAM service");
                (program, Some(PamService(file)))
            }
        };
        let log = d.join("sshd.log");
        // The port is free when chosen but may be taken before sshd binds it: retry with another.
        for _ in 0..5 {
            let port = free_port();
            let path = d.join("sshd_config");
            let mut text = format!("Port {port}\n");
            for line in &config {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&path, text).unwrap();
            let log_file = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(&program)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("start /usr/sbin/sshd");
            let started = Instant::now();
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd {
                        child,
                        port,
                        host_key_pub: public(&host_key),
                        host_cert,
                        log,
                        _pam: pam_file,
                        _dir: dir,
                    };
                }
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sshd did not listen on {port} within 10 s:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if !text.contains("Address already in use") {
                panic!("sshd exited at start:\n{text}");
            }
        }
        panic!(
            "sshd found no free port in 5 tries:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// A running sshd, stopped on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub host_key_pub: PathBuf,
    pub host_cert: Option<PathBuf>,
    log: PathBuf,
    _pam: Option<PamService>,
    _dir: tempfile::TempDir,
}

/// A PAM service file of one test server, removed with it.
struct PamService(PathBuf);

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Sshd {
    /// The `[127.0.0.1]:PORT type base64` known_hosts line for its (plain) host key.
    pub fn known_hosts_line(&self) -> String {
        format!(
            "[127.0.0.1]:{} {}",
            self.port,
            public_key_text(&self.host_key_pub)
        )
    }

    /// What sshd logged so far (it says why it accepted or refused each attempt).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `ssh-agent` on its own socket, stopped on drop.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
}

impl Agent {
    pub fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let mut agent = Agent { child, socket };
        let started = Instant::now();
        while !agent.socket.exists() {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("ssh-agent exited at start: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "ssh-agent did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// `ssh-add <key>`: adds the key, and its `-cert.pub` when there is one.
    pub fn add(&self, key: &Path) {
        run_ok(
            Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &self.socket)
                .env_remove("DISPLAY")
                .env_remove("SSH_ASKPASS"),
        );
    }

    /// `ssh-add -l`: one line per identity the agent holds.
    pub fn list(&self) -> String {
        run_ok(
            Command::new("ssh-add")
                .arg("-l")
                .env("SSH_AUTH_SOCK", &self.socket),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
