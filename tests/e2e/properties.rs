//! Hostile values, generated: every validated Slurmfile field and command-line value either is refused
//! with an error that names where it came from and prints no raw control character, or arrives byte for
//! byte. Checked through the real pipeline (Slurmfile → plan → the built-in renderer component) and real
//! shells: `quote` round-trips through `/bin/sh` and bash; each rendered script is parsed by bash without
//! running it (as `bash -n` does), its `#SBATCH` lines are read as sbatch reads them, and it is run with
//! a payload that prints its arguments, environment and modules, which must be the values given.
//!
//! `tests/run` runs a few thousand cases. `tests/properties` runs a million or more and prints the count:
//! `SLURMKIT_PROPERTY_CASES=N` sets the count, `SLURMKIT_PROPERTY_SEED=S` replays a run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use slurmkit::cli::diagnostics;
use slurmkit::lifecycle::{Flags, JobFlags, Plan};
use slurmkit::plugin::PluginEngine;
use slurmkit::plugin::renderer::Renderer;
use slurmkit::types::shell::quote;
use slurmkit::types::spec::{JobSpec, Payload};

/// Cases per property in `tests/run`; the separate check sets a million.
const DEFAULT_CASES: u64 = 3000;
/// Values or scripts per shell process.
const BATCH: usize = 500;

