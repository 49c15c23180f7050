//! The job spec: what a user asks Slurm for, validated value by value.
//!
//! Each value type validates while it is deserialized, so a bad value in a Slurmfile is reported with
//! its file and line. [`JobSpec`] is the resolved spec the host submits, journals and hands to renderers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::container::Container;
use super::names::{
    self as validate, Account, InvalidValue, JobId, JobName, Partition, Qos, Reservation,
};
use super::units::{Memory, NodeCount, TimeLimit};
use super::work::{After, Input, RelativeGlob};
use crate::wit::DependencyKind;

/// What the job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// An executable and its arguments, run without a shell.
    Command(Vec<String>),
    /// A bash script body.
    Script(String),
}

/// The resolved, validated job a renderer turns into an sbatch script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: JobName,
    pub payload: Payload,
    pub working_dir: Option<DirectiveText>,
    pub environment: BTreeMap<String, String>,
    pub modules: Vec<String>,
    pub partition: Option<Partition>,
    pub account: Option<Account>,
    pub qos: Option<Qos>,
    pub reservation: Option<Reservation>,
    pub time_limit: Option<TimeLimit>,
    pub nodes: Option<NodeCount>,
    pub ntasks: Option<u32>,
    pub ntasks_per_node: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub memory: Option<Memory>,
    pub mem_per_cpu: Option<Memory>,
    pub gpus: Option<DirectiveText>,
    pub gres: Option<DirectiveText>,
    pub constraint: Option<DirectiveText>,
    pub exclusive: bool,
    pub array: Option<ArraySpec>,
    pub dependencies: Vec<Dependency>,
    pub output: Option<DirectiveText>,
    pub error: Option<DirectiveText>,
    pub extra_directives: Vec<String>,
    /// Files staged into the job directory before sbatch, checked against their sha256 when it starts.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// What `slurmkit fetch` copies back.
    #[serde(default)]
    pub outputs: Vec<RelativeGlob>,
    /// The JSON object the job reads from `$SLURMKIT_ARGS`.
    #[serde(default = "empty_object")]
    pub args: serde_json::Value,
    /// One JSON object per array task: task `i` reads item `i` from `$SLURMKIT_ARGS`.
    #[serde(default)]
    pub items: Vec<serde_json::Value>,
    /// Jobs of the same Slurmfile this one runs after.
    #[serde(default)]
    pub after: Vec<After>,
    /// The `[jobs.<entry>]` of the Slurmfile it comes from, which `after` names.
    #[serde(default)]
    pub entry: Option<JobName>,
    /// That Slurmfile (its path here): `--only` runs after earlier submissions of the same one.
    #[serde(default)]
    pub project: Option<String>,
    /// The container the payload runs in.
    #[serde(default)]
    pub container: Option<Container>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl JobSpec {
    /// A job that runs `payload` with Slurm's defaults for everything else.
    pub fn new(name: JobName, payload: Payload) -> JobSpec {
        JobSpec {
            name,
            payload,
            working_dir: None,
            environment: BTreeMap::new(),
            modules: Vec::new(),
            partition: None,
            account: None,
            qos: None,
            reservation: None,
            time_limit: None,
            nodes: None,
            ntasks: None,
            ntasks_per_node: None,
            cpus_per_task: None,
            memory: None,
            mem_per_cpu: None,
            gpus: None,
            gres: None,
            constraint: None,
            exclusive: false,
            array: None,
            dependencies: Vec::new(),
            output: None,
            error: None,
            extra_directives: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            args: empty_object(),
            items: Vec::new(),
            after: Vec::new(),
            entry: None,
            project: None,
            container: None,
        }
    }

    /// The stdout file pattern Slurm writes to; relative paths are inside the job directory, which is
    /// where the job runs unless `working_dir` says otherwise.
    pub fn stdout_pattern(&self) -> &str {
        match &self.output {
            Some(path) => path.as_str(),
            None if self.array.is_some() => DEFAULT_ARRAY_STDOUT,
            None => DEFAULT_STDOUT,
        }
    }

    /// The stderr file pattern: a file of its own, so `slurmkit logs --stderr` shows only stderr.
    pub fn stderr_pattern(&self) -> &str {
        match &self.error {
            Some(path) => path.as_str(),
            None if self.array.is_some() => DEFAULT_ARRAY_STDERR,
            None => DEFAULT_STDERR,
        }
    }

    /// The spec as submitted into `job_dir`: when the job runs elsewhere (`working_dir`), relative
    /// output paths would land there, so they are made absolute inside the job directory.
    pub fn anchored_in(&self, job_dir: &str) -> JobSpec {
        let mut spec = self.clone();
        if spec.working_dir.is_some() {
            let anchor = |pattern: &str| {
                let path = if pattern.starts_with('/') {
                    pattern.to_string()
                } else {
                    format!("{job_dir}/{pattern}")
                };
                DirectiveText::parse("output", &path).ok()
            };
            spec.output = anchor(self.stdout_pattern());
            spec.error = anchor(self.stderr_pattern());
        }
        spec
    }

    /// Stable hash of the spec, recorded in the journal for provenance.
    pub fn sha256(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_vec(self).expect("a job spec always serializes");
        hex::encode(sha2::Sha256::digest(json))
    }
}

