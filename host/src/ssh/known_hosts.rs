//! known_hosts files, matched the way OpenSSH matches them.
//!
//! `ssh-key` parses one line into markers, host patterns and a key; everything else is here: reading
//! several files while skipping (and reporting) bad lines, glob and negated patterns, `[host]:port`,
//! hashed `|1|salt|hash` names, `@revoked`, and `@cert-authority` with full host-certificate checks.
//! A lookup returns a [`Verdict`] that says which line decided it, so errors can point at it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey, public::KeyData};

/// The name a host is looked up under, as OpenSSH forms it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLookup {
    /// `host` on port 22, `[host]:port` otherwise, or the HostKeyAlias.
    pub name: String,
    /// The bare host name (or alias): what host certificates name as a principal.
    pub host: String,
    /// The port-less name to try when `name` is unknown (OpenSSH does this without a HostKeyAlias).
    fallback: Option<String>,
}

impl HostLookup {
    pub fn new(host: &str, port: u16, alias: Option<&str>) -> Self {
        if let Some(alias) = alias {
            let alias = alias.to_ascii_lowercase();
            return HostLookup {
                name: alias.clone(),
                host: alias,
                fallback: None,
            };
        }
        let host = host.to_ascii_lowercase();
        if port == 22 {
            HostLookup {
                name: host.clone(),
                host,
                fallback: None,
            }
        } else {
            HostLookup {
                name: format!("[{host}]:{port}"),
                fallback: Some(host.clone()),
                host,
            }
        }
    }
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
struct Line {
    file: usize,
    number: usize,
    marker: Option<Marker>,
    patterns: HostPatterns,
    key: PublicKey,
}

/// Where a decision came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// The outcome of looking up a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line records this key (or the CA that signed this valid certificate).
    Known(Origin),
    /// Nothing records this host.
    Unknown,
    /// The host is recorded with a different key.
    Changed {
        recorded: Origin,
        recorded_fingerprint: String,
    },
    /// An `@revoked` line names this key (or the certificate's CA).
    Revoked(Origin),
    /// A host certificate was presented but fails the checks of the matching `@cert-authority` line.
    CertificateRejected { reason: String },
}

/// A problem with one line, reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub origin: Origin,
    pub reason: String,
}

/// The known_hosts files in effect, in order of precedence.
#[derive(Debug, Default)]
pub struct KnownHosts {
    paths: Vec<PathBuf>,
    lines: Vec<Line>,
    bad_lines: Vec<BadLine>,
}

impl KnownHosts {
    /// Read `paths` in order. Missing files are fine (nothing known yet); unreadable files and bad lines
    /// are logged and skipped, never fatal.
    pub fn load(paths: &[PathBuf]) -> Self {
        let mut known = KnownHosts {
            paths: paths.to_vec(),
            ..Default::default()
        };
        for (file, path) in paths.iter().enumerate() {
            match std::fs::read_to_string(path) {
                Ok(text) => known.add_text(file, &text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    "cannot read known_hosts file {}: {e}; skipping it",
                    path.display()
                ),
            }
        }
        for bad in &known.bad_lines {
            tracing::warn!(
                "{}: skipping malformed known_hosts line: {}",
                bad.origin,
                bad.reason
            );
        }
        known
    }

