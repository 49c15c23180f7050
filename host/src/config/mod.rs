//! The Slurmfile: finding it, reading it, selecting an environment.
//!
//! A Slurmfile is TOML. Its top-level tables are the defaults; `[environments.default]` merges over
//! them and the selected `[environments.<name>]` over both, `[jobs.<name>]` over `[job]`, and
//! command-line flags over all, by one rule ([`merge`], [`merge_job`]): tables merge key by key, everything else is replaced, and a job layer that
//! says what the job runs (`command`, `script` or `script_file`) replaces what the layers below said, as
//! one that sets a `container` replaces the container below (a whole). Every table is checked on
//! its own first, so an unknown key or a bad value is reported with its file and line, then the
//! selected layers are merged and read into [`Settings`].

pub mod import;
pub mod locate;
pub mod node;
mod settings;
pub mod site;

pub use settings::{
    BackendKind, CallbackSettings, CallbackSide, ClusterSettings, Grants, JobSettings,
    LimitSettings, PluginSettings, PolicySettings, RendererSettings, Settings, SiteSettings,
};
pub use site::SiteLayer;

use std::path::{Path, PathBuf};

use crate::error::{Diagnose, exit};

/// The environment every other one merges over, and the one used when none is named.
pub const DEFAULT_ENVIRONMENT: &str = "default";

/// File names a Slurmfile may have, in the order they are looked for.
pub const FILE_NAMES: [&str; 4] = ["Slurmfile.toml", "Slurmfile", "slurmfile.toml", "slurmfile"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no Slurmfile found in {start} or any parent directory (looked for {names})", names = FILE_NAMES.join(", "))]
    NotFound { start: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}\n{snippet}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        snippet: String,
    },
    #[error("{path}: environment {name:?} is not defined (defined: {available})")]
    UnknownEnvironment {
        path: PathBuf,
        name: String,
        available: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Diagnose for ConfigError {
    fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

/// A Slurmfile that was found and read, with one environment selected.
#[derive(Debug, Clone)]
pub struct Slurmfile {
    /// The file itself.
    pub path: PathBuf,
    /// The directory relative paths in the file are resolved against.
    pub dir: PathBuf,
    /// The selected environment, if any.
    pub environment: Option<String>,
    /// The file with the environment merged over it, as TOML: the layers above merge over this.
    pub table: toml::Table,
    pub settings: Settings,
}

impl Slurmfile {
    /// Find the Slurmfile: `explicit` (a file, or a directory to look in) if given, else the current
    /// directory and its parents. `Ok(None)` when none exists and none was asked for.
    pub fn discover(explicit: Option<&Path>, cwd: &Path) -> Result<Option<PathBuf>, ConfigError> {
        if let Some(path) = explicit {
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                cwd.join(path)
            };
            if path.is_dir() {
                return find_in(&path)
                    .map(Some)
                    .ok_or(ConfigError::NotFound { start: path });
            }
            if !path.exists() {
                return Err(ConfigError::Read {
                    path,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            return Ok(Some(path));
        }
        Ok(cwd.ancestors().find_map(find_in))
    }

    /// Read `path` and select `environment` (or `default` when the file defines one and none is asked
    /// for): the file's top-level tables, `[environments.default]` over them, the selected environment
    /// over both.
    pub fn load(path: &Path, environment: Option<&str>) -> Result<Slurmfile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, environment)
    }

    pub fn parse(
        path: &Path,
        text: &str,
        environment: Option<&str>,
    ) -> Result<Slurmfile, ConfigError> {
        // Check every table as written, so errors carry lines.
        let checked: settings::FileShape =
            toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        let mut raw: toml::Table = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        let environments = match raw.remove("environments") {
            Some(toml::Value::Table(table)) => table,
            _ => toml::Table::new(),
        };
        if let Some(name) = environment
            && !environments.contains_key(name)
        {
            return Err(ConfigError::UnknownEnvironment {
                path: path.to_path_buf(),
                name: name.to_string(),
                available: checked.environment_names(),
            });
        }
        let selected = match environment {
            Some(name) => Some(name.to_string()),
            None if environments.contains_key(DEFAULT_ENVIRONMENT) => {
                Some(DEFAULT_ENVIRONMENT.to_string())
            }
            None => None,
        };
        // `[environments.default]` is the base of every environment (as the Python SDK's `[default]`
        // is): the file, then it, then the selected environment.
        let layers = std::iter::once(DEFAULT_ENVIRONMENT).chain(
            selected
                .as_deref()
                .filter(|name| *name != DEFAULT_ENVIRONMENT),
        );
        for name in layers {
            if let Some(toml::Value::Table(layer)) = environments.get(name) {
                merge_layer(&mut raw, layer.clone());
            }
        }
        let settings: Settings =
            toml::Value::Table(raw.clone())
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: e.message().to_string(),
                })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Slurmfile {
            path: path.to_path_buf(),
            dir,
            environment: selected,
            table: raw,
            settings,
        })
    }

    /// Resolve a path written in the Slurmfile: `~/` is the user's home, relative paths are relative to
    /// the Slurmfile's directory.
    pub fn resolve_path(&self, written: &str) -> PathBuf {
        resolve_local_path(written, &self.dir)
    }
}

