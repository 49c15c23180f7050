//! Work in and results out: the inputs staged into a job directory, the outputs fetched from it, the
//! JSON arguments a job reads and the result it writes, the items of an array, and the jobs of the same
//! Slurmfile a job runs after. Every path here is relative to the job directory and cannot leave it.

use serde::{Deserialize, Serialize};

use super::names::{InvalidValue, JobName};
use crate::wit::DependencyKind;

/// The most JSON a job's arguments (or one item) may hold: they travel in the job directory, not on a
/// command line, but a megabyte of parameters is a data file that belongs in `inputs`.
pub const MAX_ARGS_BYTES: usize = 1 << 20;

/// Names in a job directory that slurmkit writes itself: inputs may not land on them.
pub const RESERVED: &[&str] = &[
    super::job_dir::SCRIPT_FILE,
    super::job_dir::SPEC_FILE,
    super::job_dir::JOB_ID_FILE,
    super::job_dir::SBATCH_STATUS_FILE,
    super::job_dir::SBATCH_CLAIM_FILE,
    super::job_dir::SBATCH_ERROR_FILE,
    super::job_dir::JOB_ID_PENDING_FILE,
    "args.json",
    "items",
    "result.json",
    "results",
    ".slurmkit",
];

/// A path inside the job directory: relative, `/`-separated, no `.`, `..` or empty parts, no control
/// characters, no backslash (Slurm and shells read it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RelativePath(String);

impl RelativePath {
    const RULE: &'static str = "write a relative path inside the job directory: no leading '/', no '.' or '..' parts, no control characters or '\\'";

    pub fn parse(what: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let trimmed = value.trim_end_matches('/');
        let valid = !trimmed.is_empty()
            && !trimmed.starts_with('/')
            && !trimmed.chars().any(|c| c.is_control() || c == '\\')
            && trimmed
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if valid {
            Ok(RelativePath(trimmed.to_string()))
        } else {
            Err(InvalidValue {
                what,
                value: value.to_string(),
                rule: Self::RULE,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its first part, where it lands in the job directory.
    pub fn top(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    pub fn join(&self, rest: &str) -> Result<RelativePath, InvalidValue> {
        RelativePath::parse("path", &format!("{}/{rest}", self.0))
    }
}

impl<'de> Deserialize<'de> for RelativePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        RelativePath::parse("path", &raw).map_err(serde::de::Error::custom)
    }
}

/// A glob over paths relative to some directory (`data/*.csv`, `results/**/*.json`, `model/`), as
/// written; it may not leave that directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RelativeGlob(String);

impl RelativeGlob {
    const RULE: &'static str = "write a glob relative to its directory (e.g. data/*.csv, results/**/*.json, model/): no leading '/', no '.' or '..' parts, no control characters";

    pub fn parse(what: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let err = || InvalidValue {
            what,
            value: value.to_string(),
            rule: Self::RULE,
        };
        let trimmed = value.trim_end_matches('/');
        if trimmed.is_empty()
            || trimmed.starts_with('/')
            || trimmed.chars().any(|c| c.is_control() || c == '\\')
            || trimmed
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(err());
        }
        globset::Glob::new(trimmed).map_err(|_| err())?;
        Ok(RelativeGlob(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pattern without a trailing `/` (which only says "a directory").
    pub fn pattern(&self) -> &str {
        self.0.trim_end_matches('/')
    }

    /// The leading parts without wildcards: where matches can be found.
    pub fn literal_prefix(&self) -> String {
        let parts: Vec<&str> = self
            .pattern()
            .split('/')
            .take_while(|part| !part.contains(['*', '?', '[', '{']))
            .collect();
        parts.join("/")
    }

    /// A matcher for paths relative to the glob's directory: the glob itself, and everything below
    /// what it matches (so `model/` or `results` take whole directories). Two globs, not one
    /// `{P,P/**}`: a comma in the pattern stays a comma.
    pub fn matcher(&self) -> globset::GlobSet {
        let glob = |pattern: &str| {
            globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .expect("checked when parsed")
        };
        globset::GlobSetBuilder::new()
            .add(glob(self.pattern()))
            .add(glob(&format!("{}/**", self.pattern())))
            .build()
            .expect("two valid globs")
    }
}

impl<'de> Deserialize<'de> for RelativeGlob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        RelativeGlob::parse("output", &raw).map_err(serde::de::Error::custom)
    }
}

/// One `inputs` entry: a glob relative to the Slurmfile (its matches keep their relative layout), or
/// a file or directory from anywhere placed at `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InputSetting {
    Glob(RelativeGlob),
    Mapped { from: String, to: RelativePath },
}

impl<'de> Deserialize<'de> for InputSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Glob(String),
            Mapped { from: String, to: String },
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "write an input as a glob string (\"data/*.csv\") or { from = \"path\", to = \"place/in/job\" }",
            )
        })?;
        match raw {
            Raw::Glob(glob) => RelativeGlob::parse("input", &glob)
                .map(InputSetting::Glob)
                .map_err(serde::de::Error::custom),
            Raw::Mapped { from, to } => {
                if from.is_empty() || from.contains('\0') {
                    return Err(serde::de::Error::custom(
                        "an input's `from` must name a file or directory",
                    ));
                }
                let to =
                    RelativePath::parse("input `to`", &to).map_err(serde::de::Error::custom)?;
                Ok(InputSetting::Mapped { from, to })
            }
        }
    }
}