    fn add_text(&mut self, file: usize, text: &str) {
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            // OpenSSH separates fields with any run of blanks; ssh-key splits on single spaces.
            let normalized = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
            match normalized.parse::<Entry>() {
                Ok(entry) => self.lines.push(Line {
                    file,
                    number: index + 1,
                    marker: entry.marker().cloned(),
                    patterns: entry.host_patterns().clone(),
                    key: entry.public_key().clone(),
                }),
                Err(e) => self.bad_lines.push(BadLine {
                    origin: Origin {
                        path: self.paths[file].clone(),
                        line: index + 1,
                    },
                    reason: e.to_string(),
                }),
            }
        }
    }

    /// Could a host certificate change the verdict for this host? It can where an `@cert-authority`
    /// line applies (a certificate from that CA is accepted) or a `@revoked` line does (it may name the
    /// CA that signed the certificate). Only then are host certificates asked for, first, as OpenSSH
    /// asks for them.
    pub fn certificate_matters_for(&self, lookup: &HostLookup) -> bool {
        self.lines.iter().any(|l| {
            matches!(l.marker, Some(Marker::CertAuthority | Marker::Revoked))
                && self.names_match(lookup, &l.patterns)
        })
    }

    /// Key algorithms recorded for this host, so the handshake can ask for a type we can verify.
    pub fn recorded_algorithms(&self, lookup: &HostLookup) -> Vec<russh::keys::Algorithm> {
        let mut algorithms = Vec::new();
        for line in self
            .lines
            .iter()
            .filter(|l| l.marker.is_none() && self.names_match(lookup, &l.patterns))
        {
            let algorithm = line.key.algorithm();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        algorithms
    }

    /// Check a plain host key.
    pub fn check_key(&self, lookup: &HostLookup, key: &KeyData) -> Verdict {
        // @revoked wins over everything, under either name the host is looked up by.
        if let Some(revoked) = self.lines.iter().find(|l| {
            l.marker == Some(Marker::Revoked)
                && l.key.key_data() == key
                && self.names_match(lookup, &l.patterns)
        }) {
            return Verdict::Revoked(self.origin(revoked));
        }
        let verdict = self.check_key_under(&lookup.name, key);
        match (&verdict, &lookup.fallback) {
            (Verdict::Unknown, Some(fallback)) => self.check_key_under(fallback, key),
            _ => verdict,
        }
    }

    fn check_key_under(&self, name: &str, key: &KeyData) -> Verdict {
        let plain: Vec<&Line> = self
            .lines
            .iter()
            .filter(|l| l.marker.is_none() && self.name_matches(name, &l.patterns))
            .collect();
        if let Some(known) = plain.iter().find(|l| l.key.key_data() == key) {
            return Verdict::Known(self.origin(known));
        }
        // A different key for this host, of this or any other type. OpenSSH only warns about a new key
        // type for a known host; we refuse, because a type switch is how a key change slips through.
        let recorded = plain
            .iter()
            .find(|l| l.key.algorithm() == key.algorithm())
            .or_else(|| plain.first());
        match recorded {
            Some(line) => Verdict::Changed {
                recorded: self.origin(line),
                recorded_fingerprint: line.key.fingerprint(HashAlg::Sha256).to_string(),
            },
            None => Verdict::Unknown,
        }
    }

    /// Check a host certificate against the `@cert-authority` lines for this host, at time `now`.
    pub fn check_certificate(&self, lookup: &HostLookup, cert: &Certificate, now: u64) -> Verdict {
        let matching: Vec<&Line> = [Some(&lookup.name), lookup.fallback.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|name| {
                self.lines
                    .iter()
                    .filter(move |l| self.name_matches(name, &l.patterns))
            })
            .collect();
        for line in matching
            .iter()
            .filter(|l| l.marker == Some(Marker::Revoked))
        {
            if line.key.key_data() == cert.public_key()
                || line.key.key_data() == cert.signature_key()
            {
                return Verdict::Revoked(self.origin(line));
            }
        }
        let Some(ca_line) = matching.iter().find(|l| {
            l.marker == Some(Marker::CertAuthority) && l.key.key_data() == cert.signature_key()
        }) else {
            // As OpenSSH does, a certificate from a CA nobody trusts here is judged by its plain key:
            // a recorded (or revoked, or changed) key decides. Only where nothing records the key do we
            // refuse outright instead of leaving it to the policy, since a CA is configured for this
            // host and its certificate does not chain to it.
            return match self.check_key(lookup, cert.public_key()) {
                Verdict::Unknown => Verdict::CertificateRejected {
                    reason: format!(
                        "it is signed by {}, which no @cert-authority line trusts for {}",
                        KeyData::fingerprint(cert.signature_key(), HashAlg::Sha256),
                        lookup.host
                    ),
                },
                decided => decided,
            };
        };
        match certificate_problem(cert, &ca_line.key, lookup, now) {
            None => Verdict::Known(self.origin(ca_line)),
            // As OpenSSH does, a certificate that fails its checks is dropped and its key judged as a
            // plain key: a recorded key still lets the user in (the problem is logged); otherwise the
            // certificate's problem is the verdict.
            Some(reason) => match self.check_key(lookup, cert.public_key()) {
                Verdict::Unknown => Verdict::CertificateRejected { reason },
                Verdict::Known(origin) => {
                    tracing::warn!(
                        "the host certificate of {} is not acceptable ({reason}); its key is recorded at {origin}, so it is accepted as a plain key",
                        lookup.host
                    );
                    Verdict::Known(origin)
                }
                decided => decided,
            },
        }
    }

    fn origin(&self, line: &Line) -> Origin {
        Origin {
            path: self.paths[line.file].clone(),
            line: line.number,
        }
    }

    fn names_match(&self, lookup: &HostLookup, patterns: &HostPatterns) -> bool {
        self.name_matches(&lookup.name, patterns)
            || lookup
                .fallback
                .as_deref()
                .is_some_and(|f| self.name_matches(f, patterns))
    }

    fn name_matches(&self, name: &str, patterns: &HostPatterns) -> bool {
        match patterns {
            HostPatterns::Patterns(list) => match_pattern_list(name, list),
            HostPatterns::HashedName { salt, hash } => hashed_name_matches(name, salt, hash),
        }
    }
}

