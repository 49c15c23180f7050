//! The host-key policy: what to do with the key a server presents.
//!
//! A key that is recorded is accepted. A key that **changed**, or is revoked, is refused under every
//! policy. Only a host nothing records is up to the policy: `reject` refuses it, `warn` logs its
//! fingerprint and connects, `auto` records it and connects.

use std::fmt;
use std::path::{Path, PathBuf};

use super::known_hosts::{self, HostLookup, KnownHosts, Origin, Verdict};
use crate::error::{Diagnose, exit};
use crate::types::HostKeyPolicy;
use crate::types::shell::quote;
use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::{HashAlg, PublicKey};

/// The host a host-key decision is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedHost {
    /// What known_hosts lines are matched against: `host`, `[host]:port`, or the HostKeyAlias.
    pub name: String,
    /// Where the host was reached, for ssh-keyscan.
    pub address: String,
    pub port: u16,
    /// For a jump host: the name it was given (`-J` entry or ssh_config alias).
    pub jump: Option<String>,
    /// `name` is a HostKeyAlias, which ssh-keyscan cannot print: its output must be renamed.
    pub alias: bool,
}

impl fmt::Display for KeyedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.jump {
            Some(jump) => write!(f, "jump host {jump} ({})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl KeyedHost {
    /// The ssh-keyscan command that appends this host's keys to `file` under the name looked up.
    fn keyscan(&self, file: &Path, hashed: bool) -> String {
        let port = if self.port == 22 {
            String::new()
        } else {
            format!("-p {} ", self.port)
        };
        let file = quote(&file.display().to_string());
        if self.alias {
            // Keys are recorded under the alias, which ssh-keyscan knows nothing about.
            format!(
                "ssh-keyscan {port}{} | sed 's/^[^ ]*/{}/' >> {file}",
                quote(&self.address),
                self.name
            )
        } else {
            let hash = if hashed { "-H " } else { "" };
            format!("ssh-keyscan {hash}{port}{} >> {file}", quote(&self.address))
        }
    }
}

/// Why a host key was refused. Each variant's text says what happened; [`HostKeyError::hint`] says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "host key verification failed: {host} is not a known host (it presented {key_type} {fingerprint}) and host_key_policy is \"reject\""
    )]
    Unknown {
        host: KeyedHost,
        key_type: String,
        fingerprint: String,
        record_to: PathBuf,
        /// New entries are hashed (HashKnownHosts), so the fix should hash too.
        hashed: bool,
    },
    #[error(
        "REMOTE HOST IDENTIFICATION HAS CHANGED for {host}: it presented {key_type} {fingerprint}, but {recorded} records {recorded_fingerprint}. \
         Someone could be intercepting this connection, or the host's key was replaced; refusing under every host_key_policy"
    )]
    Changed {
        host: KeyedHost,
        key_type: String,
        fingerprint: String,
        recorded: Origin,
        recorded_fingerprint: String,
    },
    #[error(
        "the host key of {host} ({fingerprint}) is marked @revoked at {origin}; refusing to connect"
    )]
    Revoked {
        host: KeyedHost,
        fingerprint: String,
        origin: Origin,
    },
    #[error("the host certificate of {host} is not acceptable: {reason}")]
    CertificateRejected { host: KeyedHost, reason: String },
    #[error("could not record the host key of {host} in {path}: {source}")]
    RecordFailed {
        host: KeyedHost,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Diagnose for HostKeyError {
    fn exit_code(&self) -> u8 {
        exit::HOST_KEY
    }

    /// The concrete next step for the user.
    fn hint(&self) -> Option<String> {
        match self {
            HostKeyError::Unknown {
                host,
                record_to,
                hashed,
                ..
            } => Some(format!(
                "verify the fingerprint with the cluster's documentation or admins, then record the key:\n    {}\n  and check it matches: ssh-keygen -lf {}\n  (or connect once with --host-key-policy warn, or auto to record it on first use)",
                host.keyscan(record_to, *hashed),
                quote(&record_to.display().to_string()),
            )),
            HostKeyError::Changed { host, recorded, .. } => Some(format!(
                "if the cluster's admins confirm the new key, remove the old one and record the new:\n    ssh-keygen -R {} -f {}\n    {}",
                quote(&host.name),
                quote(&recorded.path.display().to_string()),
                host.keyscan(&recorded.path, false),
            )),
            HostKeyError::Revoked { origin, .. } => Some(format!(
                "a revoked key must not be trusted; ask the cluster's admins for the current key (the @revoked line is {origin})"
            )),
            HostKeyError::CertificateRejected { .. } => Some(
                "check the @cert-authority line in your known_hosts (ssh-keygen -L -f <host-cert> shows what the server presents), or ask the admins to renew the host certificate".into(),
            ),
            HostKeyError::RecordFailed { .. } => None,
        }
    }
}

/// How a host key came to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// A known_hosts line records it.
    Known(Origin),
    /// Unknown, accepted under `warn`.
    Warned { fingerprint: String },
    /// Unknown, recorded under `auto`.
    Recorded { path: PathBuf, fingerprint: String },
}

