//! The SSH transport against real OpenSSH servers on 127.0.0.1: host keys (plain, hashed, wildcard,
//! `[host]:port`, `@revoked`, `@cert-authority` with host certificates), user certificates (ed25519 and
//! RSA, from files and from a real ssh-agent), IdentitiesOnly, the MaxAuthTries budget, jump-host chains,
//! ssh_config aliases, `doctor`. The binary drives the shared cluster's sshds where their setup
//! suffices and per-test sshds (`slurmkit_e2e::sshd`) where a case needs its own server configuration.
//!
//! Keyboard-interactive prompts run against an in-process russh server (sshd would need PAM), and the
//! ssh_config fallback parser is compared with `ssh -G` itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slurmkit_e2e::sshd::{
    Agent, CertSpec, KeyType, Sshd, SshdBuilder, keygen, keygen_with_passphrase, public,
    public_key_text, run_ok, sign,
};
use slurmkit_e2e::{Project, Run, cluster};

// ---------------------------------------------------------------------------------------------------
// Helpers

/// A `[cluster]` table for `127.0.0.1:port` as the cluster's user, `reject` unless `extra` says
/// otherwise (later keys would be duplicates, so `extra` only adds keys).
fn cluster_table(port: u16, known_hosts: &Path, extra: &str) -> String {
    let policy = if extra.contains("host_key_policy") {
        String::new()
    } else {
        "host_key_policy = \"reject\"\n".into()
    };
    format!(
        "[cluster]\nhostname = \"127.0.0.1\"\nport = {port}\nusername = \"{}\"\nknown_hosts = \"{}\"\n{policy}{extra}",
        cluster().user,
        known_hosts.display(),
    )
}

/// `slurmkit status`: connects, authenticates, and (with nothing journaled) only says so.
#[track_caller]
fn connects(project: &Project) -> Run {
    let run = project.run(&["status"]);
    run.ok()
        .stderr_contains("No jobs submitted from here to ssh://");
    run
}

/// The cluster's known_hosts line for its login sshd.
fn login_line() -> String {
    let c = cluster();
    format!(
        "[127.0.0.1]:{} {}",
        c.port,
        public_key_text(&c.host_key_pub)
    )
}

fn jump_line() -> String {
    let c = cluster();
    format!(
        "[127.0.0.1]:{} {}",
        c.jump_port,
        public_key_text(&c.jump_host_key_pub)
    )
}

fn login_sshd_log() -> String {
    std::fs::read_to_string(cluster().dir.join("ssh/login/sshd.log")).unwrap_or_default()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn user_cert(key: &Path, id: &str) -> PathBuf {
    sign(
        &cluster().user_ca,
        key,
        &CertSpec::user(id, &[&cluster().user]),
    )
}

// ---------------------------------------------------------------------------------------------------
// User certificates

#[test]
fn user_certificates_ed25519_and_rsa_are_accepted_through_the_trusted_user_ca() {
    let c = cluster();
    for key_type in [KeyType::Ed25519, KeyType::Rsa] {
        let project = Project::new();
        let key = keygen(project.path(), "id", key_type);
        project.slurmfile(&cluster_table(
            c.port,
            &c.known_hosts,
            &format!("key_filename = \"{}\"\n", key.display()),
        ));
        // The bare key is in no authorized_keys: only its certificate can get in.
        project
            .run(&["status"])
            .expect_code(5)
            .stderr_contains(&format!("key {}: refused", key.display()));
        let id = format!("{}-{key_type:?}", project.unique_name());
        let cert = user_cert(&key, &id);
        let run = connects(&project);
        assert!(
            login_sshd_log().contains(&format!("Accepted certificate ID \"{id}\"")),
            "sshd did not log the certificate {id}; slurmkit said:\n{}",
            run.stderr
        );
        // The certificate alone authenticated: no key was offered before it.
        assert!(cert.exists());
    }
}

#[test]
fn an_expired_user_certificate_is_reported_before_connecting() {
    let project = Project::new();
    let key = keygen(project.path(), "id", KeyType::Ed25519);
    sign(
        &cluster().user_ca,
        &key,
        &CertSpec::user("expired", &[&cluster().user]).validity("20200101:20200102"),
    );
    // A listener that never accepts: a connection attempt would show up in its backlog.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    project.slurmfile(&cluster_table(
        port,
        &cluster().known_hosts,
        &format!("key_filename = \"{}\"\n", key.display()),
    ));
    let run = project.run(&["status"]);
    run.expect_code(5)
        .stderr_contains(&format!(
            "the SSH certificate {}-cert.pub expired",
            key.display()
        ))
        .stderr_contains("renew the certificate")
        .stderr_contains("ssh-keygen -L -f");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "slurmkit connected although the certificate had expired"
    );
}