/// OpenSSH's `match_hostname`: a name matches a comma list if some pattern matches and no negated one does.
/// What is wrong with a host certificate from the CA `ca`, if anything.
fn certificate_problem(
    cert: &Certificate,
    ca: &PublicKey,
    lookup: &HostLookup,
    now: u64,
) -> Option<String> {
    if cert.cert_type() != CertType::Host {
        return Some("it is a user certificate, not a host certificate".into());
    }
    let ca_fingerprint = ca.fingerprint(HashAlg::Sha256);
    if cert.validate_at(now, [&ca_fingerprint]).is_err() {
        let window = format!(
            "valid from {} to {}",
            cert.valid_after(),
            cert.valid_before()
        );
        return Some(if now < cert.valid_after() || now >= cert.valid_before() {
            format!("it is outside its validity window ({window}, now {now}; Unix seconds)")
        } else {
            "its signature does not verify".into()
        });
    }
    if cert.valid_principals().is_empty() {
        return Some("it names no principals (OpenSSH refuses such host certificates)".into());
    }
    if !cert
        .valid_principals()
        .iter()
        .any(|p| pattern_matches(&p.to_ascii_lowercase(), &lookup.host))
    {
        return Some(format!(
            "{} is not among its principals ({})",
            lookup.host,
            cert.valid_principals().join(", ")
        ));
    }
    if !cert.critical_options().is_empty() {
        let names: Vec<&String> = cert.critical_options().keys().collect();
        return Some(format!(
            "it carries critical options a host certificate may not have: {names:?}"
        ));
    }
    None
}

fn match_pattern_list(name: &str, patterns: &[String]) -> bool {
    let mut matched = false;
    for pattern in patterns {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if pattern_matches(negated, name) {
                return false;
            }
        } else if pattern_matches(&pattern, name) {
            matched = true;
        }
    }
    matched
}

/// Glob match with `*` (any run) and `?` (one character), over the whole string.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut resume) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            resume = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            resume += 1;
            ni = resume;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn hashed_name_matches(name: &str, salt: &[u8], hash: &[u8; 20]) -> bool {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).expect("HMAC takes any key length");
    mac.update(name.as_bytes());
    mac.verify_slice(hash).is_ok()
}

/// The line `auto` appends for a newly seen host: plain, or hashed like `ssh-keygen -H`.
pub fn new_entry_line(lookup: &HostLookup, key: &PublicKey, hashed: bool) -> String {
    use base64::Engine;
    let key_text = key.to_openssh().unwrap_or_default();
    let key_text = key_text.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let name = if hashed {
        let salt: [u8; 20] = rand::random();
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).expect("HMAC takes any key length");
        mac.update(lookup.name.as_bytes());
        let engine = base64::engine::general_purpose::STANDARD;
        format!(
            "|1|{}|{}",
            engine.encode(salt),
            engine.encode(mac.finalize().into_bytes())
        )
    } else {
        lookup.name.clone()
    };
    format!("{name} {key_text}")
}

/// Append `line` to `path`, creating the file (and its directory) if needed.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let needs_newline = std::fs::read(path)
        .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
        .unwrap_or(false);
    if needs_newline {
        file.write_all(b"\n")?;
    }
    writeln!(file, "{line}")
}