/// `~/x` → home/x; relative → base/x; absolute stays.
pub fn resolve_local_path(written: &str, base: &Path) -> PathBuf {
    if let Some(rest) = written.strip_prefix("~/")
        && let Some(home) = dirs::home_dir()
    {
        return home.join(rest);
    }
    let path = Path::new(written);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn find_in(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// What a job runs: one layer says it at most one way, and a layer that says it replaces what the
/// layers below said.
const PAYLOAD: [&str; 3] = ["command", "script", "script_file"];

/// Job keys whose tables are one value, replaced whole rather than merged key by key: a container's
/// image, runtime and mounts go together (an image from one layer with mounts from another is a
/// container nobody wrote), and each layer's container is checked complete, with its line.
const WHOLE: [&str; 1] = ["container"];

/// Merge the layer `over` into `base`: tables key by key (recursively), anything else replaced.
pub fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => {
                merge(base_table, over_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Merge a job table (`[job]`, `[jobs.<name>]`, the flags' job) over another: as [`merge`], except
/// that a layer saying what the job runs replaces what the layers below said, and a layer's
/// `container` replaces the one below whole.
pub fn merge_job(base: &mut toml::Table, over: toml::Table) {
    if PAYLOAD.iter().any(|key| over.contains_key(*key)) {
        for key in PAYLOAD {
            base.remove(key);
        }
    }
    for key in WHOLE {
        if over.contains_key(key) {
            base.remove(key);
        }
    }
    merge(base, over);
}

/// Merge a whole layer (an environment) over the file: its `job` and each of its `jobs` as job tables,
/// everything else as [`merge`]. The one merge for every layering: environments over the file,
/// `[jobs.<name>]` over `[job]`, flags over both.
fn merge_layer(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (key.as_str(), base.get_mut(&key), value) {
            ("job", Some(toml::Value::Table(base_job)), toml::Value::Table(over_job)) => {
                merge_job(base_job, over_job)
            }
            ("jobs", Some(toml::Value::Table(base_jobs)), toml::Value::Table(over_jobs)) => {
                for (name, entry) in over_jobs {
                    match (base_jobs.get_mut(&name), entry) {
                        (Some(toml::Value::Table(base_entry)), toml::Value::Table(over_entry)) => {
                            merge_job(base_entry, over_entry)
                        }
                        (_, entry) => {
                            base_jobs.insert(name, entry);
                        }
                    }
                }
            }
            (_, Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => {
                merge(base_table, over_table)
            }
            (_, _, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn parse_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_string();
    match error.span() {
        Some(span) => located(path, text, span, message),
        None => ConfigError::Parse {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message,
            snippet: String::new(),
        },
    }
}

/// An error about the text at `span`: its line and column, and the line with the place marked.
pub(crate) fn located(
    path: &Path,
    text: &str,
    span: std::ops::Range<usize>,
    message: String,
) -> ConfigError {
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = span.start - line_start + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let width = (span.end.saturating_sub(span.start))
        .clamp(1, line_text.len().saturating_sub(column - 1).max(1));
    let gutter = line.to_string();
    let snippet = format!(
        "{pad} |\n{gutter} | {line_text}\n{pad} | {marks}",
        pad = " ".repeat(gutter.len()),
        marks = " ".repeat(column - 1) + &"^".repeat(width)
    );
    ConfigError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message,
        snippet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `error` is a parse error at `line` whose message says `what`.
    #[track_caller]
    pub(crate) fn assert_refused_at(error: ConfigError, line: usize, what: &str, text: &str) {
        let ConfigError::Parse {
            line: at, message, ..
        } = &error
        else {
            panic!("{error}")
        };
        assert_eq!(*at, line, "{text}: {message}");
        assert!(message.contains(what), "{message}");
    }

    fn parse(text: &str, env: Option<&str>) -> Result<Slurmfile, ConfigError> {
        Slurmfile::parse(Path::new("/p/Slurmfile.toml"), text, env)
    }

    #[test]
    fn top_level_cluster_table_works_as_written() {
        let file = parse(
            "[cluster]\nhostname = \"login.example.org\"\nusername = \"alice\"\nhost_key_policy = \"reject\"\nkey_filename = \"~/.ssh/id_ed25519\"\n",
            None,
        )
        .unwrap();
        let cluster = file.settings.cluster.unwrap();
        assert_eq!(cluster.hostname.as_deref(), Some("login.example.org"));
        assert_eq!(
            cluster.host_key_policy,
            Some(crate::types::HostKeyPolicy::Reject)
        );
    }

    #[test]
    fn environments_deep_merge_over_defaults() {
        let text = r#"
[cluster]
hostname = "dev"
username = "alice"

[job]
partition = "debug"
environment = { A = "1", B = "2" }

[environments.prod.cluster]
hostname = "prod"

[environments.prod.job]
environment = { B = "3" }
"#;
        let file = parse(text, Some("prod")).unwrap();
        let cluster = file.settings.cluster.as_ref().unwrap();
        assert_eq!(cluster.hostname.as_deref(), Some("prod"));
        assert_eq!(cluster.username.as_deref(), Some("alice"));
        let env = file
            .settings
            .job
            .as_ref()
            .unwrap()
            .0
            .environment
            .as_ref()
            .unwrap();
        assert_eq!(env["A"].as_str(), "1");
        assert_eq!(env["B"].as_str(), "3");

        let dev = parse(text, None).unwrap();
        assert_eq!(
            dev.settings.cluster.unwrap().hostname.as_deref(),
            Some("dev")
        );
    }

    /// `[environments.default]` is the base of every environment, as the Python SDK's `[default]` is.
    #[test]
    fn the_default_environment_is_the_base_of_every_environment() {
        let text = r#"
[cluster]
hostname = "top"
username = "alice"

[job]
partition = "debug"
time = "10m"

[environments.default.cluster]
hostname = "login"

[environments.default.job]
partition = "normal"
account = "g1"
environment = { A = "1" }

[environments.prod.job]
partition = "large"
environment = { B = "2" }
"#;
        // Alone: over the file's tables.
        let alone = parse(text, None).unwrap();
        assert_eq!(alone.environment.as_deref(), Some("default"));
        let cluster = alone.settings.cluster.as_ref().unwrap();
        assert_eq!(cluster.hostname.as_deref(), Some("login"));
        assert_eq!(cluster.username.as_deref(), Some("alice"));
        let job = &alone.settings.job.as_ref().unwrap().0;
        assert_eq!(job.partition.as_ref().unwrap().as_str(), "normal");
        assert_eq!(job.time.unwrap().seconds(), 600);
        assert_eq!(
            parse(text, Some("default")).unwrap().table,
            alone.table,
            "naming default selects the same layers"
        );

        // Under prod: prod overrides what default set, and keeps the rest of it.
        let prod = parse(text, Some("prod")).unwrap();
        assert_eq!(prod.environment.as_deref(), Some("prod"));
        assert_eq!(
            prod.settings.cluster.as_ref().unwrap().hostname.as_deref(),
            Some("login")
        );
        let job = &prod.settings.job.as_ref().unwrap().0;
        assert_eq!(job.partition.as_ref().unwrap().as_str(), "large");
        assert_eq!(job.account.as_ref().unwrap().as_str(), "g1");
        assert_eq!(job.time.unwrap().seconds(), 600);
        let env = job.environment.as_ref().unwrap();
        assert_eq!((env["A"].as_str(), env["B"].as_str()), ("1", "2"));

        // A missing environment is still an error, default or not.
        let err = parse(text, Some("staging")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownEnvironment { name, available, .. }
                if name == "staging" && available == "default, prod"),
            "{err}"
        );
    }

    #[test]
    fn a_job_layer_that_says_what_to_run_replaces_what_the_layers_below_said() {
        let mut base: toml::Table =
            toml::from_str("command = [\"a\"]\npartition = \"p\"\nenvironment = { A = \"1\" }")
                .unwrap();
        merge_job(
            &mut base,
            toml::from_str("script = \"echo\"\nenvironment = { B = \"2\" }").unwrap(),
        );
        assert!(!base.contains_key("command"));
        assert_eq!(base["script"].as_str(), Some("echo"));
        assert_eq!(base["partition"].as_str(), Some("p"));
        assert_eq!(base["environment"].as_table().unwrap().len(), 2);
    }

    /// Only a job's own table is special: a job, an environment variable or a plugin setting that
    /// happens to be named `command` or `script` merges like anything else.
    #[test]
    fn names_that_look_like_payload_keys_merge_like_any_other() {
        let text = r#"
[job]
environment = { command = "1", OTHER = "2" }

[jobs.script]
command = ["python", "run.py"]
partition = "cpu"
environment = { script = "3" }

[renderer]
plugin = "r.wasm"
config = { command = "x" }

[environments.gpu.jobs.script]
partition = "gpu"

[environments.gpu.renderer]
plugin = "r.wasm"
config = { script = "y" }
"#;
        let file = parse(text, Some("gpu")).unwrap();
        let jobs = file.table["jobs"].as_table().unwrap();
        let entry = jobs["script"].as_table().unwrap();
        assert!(entry.contains_key("command"), "{entry:?}");
        assert_eq!(entry["partition"].as_str(), Some("gpu"));
        let config = file
            .settings
            .renderer
            .as_ref()
            .unwrap()
            .config
            .as_ref()
            .unwrap();
        assert_eq!(config.len(), 2, "{config:?}");
    }

    #[test]
    fn a_job_table_that_says_two_things_to_run_names_its_line() {
        let err = parse(
            "[job]\ncommand = [\"a\"]\nscript = \"b\"\n\n[jobs.x]\nscript = \"c\"\n",
            None,
        )
        .unwrap_err();
        let ConfigError::Parse { line, message, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*line, 1, "{message}");
        assert!(message.contains("set only one of"), "{message}");
    }

    #[test]
    fn unknown_environment_lists_the_defined_ones() {
        let err = parse(
            "[environments.a.cluster]\n[environments.b.job]\n",
            Some("c"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/p/Slurmfile.toml: environment \"c\" is not defined (defined: a, b)"
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("[cluster]\nhostname = \"x\"\nhostnme = \"y\"\n", None).unwrap_err();
        let ConfigError::Parse {
            line,
            column,
            message,
            snippet,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((*line, *column), (3, 1));
        assert!(message.contains("unknown field `hostnme`"), "{message}");
        assert!(snippet.contains("3 | hostnme = \"y\""), "{snippet}");
    }

    #[test]
    fn unknown_key_inside_an_environment_names_its_line() {
        let err = parse(
            "[cluster]\nhostname = \"x\"\n\n[environments.prod.job]\npartiton = \"p\"\n",
            Some("prod"),
        )
        .unwrap_err();
        let ConfigError::Parse { line, message, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*line, 5);
        assert!(message.contains("unknown field `partiton`"), "{message}");
    }

    #[test]
    fn bad_environment_names_modules_and_directives_name_their_line() {
        for (text, line, what) in [
            (
                "[job]\ncommand = [\"x\"]\nenvironment = { \"A;B\" = \"1\" }\n",
                3,
                "invalid environment variable name",
            ),
            ("[job]\nmodules = [\"gcc 13\"]\n", 2, "invalid module name"),
            (
                "[job]\ncommand = [\"x\"]\nenvironment = { A = \"a\\u0000b\" }\n",
                3,
                "invalid environment value",
            ),
            (
                "[job]\ncommand = [\"echo\", \"a\\u0000b\"]\n",
                2,
                "invalid command argument",
            ),
            ("[job]\nscript = \"a\\u0000b\"\n", 2, "invalid script"),
            (
                "[job]\nextra_directives = [\"--mail-type=END\", \"-x\"]\n",
                2,
                "invalid #SBATCH option",
            ),
            (
                "[job]\nextra_directives = [\"--comment=a\\nb\"]\n",
                2,
                "invalid #SBATCH option",
            ),
        ] {
            assert_refused_at(parse(text, None).unwrap_err(), line, what, text);
        }
    }

    /// A container is checked where it is written: each value at its line, a missing runtime or an
    /// unknown key at the table's.
    #[test]
    fn bad_containers_name_their_line_and_field() {
        for (text, line, what) in [
            (
                "[job]\ncommand = [\"x\"]\n\n[jobs.a]\ncontainer = { image = \"u\", runtime = \"docker\" }\n",
                5,
                "unknown container runtime \"docker\"; container runtimes are: pyxis, apptainer",
            ),
            (
                "[job]\ncontainer = { image = \"u\", runtime = \"pyxis\",\n  mounts = [\"/ok:/ok\", \"data:/data\"] }\n",
                3,
                "invalid container mount \"data:/data\"",
            ),
            (
                "[job]\ncontainer = { image = \"u\" }\n",
                2,
                "a container needs a `runtime`",
            ),
            (
                "[job]\ncontainer = { image = \"u\", runtime = \"pyxis\", workdir = \"w\" }\n",
                2,
                "invalid container workdir",
            ),
            (
                "[job]\ncontainer = { image = \"u\", runtime = \"pyxis\", mount = [] }\n",
                2,
                "unknown field `mount`",
            ),
        ] {
            assert_refused_at(parse(text, None).unwrap_err(), line, what, text);
        }
    }

    #[test]
    fn a_job_layer_with_a_container_replaces_the_container_below_whole() {
        let mut base: toml::Table = toml::from_str(
            "container = { image = \"a.sif\", runtime = \"apptainer\", mounts = [\"/d:/d\"] }\npartition = \"p\"",
        )
        .unwrap();
        merge_job(
            &mut base,
            toml::from_str("container = { image = \"docker://u\", runtime = \"pyxis\" }").unwrap(),
        );
        let container = base["container"].as_table().unwrap();
        assert_eq!(container.len(), 2, "{container:?}");
        assert_eq!(container["runtime"].as_str(), Some("pyxis"));
        assert_eq!(base["partition"].as_str(), Some("p"));
    }

    #[test]
    fn bad_value_names_its_line_and_the_rule() {
        let err = parse("[jobs.x]\nname = \"x; rm -rf ~\"\n", None).unwrap_err();
        let ConfigError::Parse { line, message, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*line, 2);
        assert!(message.contains("invalid job name"), "{message}");
    }

    #[test]
    fn discovery_walks_up_and_prefers_slurmfile_toml() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(dir.path().join("slurmfile"), "").unwrap();
        std::fs::write(dir.path().join("Slurmfile.toml"), "").unwrap();
        let found = Slurmfile::discover(None, &nested).unwrap().unwrap();
        assert_eq!(found, dir.path().join("Slurmfile.toml"));
        assert_eq!(
            Slurmfile::discover(Some(dir.path()), &nested)
                .unwrap()
                .unwrap(),
            dir.path().join("Slurmfile.toml")
        );
    }
}
