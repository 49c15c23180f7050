//! `slurmkit doctor`: walk the path to the cluster one step at a time, print one line per step, and
//! say how to fix the first step that fails.

use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;

use super::diagnostics::{self, Failure};
use super::terminal::TerminalPrompter;
use crate::error::{Diagnose, exit, hints};
use crate::exec::Exec;
use crate::lifecycle::{Backend, Connection, Plan, Target};
use crate::ssh::Hop;
use crate::ssh::SshError;
use crate::ssh::auth::{AuthError, human_duration};
use crate::ssh::known_hosts::unix_now;
use crate::ssh::policy::Acceptance;
use crate::types::shell::ShellCommand;

#[derive(Debug, Serialize)]
struct Step {
    step: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Default)]
struct Report {
    steps: Vec<Step>,
    /// The exit code of the first failure (the same codes the other commands use).
    exit_code: Option<u8>,
}

impl Report {
    fn ok(&mut self, step: &str, detail: impl Into<String>) {
        self.steps.push(Step {
            step: step.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        });
    }

    fn fail(&mut self, step: &str, detail: impl Into<String>, fix: Option<String>) {
        self.exit_code.get_or_insert(exit::CLUSTER);
        self.steps.push(Step {
            step: step.into(),
            ok: false,
            detail: detail.into(),
            fix,
        });
    }

    fn fail_with(&mut self, step: &str, error: &dyn Diagnose) {
        // The hints come last, each possibly over several lines; they belong in `fix`, not here.
        let detail = diagnostics::render(error)
            .lines()
            .take_while(|l| !l.starts_with("hint: "))
            .collect::<Vec<_>>()
            .join("\n");
        let fix = hints(error).first().cloned();
        self.exit_code.get_or_insert(error.exit_code());
        self.fail(step, detail.trim_start_matches("error: ").to_string(), fix);
    }

    fn failed(&self) -> bool {
        self.exit_code.is_some()
    }
}

pub async fn run(plan: &Plan, json: bool) -> Result<ExitCode, Failure> {
    let mut report = Report::default();
    walk(plan, &mut report).await;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report.steps)?);
    } else {
        for step in &report.steps {
            let mark = if step.ok { "ok  " } else { "FAIL" };
            let detail = step.detail.lines().collect::<Vec<_>>().join("\n       ");
            outln!("{mark}  {:<14} {detail}", step.step);
            if let Some(fix) = &step.fix {
                outln!(
                    "      fix: {}",
                    fix.lines().collect::<Vec<_>>().join("\n           ")
                );
            }
        }
    }
    Ok(ExitCode::from(report.exit_code.unwrap_or(exit::SUCCESS)))
}

