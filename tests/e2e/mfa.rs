//! Multi-factor logins against a real OpenSSH sshd with PAM and a TOTP module
//! (`pam_google_authenticator`), answered on a pseudo-terminal as a user would: key plus one-time code,
//! a mistyped code, three refused codes, Ctrl-C at the prompt, the server's LoginGraceTime running out,
//! and codes on both hops of a jump. Codes come from `oathtool`, from the same secret.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use slurmkit_e2e::pty::Pty;
use slurmkit_e2e::sshd::{Sshd, SshdBuilder, run_ok};
use slurmkit_e2e::{Project, cluster};

/// The TOTP secret (base32) of the test user, for every server here.
const SECRET: &str = "JBSWY3DPEHPK3PXP";
const PROMPT_WAIT: Duration = Duration::from_secs(30);

/// An sshd that wants the user's key and then a one-time code (`AuthenticationMethods
/// publickey,keyboard-interactive`), the code checked by PAM against [`SECRET`].
fn mfa_sshd(dir: &Path, lines: &[&str]) -> Sshd {
    let secret = dir.join("totp-secret");
    std::fs::write(&secret, format!("{SECRET}\n\" TOTP_AUTH\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pam = format!(
        "auth required pam_google_authenticator.so secret={} user=root\naccount required pam_permit.so\nsession required pam_permit.so\n",
        secret.display()
    );
    let mut builder = SshdBuilder::new()
        .pam(&pam)
        .line("AuthenticationMethods publickey,keyboard-interactive");
    for line in lines {
        builder = builder.line(line);
    }
    builder.start()
}

/// The code valid now.
fn code() -> String {
    run_ok(Command::new("oathtool").args(["--totp", "-b", SECRET]))
        .trim()
        .to_string()
}

/// A six-digit code valid in none of the windows the module accepts around now.
fn wrong_code() -> String {
    let near = run_ok(Command::new("oathtool").args([
        "--totp",
        "-b",
        "-w",
        "4",
        "-N",
        "60 seconds ago",
        SECRET,
    ]));
    ["000000", "111111", "222222"]
        .into_iter()
        .find(|c| !near.contains(c))
        .unwrap()
        .to_string()
}

/// A project whose cluster is `sshd` (reached as 127.0.0.1) with the cluster's key.
fn project_for(sshd: &Sshd, extra: &str) -> Project {
    let c = cluster();
    let project = Project::new();
    let known = project.write(
        "known_hosts",
        &format!("{}\n{extra}", sshd.known_hosts_line()),
    );
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"127.0.0.1\"\nport = {}\nusername = \"{}\"\nhost_key_policy = \"reject\"\nkey_filename = \"{}\"\nknown_hosts = \"{}\"\n",
        sshd.port,
        c.user,
        c.key.display(),
        known.display()
    ));
    project
}

fn prompt(host: &str) -> String {
    format!("({}@{host}) Verification code: ", cluster().user)
}

/// `slurmkit status` on a terminal of its own.
fn status_on_a_terminal(project: &Project) -> Pty {
    Pty::spawn(project.command(&["status"]))
}

#[test]
fn a_key_and_a_code_log_in_and_a_mistyped_code_can_be_typed_again_without_being_shown() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = mfa_sshd(dir.path(), &[]);
    let project = project_for(&sshd, "");
    let mut pty = status_on_a_terminal(&project);
    let wrong = wrong_code();
    pty.expect(&prompt("127.0.0.1"), PROMPT_WAIT);
    // Typed at once, as a password manager or a fast typist does: echo is already off.
    pty.send(format!("{wrong}\r").as_bytes());
    pty.expect("Permission denied, please try again.", PROMPT_WAIT);
    pty.expect(&prompt("127.0.0.1"), PROMPT_WAIT);
    let right = code();
    pty.send(format!("{right}\r").as_bytes());
    let (status, output) = pty.finish(PROMPT_WAIT);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("No jobs submitted from here"), "{output}");
    for typed in [&wrong, &right] {
        assert!(
            !output.contains(typed.as_str()),
            "{typed} was shown:\n{output}"
        );
    }
    assert!(pty.echoes_lines(), "the terminal was left without echo");
    let log = sshd.log();
    assert!(log.contains("Accepted keyboard-interactive/pam"), "{log}");
}