fn cases() -> u64 {
    std::env::var("SLURMKIT_PROPERTY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The run's seed, printed so a failure can be replayed.
fn seed(property: &str) -> u64 {
    let seed: u64 = std::env::var("SLURMKIT_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{property}: seed {seed} (SLURMKIT_PROPERTY_SEED={seed} replays it)");
    seed
}

fn runner(seed: u64, worker: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&worker.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// Workers the cases are shared between: each has its own generator, renderer and shells.
fn workers() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u64)
}

// ---------------------------------------------------------------------------------------------------
// Hostile values

/// Strings that have broken quoting somewhere, whole or as parts.
const ATTACKS: &[&str] = &[
    "$(touch /tmp/slurmkit-pwned)",
    "`id`",
    "'; touch pwned; '",
    "\"; touch pwned; \"",
    "\n#SBATCH --wrap=id",
    "\r#SBATCH --uid=0",
    "x\nexport PATH=/tmp",
    "--wrap=id",
    "%x%j%%%",
    "\\",
    "~root",
    "${IFS}",
    "'\\''",
    "\\\n",
    "!!",
    "$'\\x41'",
    "-e",
    "*",
    "#",
    "\u{1b}]0;title\u{7}",
    "\u{85}\u{2028}",
    "a=b",
    "",
];

/// A character that means something to a shell, to sbatch, to Slurm's path patterns or to a terminal,
/// or any character at all.
fn hostile_char() -> BoxedStrategy<char> {
    prop_oneof![
        4 => prop::sample::select(
            "'\"\\$`;&|<>(){}[]*?~!#%= \t\n\r\u{1b}\u{7}\u{7f}\u{85}\u{feff}\u{2028}-/.,:@^+"
                .chars()
                .collect::<Vec<_>>()
        ),
        3 => prop::char::range('a', 'z'),
        1 => prop::char::range('0', '9'),
        1 => any::<char>(),
    ]
    .boxed()
}

fn hostile_string() -> BoxedStrategy<String> {
    let chars = || {
        prop::collection::vec(hostile_char(), 0..20)
            .prop_map(String::from_iter)
            .boxed()
    };
    prop_oneof![
        12 => chars(),
        2 => prop::sample::select(ATTACKS).prop_map(str::to_string),
        4 => (chars(), prop::sample::select(ATTACKS), chars())
            .prop_map(|(a, attack, b)| format!("{a}{attack}{b}")),
        // NUL, which no C string (argv, environment, a path) can carry.
        1 => (chars(), chars()).prop_map(|(a, b)| format!("{a}\0{b}")),
    ]
    .boxed()
}

/// A hostile string, or one shaped like `plausible` (a regex). Mostly plausible: a job has some twenty
/// values and one refused value refuses the job, so this keeps accepted jobs common.
fn field(plausible: &'static str) -> BoxedStrategy<String> {
    prop_oneof![1 => hostile_string(), 15 => plausible].boxed()
}

fn maybe(strategy: BoxedStrategy<String>) -> BoxedStrategy<Option<String>> {
    prop::option::weighted(0.5, strategy).boxed()
}

// ---------------------------------------------------------------------------------------------------
// Quoting

#[test]
fn quoted_words_come_back_byte_for_byte_from_sh_and_bash() {
    // NUL never reaches `quote`: validation refuses it (checked by the Slurmfile property below).
    // Short words too: a lone special character is where "is this word plain?" goes wrong.
    let strategy = prop_oneof![
        prop::collection::vec(hostile_char(), 0..40),
        prop::collection::vec(hostile_char(), 0..3),
    ]
    .prop_map(|chars| chars.into_iter().filter(|c| *c != '\0').collect::<String>());
    let mut runner = runner(seed("quoting"), 0);
    let total = cases();
    let mut batch = Vec::with_capacity(BATCH);
    let mut done = 0u64;
    while done < total {
        batch.clear();
        while batch.len() < BATCH && done + (batch.len() as u64) < total {
            batch.push(strategy.new_tree(&mut runner).unwrap().current());
        }
        let script: String = batch
            .iter()
            .map(|word| format!("printf '%s\\0' {}\n", quote(word)))
            .collect();
        for shell in ["/bin/sh", "bash"] {
            let printed = run_shell(shell, &[], script.as_bytes());
            let words: Vec<&[u8]> = printed.split(|b| *b == 0).collect();
            for (i, word) in batch.iter().enumerate() {
                assert_eq!(
                    words.get(i).copied(),
                    Some(word.as_bytes()),
                    "{shell} changed the quoted word {word:?} (written {})",
                    quote(word)
                );
            }
        }
        done += batch.len() as u64;
    }
    println!(
        "quoting: {done} hostile words through /bin/sh and bash: every one came back byte for byte"
    );
}

/// Run `shell` with `stdin`; its stdout and stderr together.
fn run_shell(shell: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(shell)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    output.stdout
}

// ---------------------------------------------------------------------------------------------------
// Slurmfile → plan → renderer → bash

/// One job as a Slurmfile and a command line could say it.
#[derive(Debug, Clone)]
struct JobCase {
    strings: Vec<(&'static str, String)>,
    environment: Vec<(String, String)>,
    modules: Vec<String>,
    arguments: Vec<String>,
    extra_directives: Vec<String>,
    script: Option<String>,
    flags: JobFlagsCase,
    cluster: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
struct JobFlagsCase {
    name: Option<String>,
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    time: Option<String>,
    /// sbatch's other options as flags: `(Slurmfile key, flag, value)`.
    options: Vec<(&'static str, &'static str, String)>,
    /// `--arg KEY=JSON`: the key and value meant, and what was written (JSON, or something hostile).
    args: Vec<(String, String, String)>,
    command: Vec<String>,
}

const NAME: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}";
const TEXT: &str = "[ -~]{1,16}";

fn job_case() -> impl Strategy<Value = JobCase> {
    let strings = (
        (
            maybe(field(NAME)),
            maybe(field(NAME)),
            maybe(field(NAME)),
            maybe(field(NAME)),
            maybe(field(NAME)),
            maybe(field("[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]|[0-9]{1,3}")),
            maybe(field("[0-9]{1,4}[KMGT]?")),
        ),
        (
            maybe(field("/[a-z ./%-]{1,12}")),
            maybe(field("[a-z0-9 ./%_-]{1,12}")),
            maybe(field("[a-z0-9 ./%_-]{1,12}")),
            maybe(field("[a-z0-9:]{1,8}")),
            maybe(field("gpu:[0-9]")),
            maybe(field(TEXT)),
            maybe(field("[0-9]{1,3}(-[0-9]{1,3})?(%[0-9])?")),
            maybe(field("(afterok|afterany):[0-9]{1,6}")),
        ),
    )
        .prop_map(|((n, p, a, q, r, t, m), (w, o, e, g, gr, c, ar, d))| {
            [
                ("name", n),
                ("partition", p),
                ("account", a),
                ("qos", q),
                ("reservation", r),
                ("time", t),
                ("mem", m),
                ("working_dir", w),
                ("output", o),
                ("error", e),
                ("gpus", g),
                ("gres", gr),
                ("constraint", c),
                ("array", ar),
                ("dependency", d),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect::<Vec<_>>()
        });
    let environment = prop::collection::vec((field("SK_[A-Z0-9_]{0,6}"), hostile_string()), 0..4);
    let modules = prop::collection::vec(field("[a-z]{1,6}(/[0-9.]{1,4})?"), 0..3);
    let arguments = prop::collection::vec(hostile_string(), 0..5);
    let extra = prop::collection::vec(field("--[a-z-]{1,10}(=[ -~]{1,8})?"), 0..2);
    let script = prop::option::weighted(0.05, hostile_string());
    let flags = (
        maybe(field(NAME)),
        maybe(field(NAME)),
        maybe(field(NAME)),
        maybe(field(NAME)),
        maybe(field("[0-9]{1,3}")),
        prop::option::weighted(0.1, prop::collection::vec(hostile_string(), 0..3)),
        prop::collection::vec(
            (
                field("[a-z_]{1,8}"),
                hostile_string(),
                prop::bool::weighted(0.9),
            ),
            0..3,
        ),
        (
            maybe(field("[a-z0-9 ./%_-]{1,12}")),
            maybe(field("[a-z0-9:]{1,8}")),
            maybe(field("[0-9]{1,3}(-[0-9]{1,3})?")),
            maybe(field("/[a-z ./-]{1,12}")),
        ),
    )
        .prop_map(
            |(
                name,
                partition,
                account,
                qos,
                time,
                command,
                args,
                (output, constraint, array, chdir),
            )| JobFlagsCase {
                options: [
                    ("output", "--output", output),
                    ("constraint", "--constraint", constraint),
                    ("array", "--array", array),
                    ("working_dir", "--chdir", chdir),
                ]
                .into_iter()
                .filter_map(|(k, f, v)| v.map(|v| (k, f, v)))
                .collect(),
                name,
                partition,
                account,
                qos,
                time,
                args: args
                    .into_iter()
                    .map(|(key, value, as_json)| {
                        let written = if as_json {
                            format!("{key}={}", serde_json::Value::String(value.clone()))
                        } else {
                            format!("{key}={value}")
                        };
                        (key, value, written)
                    })
                    .collect(),
                command: command.map(dump_command).unwrap_or_default(),
            },
        );
    let cluster = (
        maybe(field("[a-z0-9][a-z0-9.-]{0,11}")),
        maybe(field("[a-z_][a-z0-9_-]{0,8}")),
        maybe(field("(~/|/)[a-z0-9_./ -]{1,12}")),
    )
        .prop_map(|(h, u, b)| {
            [("hostname", h), ("username", u), ("job_base_dir", b)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect::<Vec<_>>()
        });
    (
        strings,
        environment,
        modules,
        arguments,
        extra,
        script,
        flags,
        cluster,
    )
        .prop_map(
            |(
                strings,
                environment,
                modules,
                arguments,
                extra_directives,
                script,
                flags,
                cluster,
            )| {
                JobCase {
                    strings,
                    environment,
                    modules,
                    arguments,
                    extra_directives,
                    script,
                    flags,
                    cluster,
                }
            },
        )
}

/// The payload every case runs: it prints its arguments and its environment, NUL-separated.
/// Bash builtins only: one exec per case (the payload's own) keeps a million cases affordable.
/// Its loop variables, and what bash sets itself, are not compared ([`BASH_OWN`]).
const DUMP: &str = "for __sk_a in \"$@\"; do printf 'arg:%s\\0' \"$__sk_a\"; done; for __sk_n in $(compgen -e); do printf '%s=%s\\0' \"$__sk_n\" \"${!__sk_n}\"; done";

/// Variables whose exported value bash itself sets or changes, and the dump's own.
const BASH_OWN: &[&str] = &["__sk_a", "__sk_n", "PWD", "OLDPWD", "SHLVL", "_"];

fn dump_command(arguments: Vec<String>) -> Vec<String> {
    let mut argv = vec!["/bin/bash".into(), "-c".into(), DUMP.into(), "dump".into()];
    argv.extend(arguments);
    argv
}

impl JobCase {
    fn slurmfile(&self) -> String {
        let mut job = toml::Table::new();
        for (key, value) in &self.strings {
            job.insert(key.to_string(), value.clone().into());
        }
        let environment: toml::Table = self
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), toml::Value::from(v.clone())))
            .collect();
        if !environment.is_empty() {
            job.insert("environment".into(), environment.into());
        }
        let list = |items: &[String]| toml::Value::from(items.to_vec());
        if !self.modules.is_empty() {
            job.insert("modules".into(), list(&self.modules));
        }
        if !self.extra_directives.is_empty() {
            job.insert("extra_directives".into(), list(&self.extra_directives));
        }
        match &self.script {
            Some(body) => job.insert("script".into(), body.clone().into()),
            None => job.insert(
                "command".into(),
                list(&dump_command(self.arguments.clone())),
            ),
        };
        let mut file = toml::Table::new();
        file.insert("job".into(), job.into());
        let cluster: toml::Table = self
            .cluster
            .iter()
            .map(|(k, v)| (k.to_string(), toml::Value::from(v.clone())))
            .collect();
        if !cluster.is_empty() {
            file.insert("cluster".into(), cluster.into());
        }
        toml::to_string(&file).unwrap()
    }

    fn job_flags(&self) -> JobFlags {
        JobFlags {
            name: self.flags.name.clone(),
            partition: self.flags.partition.clone(),
            account: self.flags.account.clone(),
            qos: self.flags.qos.clone(),
            time: self.flags.time.clone(),
            options: self.flags.options.clone(),
            args: self.flags.args.iter().map(|(_, _, w)| w.clone()).collect(),
            command: self.flags.command.clone(),
        }
    }
}

/// A refusal names where the value came from (the Slurmfile with its line, or the flag) and prints no
/// raw control character.
#[track_caller]
fn check_refusal(text: &str, case: &JobCase) {
    let raw = text.chars().find(|c| c.is_control() && *c != '\n');
    assert!(
        raw.is_none(),
        "a refusal printed the raw control character {raw:?}:\n{text}\ncase: {case:#?}"
    );
    let named =
        text.contains("Slurmfile.toml:") || text.contains("--") || text.contains("renderer");
    assert!(
        named,
        "a refusal does not say where the value came from:\n{text}\ncase: {case:#?}"
    );
}

/// What a rendered command job must print when run: modules loaded, then its arguments, then its
/// environment (checked by name).
struct Expected {
    modules: Vec<String>,
    arguments: Vec<String>,
    environment: BTreeMap<String, String>,
}

fn expected(spec: &JobSpec) -> Option<Expected> {
    let Payload::Command(argv) = &spec.payload else {
        return None;
    };
    Some(Expected {
        modules: spec.modules.clone(),
        arguments: argv.get(4..).unwrap_or_default().to_vec(),
        environment: spec.environment.clone(),
    })
}

/// The `#SBATCH` block as sbatch reads it: lines from the second on, up to the first that is neither a
/// comment nor blank. Each directive must be one argument; quotes are removed, with no escapes.
fn directives(script: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for line in script.lines().skip(1) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if !trimmed.starts_with('#') {
            break;
        }
        let Some(rest) = line.strip_prefix("#SBATCH") else {
            continue;
        };
        let mut words = Vec::new();
        let (mut word, mut quoted, mut in_word) = (String::new(), false, false);
        for c in rest.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    in_word = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                '#' if !quoted => break,
                c => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if quoted {
            return Err(format!("unterminated quote in {line:?}"));
        }
        if in_word {
            words.push(word);
        }
        if words.len() != 1 {
            return Err(format!(
                "{line:?} holds {} arguments: {words:?}",
                words.len()
            ));
        }
        found.push(words.remove(0));
    }
    Ok(found)
}