/// Seconds since the Unix epoch, for certificate validity checks.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGCFCpdzP9yFI9f315zoAKgt6TdXp/6kKE1LMpW/PUfQ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILZL75m9pzfrDzuq2U5ezQf0B404We7XapM8Ghs6EksR";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn known(text: &str) -> KnownHosts {
        let mut k = KnownHosts {
            paths: vec![PathBuf::from("/kh")],
            ..Default::default()
        };
        k.add_text(0, text);
        k
    }

    fn verdict(text: &str, host: &str, port: u16, presented: &str) -> Verdict {
        known(text).check_key(
            &HostLookup::new(host, port, None),
            key(presented).key_data(),
        )
    }

    fn origin(line: usize) -> Origin {
        Origin {
            path: PathBuf::from("/kh"),
            line,
        }
    }

    #[test]
    fn plain_names_and_ports() {
        assert_eq!(
            verdict(&format!("example.org {KEY_A}"), "example.org", 22, KEY_A),
            Verdict::Known(origin(1))
        );
        assert_eq!(
            verdict(&format!("EXAMPLE.org {KEY_A}"), "example.ORG", 22, KEY_A),
            Verdict::Known(origin(1))
        );
        assert_eq!(
            verdict(
                &format!("[example.org]:2222 {KEY_A}"),
                "example.org",
                2222,
                KEY_A
            ),
            Verdict::Known(origin(1))
        );
        assert_eq!(
            verdict(
                &format!("[example.org]:2222 {KEY_A}"),
                "example.org",
                22,
                KEY_A
            ),
            Verdict::Unknown
        );
        // OpenSSH retries a non-22 port under the bare name when [host]:port is unknown.
        assert_eq!(
            verdict(&format!("example.org {KEY_A}"), "example.org", 2222, KEY_A),
            Verdict::Known(origin(1))
        );
        assert_eq!(
            verdict(&format!("other.org {KEY_A}"), "example.org", 22, KEY_A),
            Verdict::Unknown
        );
    }

    #[test]
    fn comma_lists_wildcards_and_negation() {
        let text = format!(
            "a.org,*.example.org,!bad.example.org {KEY_A}\n10.0.0.? {KEY_A}\n[127.0.0.1]:* {KEY_A}"
        );
        assert!(matches!(
            verdict(&text, "a.org", 22, KEY_A),
            Verdict::Known(_)
        ));
        assert!(matches!(
            verdict(&text, "x.example.org", 22, KEY_A),
            Verdict::Known(_)
        ));
        assert_eq!(
            verdict(&text, "bad.example.org", 22, KEY_A),
            Verdict::Unknown
        );
        assert!(matches!(
            verdict(&text, "10.0.0.7", 22, KEY_A),
            Verdict::Known(_)
        ));
        assert_eq!(verdict(&text, "10.0.0.17", 22, KEY_A), Verdict::Unknown);
        assert_eq!(
            verdict(&text, "127.0.0.1", 2222, KEY_A),
            Verdict::Known(origin(3))
        );
    }

    #[test]
    fn changed_key_points_at_the_recorded_line() {
        let text = format!("# comment\n\nexample.org {KEY_A}\n");
        match verdict(&text, "example.org", 22, KEY_B) {
            Verdict::Changed {
                recorded,
                recorded_fingerprint,
            } => {
                assert_eq!(recorded, origin(3));
                assert!(recorded_fingerprint.starts_with("SHA256:"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn revoked_wins_over_a_plain_line() {
        let text = format!("example.org {KEY_A}\n@revoked * {KEY_A}\n");
        assert_eq!(
            verdict(&text, "example.org", 22, KEY_A),
            Verdict::Revoked(origin(2))
        );
    }

    #[test]
    fn revoked_under_the_port_less_name_still_wins() {
        // The plain line names [host]:port; the @revoked line only the bare host.
        let text = format!("[example.org]:2222 {KEY_A}\n@revoked example.org {KEY_A}\n");
        assert_eq!(
            verdict(&text, "example.org", 2222, KEY_A),
            Verdict::Revoked(origin(2))
        );
    }

    #[test]
    fn comments_and_tabs_compare_key_material_only() {
        let text = format!("example.org\t{KEY_A} some comment\n");
        assert_eq!(
            verdict(&text, "example.org", 22, &format!("{KEY_A} other-comment")),
            Verdict::Known(origin(1))
        );
    }

    #[test]
    fn hashed_entries() {
        // `ssh-keygen -H` style entry for [127.0.0.1]:2222, built with our own writer.
        let lookup = HostLookup::new("127.0.0.1", 2222, None);
        let line = new_entry_line(&lookup, &key(KEY_A), true);
        assert!(line.starts_with("|1|"));
        assert!(matches!(
            verdict(&line, "127.0.0.1", 2222, KEY_A),
            Verdict::Known(_)
        ));
        assert_eq!(verdict(&line, "127.0.0.2", 2222, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn malformed_lines_are_skipped_and_reported() {
        let k = known(&format!(
            "garbage line\nexample.org {KEY_A}\nexample.org ssh-ed25519 notbase64!\n"
        ));
        assert_eq!(k.bad_lines.len(), 2);
        assert_eq!(k.bad_lines[0].origin, origin(1));
        assert!(matches!(
            k.check_key(
                &HostLookup::new("example.org", 22, None),
                key(KEY_A).key_data()
            ),
            Verdict::Known(_)
        ));
    }

    #[test]
    fn host_key_alias_replaces_the_name() {
        let text = format!("myalias {KEY_A}\n");
        let lookup = HostLookup::new("10.1.2.3", 2222, Some("myalias"));
        assert!(matches!(
            known(&text).check_key(&lookup, key(KEY_A).key_data()),
            Verdict::Known(_)
        ));
    }

    #[test]
    fn glob_matcher() {
        assert!(pattern_matches("*", ""));
        assert!(pattern_matches("a*c", "abbbc"));
        assert!(pattern_matches("a?c", "abc"));
        assert!(!pattern_matches("a?c", "ac"));
        assert!(pattern_matches("*.org", "x.y.org"));
        assert!(!pattern_matches("*.org", "x.org.uk"));
    }
}