#[test]
fn a_certificate_expiring_within_the_hour_warns_and_still_works() {
    let c = cluster();
    let project = Project::new();
    let key = keygen(project.path(), "id", KeyType::Ed25519);
    sign(
        &c.user_ca,
        &key,
        &CertSpec::user("soon", &[&c.user]).validity("-5m:+30m"),
    );
    project.slurmfile(&cluster_table(
        c.port,
        &c.known_hosts,
        &format!("key_filename = \"{}\"\n", key.display()),
    ));
    let run = connects(&project);
    assert!(
        run.stderr.contains(&format!(
            "SSH certificate {}-cert.pub expires in 29 min: renew it soon",
            key.display()
        )) || run.stderr.contains("expires in 30 min: renew it soon"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------------
// Host keys: plain, hashed, wildcard, [host]:port, @revoked, changed

#[test]
fn known_hosts_forms_that_openssh_accepts_are_accepted() {
    let c = cluster();
    let key = public_key_text(&c.host_key_pub);
    let cases = [
        ("[host]:port", login_line()),
        // OpenSSH retries a non-22 port under the bare name when [host]:port is unknown.
        ("port-less name", format!("127.0.0.1 {key}")),
        ("wildcard", format!("[127.0.0.?]:* {key}")),
        (
            "comma list",
            format!("other.example.org,[127.0.0.1]:{} {key}", c.port),
        ),
        (
            "tab separated",
            format!("[127.0.0.1]:{}\t{key} a comment", c.port),
        ),
    ];
    for (what, line) in cases {
        let project = Project::new();
        let known = project.write("known_hosts", &format!("{line}\n"));
        project.slurmfile(&cluster_table(
            c.port,
            &known,
            &format!("key_filename = \"{}\"\n", c.key.display()),
        ));
        let run = project.run(&["status"]);
        assert_eq!(run.code, Some(0), "{what}: {line}\n{}", run.stderr);
    }
}

#[test]
fn known_hosts_forms_that_do_not_name_the_host_leave_it_unknown() {
    let c = cluster();
    let key = public_key_text(&c.host_key_pub);
    let cases = [
        ("other port", format!("[127.0.0.1]:1 {key}")),
        (
            "negated",
            format!("[127.0.0.*]:*,![127.0.0.1]:{} {key}", c.port),
        ),
        ("other host", format!("127.0.0.2 {key}")),
    ];
    for (what, line) in cases {
        let project = Project::new();
        let known = project.write("known_hosts", &format!("{line}\n"));
        project.slurmfile(&cluster_table(
            c.port,
            &known,
            &format!("key_filename = \"{}\"\n", c.key.display()),
        ));
        let run = project.run(&["status"]);
        assert_eq!(run.code, Some(4), "{what}: {line}\n{}", run.stderr);
        run.stderr_contains("is not a known host");
    }
}

#[test]
fn hashed_known_hosts_made_by_ssh_keygen_are_matched() {
    let c = cluster();
    let project = Project::new();
    let known = project.write("known_hosts", &format!("{}\n", login_line()));
    run_ok(
        std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&known),
    );
    let hashed = read(&known);
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    project.slurmfile(&cluster_table(
        c.port,
        &known,
        &format!("key_filename = \"{}\"\n", c.key.display()),
    ));
    connects(&project);
}

#[test]
fn a_malformed_known_hosts_line_is_skipped_with_a_warning_naming_file_and_line() {
    let c = cluster();
    let project = Project::new();
    let known = project.write(
        "known_hosts",
        &format!(
            "# comment\nthis is not a known_hosts line\n{}\n",
            login_line()
        ),
    );
    project.slurmfile(&cluster_table(
        c.port,
        &known,
        &format!("key_filename = \"{}\"\n", c.key.display()),
    ));
    connects(&project).stderr_contains(&format!(
        "{}:2: skipping malformed known_hosts line",
        known.display()
    ));
}

#[test]
fn a_revoked_key_is_refused_under_every_policy_even_though_a_plain_line_accepts_it() {
    let c = cluster();
    for policy in ["reject", "warn", "auto"] {
        let project = Project::new();
        let contents = format!(
            "{}\n@revoked * {}\n",
            login_line(),
            public_key_text(&c.host_key_pub)
        );
        let known = project.write("known_hosts", &contents);
        project.slurmfile(&cluster_table(
            c.port,
            &known,
            &format!(
                "key_filename = \"{}\"\nhost_key_policy = \"{policy}\"\n",
                c.key.display()
            ),
        ));
        project
            .run(&["status"])
            .expect_code(4)
            .stderr_contains(&format!("is marked @revoked at {}:2", known.display()));
        assert_eq!(read(&known), contents, "{policy} must not touch the file");
    }
}

#[test]
fn a_changed_key_recorded_hashed_is_refused_under_auto_with_the_exact_fix() {
    let c = cluster();
    let project = Project::new();
    let other = keygen(project.path(), "other", KeyType::Ed25519);
    let known = project.write(
        "known_hosts",
        &format!(
            "[127.0.0.1]:{} {}\n",
            c.port,
            public_key_text(&public(&other))
        ),
    );
    run_ok(
        std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&known),
    );
    let before = read(&known);
    project.slurmfile(&cluster_table(
        c.port,
        &known,
        &format!(
            "key_filename = \"{}\"\nhost_key_policy = \"auto\"\n",
            c.key.display()
        ),
    ));
    let known_text = known.display().to_string();
    project
        .run(&["status"])
        .expect_code(4)
        .stderr_contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        .stderr_contains(&format!("{known_text}:1 records SHA256:"))
        .stderr_contains(&format!(
            "ssh-keygen -R '[127.0.0.1]:{}' -f {known_text}",
            c.port
        ))
        .stderr_contains(&format!(
            "ssh-keyscan -p {} 127.0.0.1 >> {known_text}",
            c.port
        ));
    assert_eq!(read(&known), before, "auto must not record a changed key");
}

#[test]
fn auto_records_a_hashed_line_when_hash_known_hosts_is_set() {
    let c = cluster();
    let project = Project::new();
    let known = project.path().join("known_hosts");
    let config = project.write(
        "ssh_config",
        &format!(
            "Host sk-login\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n  HashKnownHosts yes\n",
            c.port,
            c.user,
            c.key.display(),
            known.display()
        ),
    );
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"sk-login\"\nssh_config = \"{}\"\n",
        config.display()
    ));
    connects(&project).stderr_contains("recorded the host key of [127.0.0.1]:");
    let recorded = read(&known);
    assert!(
        recorded.starts_with("|1|") && recorded.lines().count() == 1,
        "{recorded}"
    );
    // OpenSSH finds the hashed entry under the name it would look up.
    run_ok(
        std::process::Command::new("ssh-keygen")
            .arg("-F")
            .arg(format!("[127.0.0.1]:{}", c.port))
            .arg("-f")
            .arg(&known),
    );
    // Known from now on, even under reject.
    let run = project.run(&["status", "--host-key-policy", "reject"]);
    run.ok();
    assert_eq!(read(&known), recorded);
}

#[test]
fn the_users_own_ssh_config_and_known_hosts_files_are_read_by_default() {
    let c = cluster();
    let project = Project::new();
    let ssh_dir = project.home().join(".ssh");
    std::fs::write(
        ssh_dir.join("config"),
        format!(
            "Host sk-login\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  StrictHostKeyChecking yes\n",
            c.port,
            c.user,
            c.key.display()
        ),
    )
    .unwrap();
    // No known_hosts in the Slurmfile: ~/.ssh/known_hosts2 is one of the files read.
    std::fs::write(ssh_dir.join("known_hosts2"), format!("{}\n", login_line())).unwrap();
    project.slurmfile("[cluster]\nhostname = \"sk-login\"\n");
    connects(&project);
    // Under auto, a new key goes into ~/.ssh/known_hosts (the first user file).
    std::fs::remove_file(ssh_dir.join("known_hosts2")).unwrap();
    project
        .run(&["status", "--host-key-policy", "auto"])
        .ok()
        .stderr_contains(&format!("in {}", ssh_dir.join("known_hosts").display()));
    assert_eq!(
        read(&ssh_dir.join("known_hosts")),
        format!("{}\n", login_line())
    );
}

#[test]
fn warn_connects_to_an_unknown_host_and_says_so_without_recording_it() {
    let c = cluster();
    let project = Project::new();
    let known = project.write("known_hosts", "");
    project.slurmfile(&cluster_table(
        c.port,
        &known,
        &format!(
            "key_filename = \"{}\"\nhost_key_policy = \"warn\"\n",
            c.key.display()
        ),
    ));
    connects(&project).stderr_contains(&format!(
        "[127.0.0.1]:{} is not a known host; connecting anyway (host_key_policy = \"warn\")",
        c.port
    ));
    assert_eq!(read(&known), "");
}

#[test]
fn host_key_alias_names_the_known_hosts_entry() {
    let c = cluster();
    let project = Project::new();
    let known = project.write(
        "known_hosts",
        &format!("login-alias {}\n", public_key_text(&c.host_key_pub)),
    );
    let config = project.write(
        "ssh_config",
        &format!(
            "Host sk-login\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  HostKeyAlias login-alias\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
            c.port,
            c.user,
            c.key.display(),
            known.display()
        ),
    );
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"sk-login\"\nssh_config = \"{}\"\n",
        config.display()
    ));
    connects(&project);
}