/// One file to stage: where it is here, and where it goes in the job directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub source: std::path::PathBuf,
    pub to: RelativePath,
}

/// A job of the same Slurmfile this one runs after, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct After {
    pub kind: DependencyKind,
    pub job: JobName,
}

/// `SLURMKIT_DEP_<NAME>`: the variable holding a dependency's job directory.
pub fn dependency_variable(job: &JobName) -> String {
    let name: String = job
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SLURMKIT_DEP_{name}")
}

/// A local file as the filesystem describes it: any write, replacement or rename gives another one
/// (the change time moves on every write and every `chmod`, and a replaced file has another inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    /// The canonical path (links resolved).
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
}

impl FileIdentity {
    /// The identity of the file at the canonical `path` that `metadata` describes.
    pub fn new(path: String, metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        FileIdentity {
            path,
            size: metadata.len(),
            mtime_ns: metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec(),
            ctime_ns: metadata.ctime() * 1_000_000_000 + metadata.ctime_nsec(),
            inode: metadata.ino(),
            dev: metadata.dev(),
        }
    }

    /// The identity of the file at `path` now.
    pub fn of(path: &std::path::Path) -> std::io::Result<Self> {
        let canonical = std::fs::canonicalize(path)?;
        let metadata = std::fs::metadata(&canonical)?;
        Ok(FileIdentity::new(
            canonical.to_string_lossy().into_owned(),
            &metadata,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        for ok in ["a", "a/b.txt", "cfg/", "x y/z"] {
            assert!(RelativePath::parse("p", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/etc", "../x", "a/../b", "a//b", ".", "a/./b", "a\\b", "a\nb",
        ] {
            assert!(RelativePath::parse("p", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn globs_match_files_and_whole_directories() {
        let glob = RelativeGlob::parse("output", "results/*.json").unwrap();
        assert_eq!(glob.literal_prefix(), "results");
        let m = glob.matcher();
        assert!(m.is_match("results/a.json"));
        assert!(!m.is_match("results/sub/a.json"), "* does not cross /");
        assert!(!m.is_match("other/a.json"));
        let dir = RelativeGlob::parse("output", "model/").unwrap();
        assert!(dir.matcher().is_match("model/weights/1.bin"));
        let comma = RelativeGlob::parse("output", "*,final.json").unwrap();
        assert!(comma.matcher().is_match("x,final.json"));
        assert!(
            !comma.matcher().is_match("job.sbatch"),
            "a comma is not an alternative"
        );
        for bad in ["/abs", "../up", "a/../../b", "", "a\u{1b}", "./results/"] {
            assert!(RelativeGlob::parse("output", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dependency_variables_are_shell_names() {
        let name = JobName::parse("sweep-2.b").unwrap();
        assert_eq!(dependency_variable(&name), "SLURMKIT_DEP_SWEEP_2_B");
    }
}