/// Everything needed to judge one host's key.
#[derive(Debug)]
pub struct HostKeyCheck {
    /// The host as messages name it.
    pub host: KeyedHost,
    pub lookup: HostLookup,
    pub known: KnownHosts,
    pub policy: HostKeyPolicy,
    /// Where `auto` records new keys (the first user known_hosts file).
    pub record_to: PathBuf,
    /// Record new keys hashed (OpenSSH's HashKnownHosts).
    pub hash_new: bool,
}

impl HostKeyCheck {
    /// `address`/`port` is where the host is reached; `alias` is its HostKeyAlias. Lines are read
    /// from `files` now, once.
    pub fn new(
        address: &str,
        port: u16,
        alias: Option<&str>,
        files: &[PathBuf],
        policy: HostKeyPolicy,
        record_to: PathBuf,
    ) -> Self {
        let lookup = HostLookup::new(address, port, alias);
        HostKeyCheck {
            host: KeyedHost {
                name: lookup.name.clone(),
                address: address.to_string(),
                port,
                jump: None,
                alias: alias.is_some(),
            },
            lookup,
            known: KnownHosts::load(files),
            policy,
            record_to,
            hash_new: false,
        }
    }

    /// Judge the presented key or certificate.
    pub fn decide(&self, presented: &PublicKeyOrCertificate) -> Result<Acceptance, HostKeyError> {
        let (verdict, key) = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => (
                self.known.check_key(&self.lookup, key.key_data()),
                key.clone(),
            ),
            PublicKeyOrCertificate::Certificate(cert) => (
                self.known
                    .check_certificate(&self.lookup, cert, known_hosts::unix_now()),
                PublicKey::new(cert.public_key().clone(), ""),
            ),
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let key_type = key.algorithm().to_string();
        let host = self.host.clone();
        match verdict {
            Verdict::Known(origin) => {
                tracing::debug!(host = %self.host, "host key {fingerprint} matches {origin}");
                Ok(Acceptance::Known(origin))
            }
            Verdict::Revoked(origin) => Err(HostKeyError::Revoked {
                host,
                fingerprint,
                origin,
            }),
            Verdict::Changed {
                recorded,
                recorded_fingerprint,
            } => Err(HostKeyError::Changed {
                host,
                key_type,
                fingerprint,
                recorded,
                recorded_fingerprint,
            }),
            Verdict::CertificateRejected { reason } => {
                Err(HostKeyError::CertificateRejected { host, reason })
            }
            Verdict::Unknown => match self.policy {
                HostKeyPolicy::Reject => Err(HostKeyError::Unknown {
                    host,
                    key_type,
                    fingerprint,
                    record_to: self.record_to.clone(),
                    hashed: self.hash_new,
                }),
                HostKeyPolicy::Warn => {
                    tracing::warn!(
                        "{host} is not a known host; connecting anyway (host_key_policy = \"warn\"). It presented {key_type} {fingerprint}; \
                         verify it and record it in {} to silence this warning",
                        self.record_to.display()
                    );
                    Ok(Acceptance::Warned { fingerprint })
                }
                HostKeyPolicy::Auto => {
                    let line = known_hosts::new_entry_line(&self.lookup, &key, self.hash_new);
                    known_hosts::append_line(&self.record_to, &line).map_err(|source| {
                        HostKeyError::RecordFailed {
                            host: host.clone(),
                            path: self.record_to.clone(),
                            source,
                        }
                    })?;
                    tracing::warn!(
                        "recorded the host key of {host} ({key_type} {fingerprint}) in {} (host_key_policy = \"auto\")",
                        self.record_to.display()
                    );
                    Ok(Acceptance::Recorded {
                        path: self.record_to.clone(),
                        fingerprint,
                    })
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGCFCpdzP9yFI9f315zoAKgt6TdXp/6kKE1LMpW/PUfQ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZL75m9pzfrDzuq2U5ezQf0B404We7XapM8Ghs6EksR";

    fn presented(text: &str) -> PublicKeyOrCertificate {
        PublicKeyOrCertificate::PublicKey {
            key: PublicKey::from_openssh(text).unwrap(),
            hash_alg: None,
        }
    }

    fn check(dir: &std::path::Path, contents: &str, policy: HostKeyPolicy) -> HostKeyCheck {
        let file = dir.join("known_hosts");
        std::fs::write(&file, contents).unwrap();
        HostKeyCheck::new(
            "127.0.0.1",
            2222,
            None,
            std::slice::from_ref(&file),
            policy,
            file.clone(),
        )
    }

    #[test]
    fn unknown_host_under_each_policy() {
        let dir = tempfile::tempdir().unwrap();
        let err = check(dir.path(), "", HostKeyPolicy::Reject)
            .decide(&presented(KEY_A))
            .unwrap_err();
        assert!(matches!(err, HostKeyError::Unknown { .. }));
        let hint = err.hint().unwrap();
        assert!(hint.contains("ssh-keyscan -p 2222 127.0.0.1 >> "), "{hint}");

        assert!(matches!(
            check(dir.path(), "", HostKeyPolicy::Warn).decide(&presented(KEY_A)),
            Ok(Acceptance::Warned { .. })
        ));

        let auto = check(dir.path(), "", HostKeyPolicy::Auto);
        assert!(matches!(
            auto.decide(&presented(KEY_A)),
            Ok(Acceptance::Recorded { .. })
        ));
        let recorded = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
        assert_eq!(recorded, format!("[127.0.0.1]:2222 {KEY_A}\n"));
        // Recorded means known from now on.
        let again = HostKeyCheck::new(
            "127.0.0.1",
            2222,
            None,
            &[dir.path().join("known_hosts")],
            HostKeyPolicy::Reject,
            dir.path().join("known_hosts"),
        );
        assert!(matches!(
            again.decide(&presented(KEY_A)),
            Ok(Acceptance::Known(_))
        ));
    }

    #[test]
    fn changed_key_is_refused_under_every_policy() {
        let dir = tempfile::tempdir().unwrap();
        for policy in [
            HostKeyPolicy::Reject,
            HostKeyPolicy::Warn,
            HostKeyPolicy::Auto,
        ] {
            let err = check(dir.path(), &format!("[127.0.0.1]:2222 {KEY_A}\n"), policy)
                .decide(&presented(KEY_B))
                .unwrap_err();
            assert!(
                matches!(err, HostKeyError::Changed { .. }),
                "{policy:?}: {err}"
            );
            let hint = err.hint().unwrap();
            assert!(
                hint.contains("ssh-keygen -R '[127.0.0.1]:2222' -f "),
                "{hint}"
            );
        }
        // auto must not have appended anything.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("known_hosts")).unwrap(),
            format!("[127.0.0.1]:2222 {KEY_A}\n")
        );
    }

    #[test]
    fn fixes_name_the_entry_as_it_is_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let file_text = file.display().to_string();
        // Under a HostKeyAlias, ssh-keyscan's output is renamed to the alias.
        std::fs::write(&file, format!("login-alias {KEY_A}\n")).unwrap();
        let mut alias = HostKeyCheck::new(
            "10.0.0.5",
            2222,
            Some("login-alias"),
            std::slice::from_ref(&file),
            HostKeyPolicy::Reject,
            file.clone(),
        );
        let hint = alias.decide(&presented(KEY_B)).unwrap_err().hint().unwrap();
        assert!(
            hint.contains(&format!("ssh-keygen -R login-alias -f {file_text}")),
            "{hint}"
        );
        assert!(
            hint.contains(&format!(
                "ssh-keyscan -p 2222 10.0.0.5 | sed 's/^[^ ]*/login-alias/' >> {file_text}"
            )),
            "{hint}"
        );
        // A jump host says so; new keys recorded hashed are scanned hashed.
        std::fs::write(&file, "").unwrap();
        alias = HostKeyCheck::new(
            "10.0.0.5",
            2222,
            None,
            std::slice::from_ref(&file),
            HostKeyPolicy::Reject,
            file.clone(),
        );
        alias.host.jump = Some("bastion".into());
        alias.hash_new = true;
        let err = alias.decide(&presented(KEY_B)).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "host key verification failed: jump host bastion ([10.0.0.5]:2222) is not a known host"
            ),
            "{err}"
        );
        assert!(
            err.hint()
                .unwrap()
                .contains(&format!("ssh-keyscan -H -p 2222 10.0.0.5 >> {file_text}")),
            "{err}"
        );
    }

    #[test]
    fn revoked_key_is_refused_under_every_policy() {
        let dir = tempfile::tempdir().unwrap();
        for policy in [
            HostKeyPolicy::Reject,
            HostKeyPolicy::Warn,
            HostKeyPolicy::Auto,
        ] {
            let text = format!("[127.0.0.1]:2222 {KEY_A}\n@revoked * {KEY_A}\n");
            let err = check(dir.path(), &text, policy)
                .decide(&presented(KEY_A))
                .unwrap_err();
            assert!(matches!(err, HostKeyError::Revoked { .. }), "{policy:?}");
        }
    }
}