/// The directives the spec's verbatim values must appear as.
fn verbatim_directives(spec: &JobSpec) -> Vec<String> {
    let mut out = vec![format!("--job-name={}", spec.name.as_str())];
    let mut push = |option: &str, value: Option<&str>| {
        if let Some(value) = value {
            out.push(format!("--{option}={value}"));
        }
    };
    push("partition", spec.partition.as_ref().map(|v| v.as_str()));
    push("account", spec.account.as_ref().map(|v| v.as_str()));
    push("qos", spec.qos.as_ref().map(|v| v.as_str()));
    push("reservation", spec.reservation.as_ref().map(|v| v.as_str()));
    push("chdir", spec.working_dir.as_ref().map(|v| v.as_str()));
    push("gpus", spec.gpus.as_ref().map(|v| v.as_str()));
    push("gres", spec.gres.as_ref().map(|v| v.as_str()));
    push("constraint", spec.constraint.as_ref().map(|v| v.as_str()));
    push("array", spec.array.as_ref().map(|v| v.as_str()));
    push("output", spec.output.as_ref().map(|v| v.as_str()));
    push("error", spec.error.as_ref().map(|v| v.as_str()));
    for extra in &spec.extra_directives {
        out.push(extra.clone());
    }
    out
}

/// Scripts checked together in one bash: each parsed as a function body (bash's parser without
/// running anything, as `bash -n`), then run in a subshell with a `module` that reports its argument.
const DRIVER: &str = r#"
module() { printf 'module:%s\0' "$2"; }
while IFS= read -r -d '' script; do
  if eval "__slurmkit_parse_only() {