#[test]
fn a_recorded_rsa_host_key_is_asked_for_with_sha2_even_when_the_server_prefers_ed25519() {
    let project = Project::new();
    let user_key = keygen(project.path(), "id_rsa", KeyType::Rsa);
    let sshd = SshdBuilder::new()
        .host_key(KeyType::Ed25519)
        .extra_host_key(KeyType::Rsa)
        .authorized_keys(&read(&public(&user_key)))
        .start();
    // Only the RSA host key is recorded.
    let rsa_host_pub = sshd
        .host_key_pub
        .parent()
        .unwrap()
        .join("host_key_extra0.pub");
    let known = project.write(
        "known_hosts",
        &format!(
            "[127.0.0.1]:{} {}\n",
            sshd.port,
            public_key_text(&rsa_host_pub)
        ),
    );
    project.slurmfile(&cluster_table(
        sshd.port,
        &known,
        &format!("key_filename = \"{}\"\n", user_key.display()),
    ));
    let run = project.run(&["status"]);
    assert_eq!(
        run.code,
        Some(0),
        "{}\n--- sshd\n{}",
        run.stderr,
        sshd.log()
    );
    // An RSA user key signs with SHA-2: OpenSSH refuses ssh-rsa (SHA-1) signatures by default.
    assert!(
        sshd.log().contains("Accepted publickey for"),
        "{}",
        sshd.log()
    );
}

// ---------------------------------------------------------------------------------------------------
// Host certificates and @cert-authority

fn host_ca_line() -> String {
    format!(
        "@cert-authority [127.0.0.1]:* {}\n",
        public_key_text(&public(&cluster().host_ca))
    )
}

fn cert_project(sshd_port: u16, known_hosts: &str) -> (Project, PathBuf) {
    let c = cluster();
    let project = Project::new();
    let known = project.write("known_hosts", known_hosts);
    project.slurmfile(&cluster_table(
        sshd_port,
        &known,
        &format!("key_filename = \"{}\"\n", c.key.display()),
    ));
    (project, known)
}

#[test]
fn a_host_certificate_signed_by_the_trusted_ca_is_accepted() {
    let c = cluster();
    let sshd = SshdBuilder::new()
        .line("LogLevel DEBUG1")
        .host_certificate(
            &c.host_ca,
            &CertSpec::host("login", &["127.0.0.1", "localhost"]),
        )
        .start();
    let (project, _) = cert_project(sshd.port, &host_ca_line());
    let run = project.run(&[
        "submit",
        "--wait",
        "--name",
        &project.unique_name(),
        "--",
        "true",
    ]);
    assert_eq!(
        run.code,
        Some(0),
        "{}\n--- sshd\n{}",
        run.stderr,
        sshd.log()
    );
    assert!(
        sshd.log()
            .contains("host key algorithm: ssh-ed25519-cert-v01@openssh.com"),
        "the server was not asked for its certificate:\n{}",
        sshd.log()
    );
}

#[test]
fn host_certificates_are_only_asked_for_where_a_ca_line_matches() {
    let c = cluster();
    let sshd = SshdBuilder::new()
        .line("LogLevel DEBUG1")
        .host_certificate(&c.host_ca, &CertSpec::host("login", &["127.0.0.1"]))
        .start();
    let known = format!(
        "@cert-authority other.example.org {}\n{}\n",
        public_key_text(&public(&c.host_ca)),
        sshd.known_hosts_line()
    );
    let (project, _) = cert_project(sshd.port, &known);
    connects(&project);
    let log = sshd.log();
    assert!(
        log.contains("host key algorithm: ssh-ed25519 [preauth]"),
        "{log}"
    );
}

#[test]
fn bad_host_certificates_are_refused() {
    let c = cluster();
    let project = Project::new();
    let other_ca = keygen(project.path(), "other_ca", KeyType::Ed25519);
    let other_ca_line = format!(
        "@cert-authority [127.0.0.1]:* {}\n",
        public_key_text(&public(&other_ca))
    );
    let cases: Vec<(&str, SshdBuilder, String, &str)> = vec![
        (
            "wrong CA",
            SshdBuilder::new().host_certificate(&c.host_ca, &CertSpec::host("h", &["127.0.0.1"])),
            other_ca_line,
            "which no @cert-authority line trusts",
        ),
        (
            "expired",
            SshdBuilder::new().host_certificate(
                &c.host_ca,
                &CertSpec::host("h", &["127.0.0.1"]).validity("20200101:20200102"),
            ),
            host_ca_line(),
            "outside its validity window",
        ),
        (
            "not yet valid",
            SshdBuilder::new().host_certificate(
                &c.host_ca,
                &CertSpec::host("h", &["127.0.0.1"]).validity("+1d:+2d"),
            ),
            host_ca_line(),
            "outside its validity window",
        ),
        (
            "wrong principal",
            SshdBuilder::new()
                .host_certificate(&c.host_ca, &CertSpec::host("h", &["login.example.org"])),
            host_ca_line(),
            "127.0.0.1 is not among its principals (login.example.org)",
        ),
        (
            // The name checked is the host, without the port known_hosts uses.
            "principal for another name of the host",
            SshdBuilder::new().host_certificate(&c.host_ca, &CertSpec::host("h", &["localhost"])),
            host_ca_line(),
            "127.0.0.1 is not among its principals (localhost)",
        ),
        (
            "no principals",
            SshdBuilder::new().host_certificate(&c.host_ca, &CertSpec::host("h", &[])),
            host_ca_line(),
            "it names no principals",
        ),
        (
            "critical options",
            SshdBuilder::new().host_certificate(
                &c.host_ca,
                &CertSpec::host("h", &["127.0.0.1"]).options(&["force-command=/bin/true"]),
            ),
            host_ca_line(),
            "it carries critical options a host certificate may not have: [\"force-command\"]",
        ),
        (
            "user certificate as host certificate",
            SshdBuilder::new().host_certificate(&c.host_ca, &CertSpec::user("h", &["127.0.0.1"])),
            host_ca_line(),
            "it is a user certificate, not a host certificate",
        ),
    ];
    for (what, builder, known, reason) in cases {
        let sshd = builder.start();
        let (project, known_path) = cert_project(sshd.port, &known);
        let run = project.run(&["status"]);
        assert_eq!(run.code, Some(4), "{what}: {}", run.stderr);
        run.stderr_contains("host certificate of")
            .stderr_contains(reason);
        assert_eq!(read(&known_path), known, "{what}: known_hosts changed");
        assert!(
            !sshd.log().contains("Accepted"),
            "{what}: authenticated although the host was refused"
        );
    }
}

#[test]
fn a_certificate_from_an_untrusted_ca_falls_back_to_a_recorded_plain_key() {
    // OpenSSH's downgrade: no CA line trusts the signer, so the certificate's key is judged as a plain key.
    let c = cluster();
    let project = Project::new();
    let other_ca = keygen(project.path(), "other_ca", KeyType::Ed25519);
    let sshd = SshdBuilder::new()
        .host_certificate(&c.host_ca, &CertSpec::host("h", &["127.0.0.1"]))
        .start();
    let known = format!(
        "@cert-authority [127.0.0.1]:* {}\n{}\n",
        public_key_text(&public(&other_ca)),
        sshd.known_hosts_line()
    );
    let (project, _) = cert_project(sshd.port, &known);
    connects(&project);
}