pub const DEFAULT_STDOUT: &str = "slurm-%j.out";
pub const DEFAULT_ARRAY_STDOUT: &str = "slurm-%A_%a.out";
pub const DEFAULT_STDERR: &str = "slurm-%j.err";
pub const DEFAULT_ARRAY_STDERR: &str = "slurm-%A_%a.err";

/// Expand the Slurm filename patterns slurmkit fills in (`%j`, `%A`, `%a`, `%x`, `%%`) for one job.
/// Returns `None` for patterns that need information only the compute node has (`%N`, `%u`, ...).
pub fn expand_pattern(pattern: &str, job_id: &JobId, name: &JobName) -> Option<String> {
    let (array_id, task) = match job_id.as_str().split_once('_') {
        Some((array, task)) => (array, Some(task)),
        None => (job_id.as_str(), None),
    };
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            // For an array task Slurm's %j is the task's own job id, which only Slurm knows.
            'j' if task.is_some() => return None,
            'j' => out.push_str(job_id.as_str()),
            'A' => out.push_str(array_id),
            'a' => out.push_str(task?),
            'x' => out.push_str(name.as_str()),
            '%' => out.push('%'),
            _ => return None,
        }
    }
    Some(out)
}

/// Printable text that can sit in an `#SBATCH` value (paths, gres, constraints): see
/// [`validate::directive_text`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DirectiveText(String);