$script
}" 2>/dev/null; then printf 'P'; else printf 'F'; fi
  ( eval "$script" ) </dev/null 2>&1
  printf '\0%s\0' "$MARK"
done
"#;

struct Rendered {
    case: JobCase,
    script: String,
    expected: Expected,
}

fn run_batch(batch: &[Rendered]) {
    let mark = format!("end-of-case-{:016x}", rand_u64());
    let mut input = Vec::new();
    for rendered in batch {
        input.extend_from_slice(rendered.script.as_bytes());
        input.push(0);
    }
    let output = {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(DRIVER)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MARK", &mark)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        output.stdout
    };
    let separator = format!("\0{mark}\0");
    let text = String::from_utf8_lossy(&output);
    let results: Vec<&str> = text.split(&separator).collect();
    for (i, rendered) in batch.iter().enumerate() {
        let result = results.get(i).unwrap_or_else(|| {
            panic!(
                "bash stopped before case {i}:\n{}\ncase: {:#?}",
                rendered.script, rendered.case
            )
        });
        let (parsed, run) = result.split_at(1);
        assert_eq!(
            parsed, "P",
            "bash cannot parse the rendered script:\n{}\ncase: {:#?}",
            rendered.script, rendered.case
        );
        let mut records: Vec<&str> = run.split('\0').collect();
        if records.last() == Some(&"") {
            records.pop();
        }
        let modules: Vec<&str> = records
            .iter()
            .filter_map(|r| r.strip_prefix("module:"))
            .collect();
        let arguments: Vec<&str> = records
            .iter()
            .filter_map(|r| r.strip_prefix("arg:"))
            .collect();
        let environment: BTreeMap<&str, &str> = records
            .iter()
            .filter(|r| !r.starts_with("module:") && !r.starts_with("arg:"))
            .filter_map(|r| r.split_once('='))
            .collect();
        let expected = &rendered.expected;
        let context = || {
            format!(
                "script:\n{}\nprinted: {records:?}\ncase: {:#?}",
                rendered.script, rendered.case
            )
        };
        assert_eq!(modules, expected.modules, "modules differ\n{}", context());
        assert_eq!(
            arguments,
            expected.arguments,
            "arguments differ\n{}",
            context()
        );
        for (name, value) in &expected.environment {
            if BASH_OWN.contains(&name.as_str()) {
                continue;
            }
            assert_eq!(
                environment.get(name.as_str()).copied(),
                Some(value.as_str()),
                "variable {name} differs\n{}",
                context()
            );
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[derive(Default)]
struct Tally {
    cases: u64,
    refused_by_plan: u64,
    refused_by_renderer: u64,
    rendered: u64,
    executed: u64,
    real_bash_n: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.cases += other.cases;
        self.refused_by_plan += other.refused_by_plan;
        self.refused_by_renderer += other.refused_by_renderer;
        self.rendered += other.rendered;
        self.executed += other.executed;
        self.real_bash_n += other.real_bash_n;
    }
}

#[test]
fn slurmfile_values_are_refused_with_their_place_or_reach_the_job_byte_for_byte() {
    let seed = seed("slurmfile");
    let (total, workers) = (cases(), workers());
    let handles: Vec<_> = (0..workers)
        .map(|worker| {
            let share = total / workers + u64::from(worker < total % workers);
            std::thread::spawn(move || slurmfile_cases(runner(seed, worker), share))
        })
        .collect();
    let mut tally = Tally::default();
    for handle in handles {
        let part = handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        tally.add(&part);
    }
    println!(
        "slurmfile: {} hostile jobs: {} refused by validation with file:line or flag, {} refused by the renderer naming the field, {} rendered ({} run by bash with every module, argument and variable byte for byte; {} also checked by a separate `bash -n`)",
        tally.cases,
        tally.refused_by_plan,
        tally.refused_by_renderer,
        tally.rendered,
        tally.executed,
        tally.real_bash_n
    );
    assert!(
        tally.executed * 10 > tally.cases,
        "too few cases got through to bash to mean anything: {}",
        tally.executed
    );
}

/// `count` cases from `runner`: plan, render, read as sbatch would, then run in batches.
fn slurmfile_cases(mut runner: TestRunner, count: u64) -> Tally {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = PluginEngine::new(None, None).unwrap();
    let renderer = runtime.block_on(Renderer::builtin(&engine)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let slurmfile = dir.path().join("Slurmfile.toml");
    let strategy = job_case();
    let mut tally = Tally::default();
    let mut batch: Vec<Rendered> = Vec::with_capacity(BATCH);
    while tally.cases < count {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        tally.cases += 1;
        std::fs::write(&slurmfile, case.slurmfile()).unwrap();
        let flags = Flags {
            slurmfile: Some(slurmfile.clone()),
            ..Flags::default()
        };
        let planned = Plan::resolve(&flags, &case.job_flags(), dir.path()).and_then(|plan| {
            plan.cluster_settings()?;
            plan.jobs(&[])
        });
        let spec = match planned {
            Ok(mut specs) => specs.remove(0),
            Err(error) => {
                check_refusal(&diagnostics::render(&error), &case);
                tally.refused_by_plan += 1;
                continue;
            }
        };
        // Every --arg that was accepted reached the job's arguments as written (the last of a key wins).
        for (key, value, written) in &case.flags.args {
            let last = case.flags.args.iter().rev().find(|(k, _, _)| k == key);
            if last.map(|(_, _, w)| w) == Some(written)
                && written.as_str() == format!("{key}={}", serde_json::Value::String(value.clone()))
            {
                assert_eq!(
                    spec.args.get(key).and_then(|v| v.as_str()),
                    Some(value.as_str()),
                    "--arg {written:?} did not arrive\ncase: {case:#?}"
                );
            }
        }
        let script = match runtime.block_on(renderer.render(&spec)) {
            Ok(script) => script,
            Err(error) => {
                check_refusal(&diagnostics::render(&error), &case);
                tally.refused_by_renderer += 1;
                continue;
            }
        };
        tally.rendered += 1;
        let found = directives(&script)
            .unwrap_or_else(|e| panic!("{e}\nscript:\n{script}\ncase: {case:#?}"));
        for directive in verbatim_directives(&spec) {
            assert!(
                found.contains(&directive),
                "sbatch would not read {directive:?} from:\n{script}\nit reads {found:?}\ncase: {case:#?}"
            );
        }
        // A script payload is the user's own bash: only its header is ours to check.
        let Some(expected) = expected(&spec) else {
            continue;
        };
        if tally.executed % 50 == 0 {
            bash_n(&script, dir.path(), &case);
            tally.real_bash_n += 1;
        }
        tally.executed += 1;
        batch.push(Rendered {
            case,
            script,
            expected,
        });
        if batch.len() == BATCH {
            run_batch(&batch);
            batch.clear();
        }
    }
    run_batch(&batch);
    tally
}

/// The real `bash -n` on one script.
fn bash_n(script: &str, dir: &Path, case: &JobCase) {
    let path = dir.join("job.sbatch");
    std::fs::write(&path, script).unwrap();
    let output = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        output.status.success(),
        "bash -n refuses the script: {}\n{script}\ncase: {case:#?}",
        String::from_utf8_lossy(&output.stderr)
    );
}