/// OpenSSH's own verdict on a host: `ssh` with StrictHostKeyChecking=yes and these known_hosts.
fn openssh_accepts(sshd_port: u16, known_hosts: &Path) -> bool {
    let c = cluster();
    std::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &sshd_port.to_string(), "-i"])
        .arg(&c.key)
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg(format!("{}@127.0.0.1", c.user))
        .arg("true")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .status
        .success()
}

/// Where a host certificate and a recorded plain key disagree, slurmkit decides as OpenSSH does: a
/// certificate signed by a revoked CA is refused though its key is recorded (certificates are asked for
/// wherever a `@revoked` line could name their CA); a certificate that fails its checks is dropped and
/// its key judged as a plain key, which a recorded line accepts.
#[test]
fn certificates_and_recorded_plain_keys_get_the_verdicts_openssh_gives() {
    let c = cluster();
    struct Case<'a> {
        what: &'a str,
        cert: CertSpec<'a>,
        known: fn(&Sshd) -> String,
        accepted: bool,
    }
    let with_ca = |sshd: &Sshd| format!("{}{}\n", host_ca_line(), sshd.known_hosts_line());
    let cases = [
        Case {
            what: "revoked CA, plain key recorded",
            cert: CertSpec::host("h", &["127.0.0.1"]),
            known: |sshd| {
                format!(
                    "{}\n@revoked * {}\n",
                    sshd.known_hosts_line(),
                    public_key_text(&public(&cluster().host_ca))
                )
            },
            accepted: false,
        },
        Case {
            what: "expired certificate, plain key recorded",
            cert: CertSpec::host("h", &["127.0.0.1"]).validity("20200101:20200102"),
            known: with_ca,
            accepted: true,
        },
        Case {
            what: "wrong principal, plain key recorded",
            cert: CertSpec::host("h", &["login.example.org"]),
            known: with_ca,
            accepted: true,
        },
    ];
    for Case {
        what,
        cert,
        known,
        accepted,
    } in cases
    {
        let sshd = SshdBuilder::new()
            .host_certificate(&c.host_ca, &cert)
            .start();
        let (project, known_path) = cert_project(sshd.port, &known(&sshd));
        assert_eq!(
            openssh_accepts(sshd.port, &known_path),
            accepted,
            "{what}: OpenSSH's verdict is not the one this case expects"
        );
        let run = project.run(&["status"]);
        if accepted {
            run.ok()
                .stderr_contains("is not acceptable")
                .stderr_contains("so it is accepted as a plain key");
        } else {
            run.expect_code(4).stderr_contains("@revoked at");
        }
    }
}

#[test]
fn a_revoked_host_certificate_key_is_refused() {
    let c = cluster();
    let sshd = SshdBuilder::new()
        .host_certificate(&c.host_ca, &CertSpec::host("h", &["127.0.0.1"]))
        .start();
    let known = format!(
        "{}@revoked * {}\n",
        host_ca_line(),
        public_key_text(&sshd.host_key_pub)
    );
    let (project, known_path) = cert_project(sshd.port, &known);
    project
        .run(&["status"])
        .expect_code(4)
        .stderr_contains(&format!("@revoked at {}:2", known_path.display()));
}

// ---------------------------------------------------------------------------------------------------
// ssh-agent, IdentitiesOnly, MaxAuthTries

/// A project whose Slurmfile names no key: authentication comes from the agent.
fn agent_project(extra: &str) -> Project {
    let c = cluster();
    let project = Project::new();
    project.slurmfile(&cluster_table(c.port, &c.known_hosts, extra));
    project
}

fn run_with_agent(project: &Project, agent: &Agent, args: &[&str]) -> Run {
    let output = project
        .command(args)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    Run::new(args, output)
}

#[test]
fn an_agent_holding_a_key_and_its_certificate_authenticates_with_the_certificate() {
    for key_type in [KeyType::Ed25519, KeyType::Rsa] {
        let project = agent_project("");
        let key = keygen(&project.path().join("keys"), "id", key_type);
        let id = format!("{}-agent-{key_type:?}", project.unique_name());
        user_cert(&key, &id);
        let agent = Agent::start(project.path());
        agent.add(&key);
        let listed = agent.list();
        assert_eq!(listed.lines().count(), 2, "key and certificate: {listed}");
        let run = run_with_agent(&project, &agent, &["status"]);
        assert_eq!(run.code, Some(0), "{key_type:?}: {}", run.stderr);
        assert!(
            login_sshd_log().contains(&format!("Accepted certificate ID \"{id}\"")),
            "{key_type:?}: the agent's certificate was not what got in"
        );
    }
}

#[test]
fn identities_only_keeps_the_agents_keys_out() {
    let c = cluster();
    let project = Project::new();
    let unauthorized = keygen(project.path(), "unauthorized", KeyType::Ed25519);
    // The agent holds the file's key too, ahead of the authorized one.
    let agent = Agent::start(project.path());
    agent.add(&unauthorized);
    agent.add(&c.key);

    let table = |only: bool| {
        cluster_table(
            c.port,
            &c.known_hosts,
            &format!(
                "key_filename = \"{}\"\nidentities_only = {only}\n",
                unauthorized.display()
            ),
        )
    };
    project.slurmfile(&table(true));
    let run = run_with_agent(&project, &agent, &["status"]);
    run.expect_code(5)
        .stderr_contains(&format!("key {}: refused", unauthorized.display()));
    assert!(!run.stderr.contains("agent key"), "{}", run.stderr);

    // Without IdentitiesOnly the agent's keys follow the file's, and a key the agent holds too is
    // not offered twice.
    project.slurmfile(&table(false));
    let run = run_with_agent(&project, &agent, &["doctor"]);
    run.ok().stdout_contains(&format!(
        "auth           127.0.0.1: key {}: refused; agent key ",
        unauthorized.display()
    ));
    let auth_line = run.stdout.lines().find(|l| l.contains("auth ")).unwrap();
    assert_eq!(auth_line.matches("agent key").count(), 1, "{auth_line}");
    assert!(auth_line.ends_with(": accepted"), "{auth_line}");
}

#[test]
fn a_certificate_file_is_offered_only_with_the_key_it_certifies() {
    let c = cluster();
    let project = Project::new();
    let first = keygen(project.path(), "first", KeyType::Ed25519);
    let second = keygen(project.path(), "second", KeyType::Ed25519);
    let implicit = user_cert(&second, "second");
    let cert = project.path().join("certs/second.cert");
    std::fs::create_dir_all(cert.parent().unwrap()).unwrap();
    std::fs::rename(&implicit, &cert).unwrap();
    let config = project.write(
        "ssh_config",
        &format!(
            "Host sk-login\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  IdentityFile {}\n  CertificateFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
            c.port,
            c.user,
            first.display(),
            second.display(),
            cert.display(),
            c.known_hosts.display()
        ),
    );
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"sk-login\"\nssh_config = \"{}\"\n",
        config.display()
    ));
    project.run(&["doctor"]).ok().stdout_contains(&format!(
        "auth           sk-login: key {}: refused; certificate {}: accepted",
        first.display(),
        cert.display()
    ));
}