#[test]
fn three_refused_codes_end_with_a_hint_about_the_code_and_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = mfa_sshd(dir.path(), &[]);
    let project = project_for(&sshd, "");
    let mut pty = status_on_a_terminal(&project);
    let wrong = wrong_code();
    for _ in 0..3 {
        pty.expect(&prompt("127.0.0.1"), PROMPT_WAIT);
        pty.send(format!("{wrong}\r").as_bytes());
    }
    let (status, output) = pty.finish(PROMPT_WAIT);
    assert_eq!(status.code(), Some(5), "{output}");
    assert_eq!(
        output.matches("Verification code: ").count(),
        3,
        "asked three times, as OpenSSH does:\n{output}"
    );
    assert!(
        output.contains("accepted, but the server requires another method too"),
        "{output}"
    );
    assert!(
        output.contains("refused the answers to \"Verification code:\" (3 tries)"),
        "{output}"
    );
    assert!(
        !output.contains("authorized_keys"),
        "the key was accepted:\n{output}"
    );
}

#[test]
fn ctrl_c_at_the_prompt_exits_130_and_gives_the_terminal_back() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = mfa_sshd(dir.path(), &[]);
    let project = project_for(&sshd, "");
    let mut pty = status_on_a_terminal(&project);
    pty.expect(&prompt("127.0.0.1"), PROMPT_WAIT);
    pty.send(b"4711");
    pty.send(b"\x03");
    let (status, output) = pty.finish(PROMPT_WAIT);
    assert_eq!(status.code(), Some(130), "{output}");
    assert!(output.contains("interrupted"), "{output}");
    assert!(!output.contains("4711"), "{output}");
    assert!(!output.contains("no terminal"), "{output}");
    assert!(pty.echoes_lines(), "the terminal was left without echo");
}

#[test]
fn the_server_giving_up_while_the_code_is_awaited_is_reported_as_its_login_grace_time() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = mfa_sshd(dir.path(), &["LoginGraceTime 3"]);
    let project = project_for(&sshd, "");
    let mut pty = status_on_a_terminal(&project);
    pty.expect(&prompt("127.0.0.1"), PROMPT_WAIT);
    // Looking for the phone.
    std::thread::sleep(Duration::from_secs(5));
    pty.send(format!("{}\r", code()).as_bytes());
    let (status, output) = pty.finish(PROMPT_WAIT);
    assert_eq!(status.code(), Some(5), "{output}");
    assert!(output.contains("LoginGraceTime"), "{output}");
    assert!(
        output.contains("keyboard-interactive (answered \"Verification code:\")"),
        "the code's attempt is listed:\n{output}"
    );
    assert!(!output.contains("MaxAuthTries"), "{output}");
}

#[test]
fn with_codes_on_both_hops_of_a_jump_each_prompt_names_its_host() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let target = mfa_sshd(dir.path(), &[]);
    // The jump host answers on 127.0.0.2 so the two prompts differ, as two real hosts' would.
    let jump_dir = tempfile::tempdir().unwrap();
    let jump = mfa_sshd(jump_dir.path(), &["ListenAddress 127.0.0.2"]);
    let jump_line = jump
        .known_hosts_line()
        .replace("[127.0.0.1]", "[127.0.0.2]");
    let project = project_for(&target, &format!("{jump_line}\n"));
    let slurmfile = std::fs::read_to_string(project.path().join("Slurmfile.toml")).unwrap();
    project.slurmfile(&format!(
        "{slurmfile}proxy_jump = \"{}@127.0.0.2:{}\"\n",
        c.user, jump.port
    ));
    let mut pty = status_on_a_terminal(&project);
    pty.expect(&prompt("127.0.0.2"), PROMPT_WAIT);
    pty.send(format!("{}\r", code()).as_bytes());
    pty.expect(&prompt("127.0.0.1"), PROMPT_WAIT);
    pty.send(format!("{}\r", code()).as_bytes());
    let (status, output) = pty.finish(PROMPT_WAIT);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(jump.log().contains("Accepted keyboard-interactive/pam"));
    assert!(target.log().contains("Accepted keyboard-interactive/pam"));
}