async fn walk(plan: &Plan, report: &mut Report) {
    match &plan.file {
        Some(f) => report.ok(
            "slurmfile",
            format!(
                "{}{}",
                f.path.display(),
                f.environment
                    .as_ref()
                    .map(|e| format!(" (environment {e})"))
                    .unwrap_or_default()
            ),
        ),
        None => report.ok("slurmfile", "none found; using flags only"),
    }
    let target = match plan.target().await {
        Ok(target) => target,
        Err(e) => return report.fail_with("config", &e),
    };
    let Backend::Ssh {
        jumps, target: hop, ..
    } = &target.backend
    else {
        report.ok(
            "config",
            "backend = local: Slurm commands run on this machine",
        );
        return remote_checks(&target, Connection::Local, report).await;
    };
    let hops: Vec<&Hop> = jumps.iter().chain(std::iter::once(hop.as_ref())).collect();
    let route: Vec<String> = hops
        .iter()
        .map(|h| format!("{}@{}:{}", h.auth.user, h.address, h.port))
        .collect();
    // One policy for the whole route, or each hop's when they differ (a jump host's own ssh_config).
    let policies: Vec<&str> = hops.iter().map(|h| h.policy.as_str()).collect();
    let policy = if policies.iter().all(|p| *p == policies[0]) {
        policies[0].to_string()
    } else {
        hops.iter()
            .zip(&policies)
            .map(|(h, p)| format!("{} {p}", h.display_name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    report.ok(
        "config",
        format!(
            "{}{}; host_key_policy {policy}; known_hosts {}",
            target.key,
            // Only a route through jump hosts is worth spelling out.
            if route.len() > 1 {
                format!(" via {}", route.join(" -> "))
            } else {
                String::new()
            },
            hop.known_hosts
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    );

    // DNS and TCP for the first hop (later hops are reached through the previous one).
    let first = jumps.first().unwrap_or(hop);
    match tokio::net::lookup_host((first.address.as_str(), first.port)).await {
        Ok(addresses) => {
            let addresses: Vec<String> = addresses.map(|a| a.ip().to_string()).collect();
            report.ok(
                "dns",
                format!("{} -> {}", first.address, addresses.join(", ")),
            );
        }
        Err(e) => {
            return report.fail(
                "dns",
                format!("{} does not resolve: {e}", first.address),
                Some("check the host name (and ssh_config HostName), or your DNS/VPN".into()),
            );
        }
    }
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((first.address.as_str(), first.port)),
    )
    .await
    {
        Ok(Ok(_)) => report.ok(
            "tcp",
            format!("{}:{} accepts connections", first.address, first.port),
        ),
        Ok(Err(e)) => {
            return report.fail(
                "tcp",
                format!("{}:{}: {e}", first.address, first.port),
                Some("check the port, firewalls and VPN; `nc -vz host port` tests the same".into()),
            );
        }
        Err(_) => {
            return report.fail(
                "tcp",
                format!("{}:{}: no answer within 10 s", first.address, first.port),
                Some("a firewall may drop the connection; check VPN and port".into()),
            );
        }
    }

    // Certificates, before any server sees them.
    let mut certificates: Vec<&std::path::PathBuf> = Vec::new();
    for hop in jumps.iter().chain(std::iter::once(hop.as_ref())) {
        for identity in &hop.auth.identities {
            for cert_path in &identity.certificates {
                if !certificates.contains(&cert_path) {
                    certificates.push(cert_path);
                }
            }
        }
    }
    for cert_path in certificates {
        match russh::keys::load_openssh_certificate(cert_path) {
            Ok(cert) if unix_now() >= cert.valid_before() => {
                let error = AuthError::CertificateExpired {
                    path: cert_path.clone(),
                    expired_at: cert.valid_before(),
                };
                report.fail_with("certificate", &error);
            }
            Ok(cert) => report.ok(
                "certificate",
                format!(
                    "{} valid for {} more (principals: {})",
                    cert_path.display(),
                    human_duration(cert.valid_before() - unix_now()),
                    cert.valid_principals().join(", ")
                ),
            ),
            Err(e) => report.fail("certificate", format!("{}: {e}", cert_path.display()), None),
        }
    }
    if report.failed() {
        return;
    }

    let conn = match Connection::open(&target, Arc::new(TerminalPrompter)).await {
        Ok(conn) => conn,
        Err(e) => {
            let step = match &e {
                SshError::HostKey(_) => "host key",
                SshError::Auth(AuthError::CertificateExpired { .. }) => "certificate",
                SshError::Auth(_) => "auth",
                SshError::Jump { .. } => "jump",
                _ => "ssh",
            };
            return report.fail_with(step, &e);
        }
    };
    if let Connection::Ssh(session) = &conn {
        for hop_report in &session.reports {
            let verdict = match &hop_report.host_key {
                Acceptance::Known(origin) => format!("known ({origin})"),
                Acceptance::Warned { fingerprint } => {
                    format!("UNKNOWN, accepted under `warn` ({fingerprint}); record it to be safe")
                }
                Acceptance::Recorded { path, fingerprint } => {
                    format!("new, recorded in {} ({fingerprint})", path.display())
                }
            };
            report.ok("host key", format!("{}: {verdict}", hop_report.name));
            let tried: Vec<String> = hop_report.auth.iter().map(|a| a.to_string()).collect();
            report.ok("auth", format!("{}: {}", hop_report.name, tried.join("; ")));
        }
    }
    remote_checks(&target, conn, report).await;
}

async fn remote_checks(target: &Target, conn: Connection, report: &mut Report) {
    let which = ShellCommand::new("command")
        .arg("-v")
        .args(["sbatch", "squeue", "scontrol", "scancel"]);
    match conn.exec(&which).await {
        Ok(output) if output.success() => report.ok(
            "slurm tools",
            output.stdout_text().lines().collect::<Vec<_>>().join(" "),
        ),
        Ok(output) => report.fail(
            "slurm tools",
            format!(
                "not all of sbatch, squeue, scontrol, scancel are on the remote PATH (found: {})",
                output.stdout_text().lines().collect::<Vec<_>>().join(" ")
            ),
            Some(
                "Slurm's commands must be on the PATH of non-interactive shells; ask your admins"
                    .into(),
            ),
        ),
        Err(e) => report.fail("slurm tools", e.to_string(), None),
    }
    let ping = ShellCommand::new("scontrol").arg("ping");
    match conn.exec(&ping).await {
        Ok(output) if output.success() && output.stdout_text().contains("UP") => report.ok("slurm", output.stdout_text().trim().to_string()),
        Ok(output) => report.fail(
            "slurm",
            format!("scontrol ping: {}{}", output.stdout_text().trim(), output.stderr_text().trim()),
            Some("the controller is down or unreachable from the login node, or SLURM_CONF is not set for SSH sessions".into()),
        ),
        Err(e) => report.fail("slurm", e.to_string(), None),
    }
    let probe = async {
        let files = conn.files().await?;
        let base = files.resolve_base(&target.job_base_dir).await?;
        let dir = files
            .create_job_dir(
                &base,
                &format!(".slurmkit-doctor-{:08x}", rand::random::<u32>()),
            )
            .await?;
        dir.write("probe", b"ok", 0o600).await?;
        let path = dir.path().to_string();
        // Remove the probe directory again.
        let _ = conn
            .exec(&ShellCommand::new("rm").arg("-r").arg("--").arg(&path))
            .await;
        Ok::<String, crate::lifecycle::LifecycleError>(base)
    };
    match probe.await {
        Ok(base) => report.ok("job_base_dir", format!("{base} is writable")),
        Err(e) => report.fail(
            "job_base_dir",
            e.to_string(),
            Some("set [cluster] job_base_dir to a directory you can write".into()),
        ),
    }
    conn.close().await;
}