#[test]
fn key_attempts_stop_before_max_auth_tries_and_name_every_key_tried() {
    let project = agent_project("");
    let agent = Agent::start(project.path());
    for i in 0..7 {
        agent.add(&keygen(
            &project.path().join("keys"),
            &format!("k{i}"),
            KeyType::Ed25519,
        ));
    }
    let run = run_with_agent(&project, &agent, &["status"]);
    run.expect_code(5)
        .stderr_contains("permission denied: could not authenticate as");
    let tried = run
        .stderr
        .lines()
        .filter(|l| l.contains("- agent key SHA256:"))
        .count();
    assert_eq!(tried, 5, "{}", run.stderr);
    assert!(!run.stderr.contains("Too many authentication failures"));
}

#[test]
fn a_server_with_fewer_auth_tries_is_explained() {
    let project = Project::new();
    let sshd = SshdBuilder::new().line("MaxAuthTries 2").start();
    let known = project.write("known_hosts", &format!("{}\n", sshd.known_hosts_line()));
    project.slurmfile(&cluster_table(sshd.port, &known, ""));
    let agent = Agent::start(project.path());
    for i in 0..4 {
        agent.add(&keygen(
            &project.path().join("keys"),
            &format!("k{i}"),
            KeyType::Ed25519,
        ));
    }
    run_with_agent(&project, &agent, &["status"])
        .expect_code(5)
        .stderr_contains("closed during authentication")
        .stderr_contains("MaxAuthTries")
        .stderr_contains("- agent key SHA256:");
}

// ---------------------------------------------------------------------------------------------------
// Jump hosts

#[test]
fn submit_through_a_jump_host_checks_both_host_keys() {
    let c = cluster();
    let project = Project::new();
    let both = project.write(
        "known_hosts",
        &format!("{}\n{}\n", login_line(), jump_line()),
    );
    let table = |known: &Path| {
        cluster_table(
            c.port,
            known,
            &format!(
                "key_filename = \"{}\"\nproxy_jump = \"{}@127.0.0.1:{}\"\n",
                c.key.display(),
                c.user,
                c.jump_port
            ),
        )
    };
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"{}\"\ncommand = [\"hostname\"]\n",
        table(&both),
        project.unique_name()
    ));
    project
        .run(&["submit", "--wait"])
        .ok()
        .stdout_contains("COMPLETED");

    // Without the jump host's line, the jump host is refused; without the login host's, the target.
    for (known, refused) in [
        (
            format!("{}\n", login_line()),
            format!("jump host 127.0.0.1 ([127.0.0.1]:{})", c.jump_port),
        ),
        (
            format!("{}\n", jump_line()),
            format!("[127.0.0.1]:{}", c.port),
        ),
    ] {
        let file = project.write("known_hosts", &known);
        project.slurmfile(&table(&file));
        project
            .run(&["status"])
            .expect_code(4)
            .stderr_contains(&format!(
                "host key verification failed: {refused} is not a known host"
            ));
    }
}

#[test]
fn a_jump_host_that_refuses_forwarding_is_reported_at_the_jump_step() {
    let c = cluster();
    let jump = SshdBuilder::new().line("AllowTcpForwarding no").start();
    let project = Project::new();
    let known = project.write(
        "known_hosts",
        &format!("{}\n{}\n", login_line(), jump.known_hosts_line()),
    );
    project.slurmfile(&cluster_table(
        c.port,
        &known,
        &format!(
            "key_filename = \"{}\"\nproxy_jump = \"127.0.0.1:{}\"\n",
            c.key.display(),
            jump.port
        ),
    ));
    let run = project.run(&["doctor", "--json"]);
    run.expect_code(6);
    let steps: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let last = steps.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["step"], "jump", "{steps}");
    assert!(
        last["detail"].as_str().unwrap().contains(&format!(
            "could not open a connection to 127.0.0.1 port {}",
            c.port
        )),
        "{last}"
    );
    assert!(
        last["fix"].as_str().unwrap().contains("AllowTcpForwarding"),
        "{last}"
    );
}

#[test]
fn a_chain_of_two_jump_hosts_from_ssh_config_aliases() {
    let c = cluster();
    let second = SshdBuilder::new().start();
    let project = Project::new();
    let known = project.write(
        "known_hosts",
        &format!(
            "{}\n{}\n{}\n",
            login_line(),
            jump_line(),
            second.known_hosts_line()
        ),
    );
    // sk-login jumps through j2, which itself jumps through j1: the chain is j1 -> j2 -> login.
    let config = project.write(
        "ssh_config",
        &format!(
            "Host j1\n  HostName 127.0.0.1\n  Port {}\nHost j2\n  HostName 127.0.0.1\n  Port {}\n  ProxyJump j1\nHost sk-login\n  HostName 127.0.0.1\n  Port {}\n  ProxyJump j2\nHost *\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
            c.jump_port,
            second.port,
            c.port,
            c.user,
            c.key.display(),
            known.display()
        ),
    );
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"sk-login\"\nssh_config = \"{}\"\n",
        config.display()
    ));
    let run = project.run(&["doctor"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    run.stdout_contains(&format!(
        "via {u}@127.0.0.1:{} -> {u}@127.0.0.1:{} -> {u}@127.0.0.1:{}",
        c.jump_port,
        second.port,
        c.port,
        u = c.user
    ));
    // Each hop's key was checked under its own name, and each hop authenticated on its own.
    for (hop, line) in [("j1", 2), ("j2", 3), ("sk-login", 1)] {
        run.stdout_contains(&format!(
            "host key       {hop}: known ({}:{line})",
            known.display()
        ))
        .stdout_contains(&format!(
            "auth           {hop}: key {}: accepted",
            c.key.display()
        ));
    }
    // The second jump host saw a login, and forwarded a connection to the login host.
    let log = second.log();
    assert!(log.contains("Accepted publickey for"), "{log}");

    // The same chain given as --jump on the command line.
    let jumps = format!(
        "{u}@127.0.0.1:{},{u}@127.0.0.1:{}",
        c.jump_port,
        second.port,
        u = c.user
    );
    project.slurmfile(&cluster_table(
        c.port,
        &known,
        &format!("key_filename = \"{}\"\n", c.key.display()),
    ));
    project.run(&["status", "--jump", &jumps]).ok();
}

// ---------------------------------------------------------------------------------------------------
// Encrypted keys and connect timeouts

#[test]
fn an_encrypted_key_without_a_terminal_says_so() {
    let c = cluster();
    let project = Project::new();
    let key = keygen_with_passphrase(project.path(), "id", KeyType::Ed25519, "secret words");
    user_cert(&key, "encrypted");
    project.slurmfile(&cluster_table(
        c.port,
        &c.known_hosts,
        &format!("key_filename = \"{}\"\n", key.display()),
    ));
    project
        .run(&["status"])
        .expect_code(5)
        .stderr_contains("encrypted, and its passphrase cannot be asked for");
}

#[test]
fn a_server_that_never_answers_times_out_after_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let project = Project::new();
    project.slurmfile(&cluster_table(
        port,
        &cluster().known_hosts,
        "connect_timeout = 1\n",
    ));
    let started = Instant::now();
    project
        .run(&["status"])
        .expect_code(6)
        .stderr_contains("timed out after 1 s");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(listener);
}