impl DirectiveText {
    pub fn parse(what: &'static str, value: &str) -> Result<Self, InvalidValue> {
        validate::directive_text(what, value)?;
        Ok(DirectiveText(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DirectiveText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        DirectiveText::parse("value", &raw).map_err(serde::de::Error::custom)
    }
}

/// Where job directories go on the cluster: an absolute path, `~` or `~/path` (the remote home), or a
/// path relative to the remote home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JobBaseDir(String);

impl JobBaseDir {
    const RULE: &'static str = "write an absolute path, ~/path, or a path relative to your home on the cluster, without control characters, '\"', '\\' or '%' (Slurm reads % and \\ in output paths as patterns)";

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let tilde_ok = !value.starts_with('~') || value == "~" || value.starts_with("~/");
        let valid = !value.is_empty()
            && tilde_ok
            && !value
                .chars()
                .any(|c| c.is_control() || matches!(c, '"' | '\\' | '%'));
        if valid {
            Ok(JobBaseDir(value.to_string()))
        } else {
            Err(InvalidValue {
                what: "job_base_dir",
                value: value.to_string(),
                rule: Self::RULE,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for JobBaseDir {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        JobBaseDir::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A string validated on the way in, so a bad value in a Slurmfile names its line.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn into_string(self) -> String {
                self.0
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $check(&raw).map_err(serde::de::Error::custom)?;
                Ok($name(raw))
            }
        }
    };
}

checked_string!(
    /// An environment variable name.
    EnvName,
    validate::env_name
);
checked_string!(
    /// An environment module.
    ModuleName,
    validate::module_name
);
checked_string!(
    /// One extra `#SBATCH` option.
    ExtraDirective,
    validate::extra_directive
);
checked_string!(
    /// A host name, address or ssh_config alias.
    HostName,
    validate::host_name
);
checked_string!(
    /// A user name on the cluster.
    UserName,
    validate::user_name
);
checked_string!(
    /// An environment variable's value.
    EnvValue,
    validate::env_value
);
checked_string!(
    /// One argument of a command.
    CommandArgument,
    validate::command_argument
);
checked_string!(
    /// A script body.
    ScriptText,
    validate::script_text
);

/// An `--array` spec, validated by [`validate::array_spec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ArraySpec(String);

impl ArraySpec {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        validate::array_spec(value)?;
        Ok(ArraySpec(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The task indices it names, in order, at most `limit` of them (a spec like `0-4000000000` names
    /// more than anyone wants listed).
    pub fn indices(&self, limit: usize) -> Vec<u64> {
        let ranges = self.0.split('%').next().unwrap_or("");
        let mut out = Vec::new();
        for part in ranges.split(',') {
            let (range, step) = match part.split_once(':') {
                Some((range, step)) => (range, step.parse::<u64>().unwrap_or(1).max(1)),
                None => (part, 1),
            };
            let (lo, hi) = match range.split_once('-') {
                Some((lo, hi)) => (lo.parse().unwrap_or(0), hi.parse().unwrap_or(0)),
                None => {
                    let n = range.parse().unwrap_or(0);
                    (n, n)
                }
            };
            let mut i = lo;
            while i <= hi && out.len() < limit {
                out.push(i);
                i += step;
            }
        }
        out
    }
}

impl<'de> Deserialize<'de> for ArraySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ArraySpec::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub kind: DependencyKind,
    pub job_ids: Vec<JobId>,
}

/// Parse sbatch's `--dependency` syntax: `afterok:12:13,afterany:14,singleton`.
pub fn parse_dependencies(raw: &str) -> Result<Vec<Dependency>, InvalidValue> {
    const RULE: &str = "write kind:id[:id...] clauses separated by commas, kind one of after, afterany, afterok, afternotok, aftercorr, or singleton (e.g. afterok:12:13,singleton)";
    let err = || InvalidValue {
        what: "dependency",
        value: raw.to_string(),
        rule: RULE,
    };
    raw.split(',')
        .map(|clause| {
            let mut parts = clause.trim().split(':');
            let kind = DependencyKind::from_name(parts.next().unwrap_or("")).ok_or_else(err)?;
            let job_ids = parts
                .map(JobId::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| err())?;
            match (kind, job_ids.is_empty()) {
                (DependencyKind::Singleton, true) => Ok(Dependency { kind, job_ids }),
                (DependencyKind::Singleton, false) | (_, true) => Err(err()),
                _ => Ok(Dependency { kind, job_ids }),
            }
        })
        .collect()
}

/// The Slurmfile form of dependencies: one string in sbatch syntax, or a list of clauses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Dependencies(pub Vec<Dependency>);

impl<'de> Deserialize<'de> for Dependencies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let text = match Raw::deserialize(d)? {
            Raw::One(text) => text,
            Raw::Many(clauses) => clauses.join(","),
        };
        parse_dependencies(&text)
            .map(Dependencies)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The journal and callback events store specs as JSON: every field must read back as written.
    #[test]
    fn a_full_spec_reads_back_from_json() {
        let mut spec = JobSpec::new(
            JobName::parse("full").unwrap(),
            Payload::Script("echo hi".into()),
        );
        spec.working_dir = Some(DirectiveText::parse("dir", "/scratch/run 1").unwrap());
        spec.environment.insert("A".into(), "1".into());
        spec.modules = vec!["gcc/13".into()];
        spec.partition = Some(Partition::parse("debug").unwrap());
        spec.account = Some(Account::parse("proj").unwrap());
        spec.qos = Some(Qos::parse("normal").unwrap());
        spec.reservation = Some(Reservation::parse("maint").unwrap());
        spec.time_limit = Some(TimeLimit::parse("30-00:00:00").unwrap());
        spec.nodes = Some(NodeCount {
            min: 2,
            max: Some(4),
        });
        spec.ntasks = Some(8);
        spec.ntasks_per_node = Some(4);
        spec.cpus_per_task = Some(2);
        spec.memory = Some(Memory::parse("4G").unwrap());
        spec.mem_per_cpu = Some(Memory::parse("512M").unwrap());
        spec.gpus = Some(DirectiveText::parse("gpus", "a100:2").unwrap());
        spec.gres = Some(DirectiveText::parse("gres", "gpu:2").unwrap());
        spec.constraint = Some(DirectiveText::parse("constraint", "a|b").unwrap());
        spec.exclusive = true;
        spec.array = Some(ArraySpec::parse("0-9%2").unwrap());
        spec.dependencies = parse_dependencies("afterok:1:2_3,singleton").unwrap();
        spec.output = Some(DirectiveText::parse("output", "out-%j").unwrap());
        spec.error = Some(DirectiveText::parse("error", "err-%j").unwrap());
        spec.extra_directives = vec!["--mail-type=END".into()];
        spec.container = Some(
            toml::from_str("image = \"x.sif\"\nruntime = \"apptainer\"\nmounts = [\"/a:/b\"]")
                .unwrap(),
        );
        let json = serde_json::to_string(&spec).unwrap();
        let back: JobSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec, "{json}");
    }

    #[test]
    fn job_base_dirs() {
        for good in ["~/slurm_jobs", "~", "/scratch/u/jobs", "jobs dir", "/a/b'c"] {
            assert!(JobBaseDir::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "~root/x", "/a/%j", "a\\b", "a\"b", "a\nb", "a\0b", "a\rb",
        ] {
            assert!(JobBaseDir::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dependencies() {
        let deps = parse_dependencies("afterok:12:13_1,singleton").unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[0].kind, DependencyKind::AfterOk);
        assert_eq!(deps[0].job_ids[1].as_str(), "13_1");
        for bad in [
            "afterok",
            "afterok:x",
            "singleton:3",
            "before:1",
            "afterok:1;id",
        ] {
            assert!(parse_dependencies(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_expand_for_one_job() {
        let name = JobName::parse("hello").unwrap();
        let id = JobId::parse("42").unwrap();
        assert_eq!(
            expand_pattern("slurm-%j.out", &id, &name).unwrap(),
            "slurm-42.out"
        );
        assert_eq!(
            expand_pattern("%x-%j-100%%.log", &id, &name).unwrap(),
            "hello-42-100%.log"
        );
        assert_eq!(expand_pattern("%N.out", &id, &name), None);
        let task = JobId::parse("42_3").unwrap();
        assert_eq!(
            expand_pattern(DEFAULT_ARRAY_STDOUT, &task, &name).unwrap(),
            "slurm-42_3.out"
        );
        assert_eq!(expand_pattern(DEFAULT_ARRAY_STDOUT, &id, &name), None);
        assert_eq!(
            expand_pattern("run-%j.out", &task, &name),
            None,
            "%j of a task is its own id"
        );
    }
}