// ---------------------------------------------------------------------------------------------------
// doctor

#[test]
fn doctor_json_walks_every_step_against_the_cluster() {
    let project = Project::new();
    project.slurmfile(&cluster().cluster_table());
    let run = project.run(&["doctor", "--json"]);
    run.ok();
    let steps: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for expected in [
        "slurmfile",
        "config",
        "dns",
        "tcp",
        "host key",
        "auth",
        "slurm tools",
        "slurm",
        "job_base_dir",
    ] {
        assert!(names.contains(&expected), "no {expected} step: {names:?}");
    }
    for step in steps.as_array().unwrap() {
        assert_eq!(step["ok"], true, "{step}");
    }
    let host_key = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "host key")
        .unwrap();
    assert!(
        host_key["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("known ({}:1)", cluster().known_hosts.display())),
        "{host_key}"
    );
}

#[test]
fn doctor_stops_at_the_first_failure_with_its_fix() {
    let c = cluster();
    let project = Project::new();
    let empty = project.write("known_hosts", "");
    project.slurmfile(&cluster_table(
        c.port,
        &empty,
        &format!("key_filename = \"{}\"\n", c.key.display()),
    ));
    // The exit code is the one any command gives for this failure: 4, host key refused.
    let run = project.run(&["doctor", "--json"]);
    run.expect_code(4);
    let steps: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let steps = steps.as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!(last["step"], "host key", "{steps:?}");
    assert_eq!(last["ok"], false);
    assert!(
        last["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("ssh-keyscan -p {} 127.0.0.1 >> ", c.port)),
        "{last}"
    );
    // The fix is said once, under the failing step, not repeated in its detail.
    assert!(
        !last["detail"].as_str().unwrap().contains("ssh-keyscan"),
        "{last}"
    );
    // The text form prints the same fix under the failing step.
    let text = project.run(&["doctor"]);
    text.expect_code(4)
        .stdout_contains("FAIL  host key")
        .stdout_contains("fix: verify the fingerprint");
}

// ---------------------------------------------------------------------------------------------------
// ssh_config: the fallback parser against `ssh -G`

/// The ssh_config keys slurmkit reads.
const CONFIG_KEYS: [&str; 13] = [
    "hostname",
    "user",
    "port",
    "identityfile",
    "certificatefile",
    "identitiesonly",
    "proxyjump",
    "userknownhostsfile",
    "stricthostkeychecking",
    "hostkeyalias",
    "serveraliveinterval",
    "connecttimeout",
    "hashknownhosts",
];

/// `ssh -G -F <config> <host>`, restricted to [`CONFIG_KEYS`].
fn ssh_g(config: &Path, host: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let output = run_ok(
        std::process::Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(config)
            .arg("--")
            .arg(host),
    );
    let mut map = std::collections::BTreeMap::<String, Vec<String>>::new();
    for line in output.lines() {
        if let Some((key, value)) = line.split_once(' ')
            && CONFIG_KEYS.contains(&key)
        {
            map.entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    map
}

#[test]
fn the_fallback_ssh_config_parser_agrees_with_ssh_g() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("included.conf"),
        "Host daint.cscs.ch\n  User incuser\n  CertificateFile /certs/%r-cert.pub\n  CertificateFile /certs/second\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/10-nodes.conf"),
        "Host node??\n  User nodeuser\n  Port 2202\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/20-more.conf"),
        "Host node*\n  User ignored\n  ProxyJump login\n",
    )
    .unwrap();
    let configs: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "aliases, first value wins, IdentityFile accumulation",
            "Host Daint daint\n  HostName Daint.Alps.CSCS.ch\n  IdentityFile ~/.ssh/cscs-key\n  IdentityFile /keys/%r@%h-%p\n  CertificateFile ~/.ssh/cscs-key-cert.pub\n  ProxyJump ela\n  UserKnownHostsFile ~/kh1 /tmp/kh2\n  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n\nHost *\n  User fallback\n  HostName ignored\n  IdentityFile ~/.ssh/id_ed25519\n  IdentityFile ~/.ssh/cscs-key\n  UserKnownHostsFile /tmp/other\n  Port 2222\n  ServerAliveInterval 15\n  ConnectTimeout 7\n  HashKnownHosts yes\n  HostKeyAlias %h-alias\n".into(),
            vec!["daint", "DAINT", "other"],
        ),
        (
            "global options, Include, negation, ProxyJump lists and none, tokens",
            format!("# options before any Host apply to all\nUser=globaluser\nInclude {d}/included.conf\n\nHost *.cscs.ch !ela.cscs.ch\n  HostName %h.internal\n  ProxyJump ela.cscs.ch,bob@bastion:2200\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile %d/kh-%u ~/.ssh/kh-%h\n\nHOST ela.cscs.ch\n  STRICTHOSTKEYCHECKING no\n  ProxyJump none\n  IdentityFile \"/path with space/key\"\n  IdentityFile /same\n  IdentityFile /same\n\nHost *\n  Port = 2200\n  IdentitiesOnly no\n"),
            vec!["daint.cscs.ch", "ela.cscs.ch", "DAINT.cscs.ch", "other"],
        ),
        (
            "? wildcards, globbed Include, comments, times, HostKeyAlias case, none",
            format!("Include {d}/conf.d/*.conf\nHost login # the login node\n  HostName login.example.org\n  Port 2201 # trailing comment\n  ConnectTimeout 1m30s\n  ServerAliveInterval 2m\n  HostKeyAlias Login-Alias\n  CertificateFile /c\n  CertificateFile /c\n  UserKnownHostsFile none\n  StrictHostKeyChecking off\nHost !node01 node*\n  ConnectTimeout 5\nHost *\n  HashKnownHosts no\n"),
            vec!["node01", "node1", "node123", "login", "Login"],
        ),
        (
            "a site config with a jump host",
            "Host ela\n  HostName ela.cscs.ch\n  User alice\n  IdentityFile ~/.ssh/cscs-key\n\nHost daint.alps eiger.alps\n  HostName %h.cscs.ch\n  ProxyJump ela\n  User alice\n  IdentityFile ~/.ssh/cscs-key\n  IdentitiesOnly yes\n\nHost *\n  ServerAliveInterval 60\n  AddKeysToAgent yes\n  StrictHostKeyChecking ask\n".into(),
            vec!["daint.alps", "eiger.alps", "ela", "santis.alps"],
        ),
    ];
    let local_user = run_ok(std::process::Command::new("id").arg("-un"))
        .trim()
        .to_string();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (index, (what, text, hosts)) in configs.iter().enumerate() {
        let path = dir.path().join(format!("config{index}"));
        std::fs::write(&path, text).unwrap();
        for host in hosts {
            let expected = ssh_g(&path, host);
            let defaults = ssh_g(Path::new("/dev/null"), host);
            let parsed = slurmkit::ssh::config_file::parse(text, host, &local_user, dir.path());
            for key in CONFIG_KEYS {
                let actual = parsed.get(key).or(defaults.get(key));
                compared += 1;
                if actual != expected.get(key) {
                    mismatches.push(format!(
                        "{what} / {host} / {key}: ssh -G says {:?}, the parser {actual:?}",
                        expected.get(key)
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} values differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------
// keyboard-interactive and password, through the library's Authenticator against an in-process
// russh server (sshd would need PAM for these), and passphrase prompts against the real sshd

mod prompts {
    use super::*;
    use russh::server::{self, Auth, Response};
    use russh::{MethodKind, MethodSet};
    use slurmkit::ssh::auth::{AuthError, AuthPlan, Identity, NoPrompt, Prompter};
    use slurmkit::ssh::{Hop, Session, SshError, Transport};
    use slurmkit::types::HostKeyPolicy;

    /// Answers prompts from a script and records what it was shown and asked.
    #[derive(Default)]
    struct Scripted {
        answers: Vec<(String, String)>,
        asked: Mutex<Vec<(String, bool)>>,
        shown: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(answers: &[(&str, &str)]) -> Arc<Self> {
            Arc::new(Scripted {
                answers: answers
                    .iter()
                    .map(|(p, a)| (p.to_string(), a.to_string()))
                    .collect(),
                ..Default::default()
            })
        }

        fn asked(&self) -> Vec<(String, bool)> {
            self.asked.lock().unwrap().clone()
        }

        fn shown(&self) -> Vec<String> {
            self.shown.lock().unwrap().clone()
        }
    }

    impl Prompter for Scripted {
        fn banner(&self, text: &str) {
            self.shown.lock().unwrap().push(format!("banner: {text}"));
        }

        fn instructions(&self, text: &str) {
            self.shown.lock().unwrap().push(text.to_string());
        }

        fn ask(&self, prompt: &str, echo: bool) -> std::io::Result<String> {
            self.asked.lock().unwrap().push((prompt.to_string(), echo));
            let answers: Vec<&str> = self
                .answers
                .iter()
                .filter(|(p, _)| p == prompt)
                .map(|(_, a)| a.as_str())
                .collect();
            // The n-th time a prompt is asked, its n-th scripted answer (the last one repeats).
            let times = self
                .asked
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p == prompt)
                .count();
            answers
                .get(times - 1)
                .or(answers.last())
                .map(|a| a.to_string())
                .ok_or_else(|| std::io::Error::other(format!("unscripted prompt {prompt:?}")))
        }
    }

    /// Every log event (slurmkit's and russh's, down to trace) on this thread while the guard lives.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl Logs {
        fn capture(&self) -> impl Drop {
            use tracing_subscriber::util::SubscriberInitExt;
            tracing_subscriber::fmt()
                .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
                .with_ansi(false)
                .with_writer(self.clone())
                .finish()
                .set_default()
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
        type Writer = Logs;

        fn make_writer(&'a self) -> Logs {
            self.clone()
        }
    }

    /// What the server expects, round by round; it records every round's answers.
    #[derive(Clone)]
    struct Server {
        /// The publickey step succeeds only partially: keyboard-interactive must follow.
        key_then_otp: bool,
        key_accepted: bool,
        round: usize,
        answers: Arc<Mutex<Vec<Vec<String>>>>,
    }

    type Prompts = &'static [(std::borrow::Cow<'static, str>, bool)];

    fn round(name: &'static str, instructions: &'static str, prompts: Prompts) -> Auth {
        Auth::Partial {
            name: name.into(),
            instructions: instructions.into(),
            prompts: prompts.into(),
        }
    }

    impl server::Handler for Server {
        type Error = russh::Error;

        async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
            Ok(Some("Authorized use only.\n".into()))
        }

        async fn auth_publickey(
            &mut self,
            _user: &str,
            _key: server::VerifiedPublicKey<'_>,
        ) -> Result<Auth, Self::Error> {
            // `AuthenticationMethods publickey,keyboard-interactive`: the key is only the first step.
            self.key_accepted = true;
            Ok(Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
                partial_success: true,
            })
        }

        async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
            self.answers
                .lock()
                .unwrap()
                .push(vec![user.to_string(), password.to_string()]);
            Ok(if password == "correct horse" {
                Auth::Accept
            } else {
                Auth::reject()
            })
        }

        async fn auth_keyboard_interactive<'a>(
            &'a mut self,
            _user: &str,
            _submethods: &str,
            response: Option<Response<'a>>,
        ) -> Result<Auth, Self::Error> {
            if let Some(response) = response {
                let answers: Vec<String> = response
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .collect();
                self.answers.lock().unwrap().push(answers);
            }
            let answers = self.answers.lock().unwrap().clone();
            let last: Vec<&str> = answers
                .last()
                .map(|a| a.iter().map(String::as_str).collect())
                .unwrap_or_default();
            self.round += 1;
            if self.key_then_otp {
                return Ok(match (self.round, last.as_slice()) {
                    (1, _) if self.key_accepted => round(
                        "",
                        "",
                        &[(std::borrow::Cow::Borrowed("One-time password: "), false)],
                    ),
                    (2, ["424242"]) => Auth::Accept,
                    _ => Auth::reject(),
                });
            }
            Ok(match (self.round, last.as_slice()) {
                (1, _) => round(
                    "Cluster login",
                    "Answer two questions.",
                    &[
                        (std::borrow::Cow::Borrowed("Username: "), true),
                        (std::borrow::Cow::Borrowed("Password: "), false),
                    ],
                ),
                // An info request with no prompts: the client must answer it with no responses.
                (2, ["skuser", "hunter2"]) => round("", "Almost there.", &[]),
                (3, []) => round(
                    "",
                    "",
                    &[(std::borrow::Cow::Borrowed("Verification code: "), false)],
                ),
                (4, ["123456"]) => Auth::Accept,
                _ => Auth::reject(),
            })
        }
    }

    /// Serve one connection on a free port with `methods`; returns the port.
    async fn serve(dir: &Path, methods: &[MethodKind], handler: Server) -> u16 {
        let host_key = keygen(dir, "server_host_key", KeyType::Ed25519);
        let config = Arc::new(server::Config {
            methods: MethodSet::from(methods),
            auth_rejection_time: Duration::from_millis(1),
            auth_rejection_time_initial: Some(Duration::from_millis(1)),
            keys: vec![russh::keys::load_secret_key(&host_key, None).unwrap()],
            ..Default::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            if let Ok(session) = server::run_stream(config, socket, handler).await {
                let _ = session.await;
            }
        });
        port
    }

    fn hop(dir: &Path, port: u16, identities: Vec<Identity>) -> Hop {
        Hop {
            address: "127.0.0.1".into(),
            port,
            display_name: "mfa-test".into(),
            host_key_alias: None,
            known_hosts: vec![dir.join("known_hosts")],
            record_to: dir.join("known_hosts"),
            hash_known_hosts: false,
            policy: HostKeyPolicy::Auto,
            auth: AuthPlan {
                user: "skuser".into(),
                identities,
                identities_only: true,
                agent_socket: None,
            },
        }
    }

    fn server(key_then_otp: bool) -> (Server, Arc<Mutex<Vec<Vec<String>>>>) {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let server = Server {
            key_then_otp,
            key_accepted: false,
            round: 0,
            answers: answers.clone(),
        };
        (server, answers)
    }

    fn attempts(session: &Session) -> Vec<String> {
        session.reports[0]
            .auth
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// The test runtime is single-threaded: the client's session task logs into the capture too.
    #[tokio::test]
    async fn keyboard_interactive_runs_every_round_with_the_servers_text_and_echo_flags() {
        let logs = Logs::default();
        let _capture = logs.capture();
        let dir = tempfile::tempdir().unwrap();
        let (handler, answers) = server(false);
        let port = serve(dir.path(), &[MethodKind::KeyboardInteractive], handler).await;
        let prompter = Scripted::new(&[
            ("(skuser@mfa-test) Username: ", "skuser"),
            ("(skuser@mfa-test) Password: ", "hunter2"),
            ("(skuser@mfa-test) Verification code: ", "123456"),
        ]);
        let session = Session::connect(
            &[],
            &hop(dir.path(), port, vec![]),
            &Transport::default(),
            prompter.clone(),
        )
        .await
        .unwrap();
        assert_eq!(attempts(&session), vec!["keyboard-interactive: accepted"]);
        assert_eq!(
            prompter.asked(),
            vec![
                ("(skuser@mfa-test) Username: ".to_string(), true),
                ("(skuser@mfa-test) Password: ".to_string(), false),
                ("(skuser@mfa-test) Verification code: ".to_string(), false),
            ]
        );
        assert_eq!(
            prompter.shown(),
            vec![
                "banner: Authorized use only.\n",
                "Cluster login",
                "Answer two questions.",
                "Almost there."
            ]
        );
        assert_eq!(
            *answers.lock().unwrap(),
            vec![
                vec!["skuser".to_string(), "hunter2".to_string()],
                vec![],
                vec!["123456".to_string()],
            ]
        );
        session.close().await;
        let logs = logs.text();
        assert!(logs.contains("userauth"), "nothing was captured: {logs}");
        for secret in ["hunter2", "123456"] {
            assert!(!logs.contains(secret), "{secret} was logged:\n{logs}");
        }
    }

    #[tokio::test]
    async fn a_key_accepted_partially_is_followed_by_a_one_time_password() {
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(dir.path(), "id", KeyType::Ed25519);
        let (handler, answers) = server(true);
        let port = serve(
            dir.path(),
            &[MethodKind::PublicKey, MethodKind::KeyboardInteractive],
            handler,
        )
        .await;
        let prompter = Scripted::new(&[("(skuser@mfa-test) One-time password: ", "424242")]);
        let session = Session::connect(
            &[],
            &hop(
                dir.path(),
                port,
                vec![Identity::new(key.clone(), &[], true)],
            ),
            &Transport::default(),
            prompter.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            attempts(&session),
            vec![
                format!(
                    "key {}: accepted, but the server requires another method too",
                    key.display()
                ),
                "keyboard-interactive: accepted".to_string(),
            ]
        );
        assert_eq!(
            prompter.asked(),
            vec![("(skuser@mfa-test) One-time password: ".to_string(), false)]
        );
        assert_eq!(*answers.lock().unwrap(), vec![vec!["424242".to_string()]]);
        session.close().await;
    }

    #[tokio::test]
    async fn a_password_is_asked_for_without_echo() {
        let logs = Logs::default();
        let _capture = logs.capture();
        let dir = tempfile::tempdir().unwrap();
        let (handler, answers) = server(false);
        let port = serve(dir.path(), &[MethodKind::Password], handler).await;
        let prompter = Scripted::new(&[("skuser@mfa-test's password: ", "correct horse")]);
        let session = Session::connect(
            &[],
            &hop(dir.path(), port, vec![]),
            &Transport::default(),
            prompter.clone(),
        )
        .await
        .unwrap();
        assert_eq!(attempts(&session), vec!["password: accepted"]);
        assert_eq!(
            prompter.asked(),
            vec![("skuser@mfa-test's password: ".to_string(), false)]
        );
        assert_eq!(
            *answers.lock().unwrap(),
            vec![vec!["skuser".to_string(), "correct horse".to_string()]]
        );
        session.close().await;
        let logs = logs.text();
        assert!(logs.contains("userauth"), "nothing was captured: {logs}");
        assert!(
            !logs.contains("correct horse"),
            "the password was logged:\n{logs}"
        );
    }

    #[tokio::test]
    async fn without_a_terminal_the_failure_names_the_question_that_could_not_be_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (handler, _) = server(false);
        let port = serve(dir.path(), &[MethodKind::KeyboardInteractive], handler).await;
        let error = Session::connect(
            &[],
            &hop(dir.path(), port, vec![]),
            &Transport::default(),
            Arc::new(NoPrompt),
        )
        .await
        .err()
        .expect("no terminal, no login");
        let SshError::Auth(AuthError::Failed { attempts, .. }) = &error else {
            panic!("{error}");
        };
        assert_eq!(attempts.len(), 1, "{error}");
        assert!(
            attempts[0]
                .outcome
                .to_string()
                .starts_with("the server asked \"Username: \", and there is no terminal"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_encrypted_key_is_unlocked_with_the_passphrase_asked_for() {
        let c = cluster();
        let dir = tempfile::tempdir().unwrap();
        let key = keygen_with_passphrase(dir.path(), "id", KeyType::Rsa, "open sesame");
        user_cert(&key, "encrypted-rsa");
        let prompt = format!("Enter passphrase for key '{}': ", key.display());
        // A wrong passphrase first: asked again, after saying so.
        let prompter = Scripted::new(&[(&prompt, "wrong"), (&prompt, "open sesame")]);
        let target = Hop {
            address: "127.0.0.1".into(),
            port: c.port,
            display_name: "login".into(),
            host_key_alias: None,
            known_hosts: vec![c.known_hosts.clone()],
            record_to: c.known_hosts.clone(),
            hash_known_hosts: false,
            policy: HostKeyPolicy::Reject,
            auth: AuthPlan {
                user: c.user.clone(),
                identities: vec![Identity::new(key.clone(), &[], true)],
                identities_only: true,
                agent_socket: None,
            },
        };
        let session = Session::connect(&[], &target, &Transport::default(), prompter.clone())
            .await
            .unwrap();
        assert_eq!(
            prompter.asked(),
            vec![(prompt.clone(), false), (prompt.clone(), false)]
        );
        assert_eq!(prompter.shown(), vec!["Bad passphrase, try again."]);
        assert_eq!(
            attempts(&session),
            vec![format!("certificate {}-cert.pub: accepted", key.display())]
        );
        session.close().await;
    }
}
