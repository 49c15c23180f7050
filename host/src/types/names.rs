//! Validation of every value that names something on the cluster.
//!
//! Quoting already keeps these values out of the shell; validation keeps them meaningful, readable in
//! `squeue`, safe as a directory name and free of characters sbatch's directive parser cannot carry.
//! Each rule says what it allows so an error can tell the user what to write instead.

use std::fmt;

use crate::error::{Diagnose, exit};

/// A value that failed a naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

impl Diagnose for InvalidValue {
    fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const RULE: &'static str = concat!(
                "use 1 to ", $max, " letters, digits, '_', '-', '.'",
                ", starting with a letter, digit or '_'"
            );

            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                let ok_char = |b: u8| b.is_ascii_alphanumeric() || b"_-.".contains(&b);
                let valid = !value.is_empty()
                    && value.len() <= $max
                    && value.bytes().all(ok_char)
                    && (value.as_bytes()[0].is_ascii_alphanumeric() || value.as_bytes()[0] == b'_');
                if valid {
                    Ok($name(value.to_string()))
                } else {
                    Err(InvalidValue { what: $what, value: value.to_string(), rule: Self::RULE })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_name!(
    /// A job name: also the first part of the job directory's name.
    JobName, "job name", 128
);
validated_name!(
    /// A Slurm partition.
    Partition, "partition", 64
);
validated_name!(
    /// A Slurm account.
    Account, "account", 64
);
validated_name!(
    /// A Slurm QOS.
    Qos, "qos", 64
);
validated_name!(
    /// A Slurm reservation.
    Reservation, "reservation", 64
);

/// A Slurm job id as users and `sbatch --parsable` write it: `123`, or an array task `123_4`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub const RULE: &'static str =
        "a job id is digits, optionally followed by _ and an array index (e.g. 123 or 123_4)";

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        let valid = match value.split_once('_') {
            Some((job, task)) => digits(job) && digits(task),
            None => digits(value),
        };
        if valid {
            Ok(JobId(value.to_string()))
        } else {
            Err(InvalidValue {
                what: "job id",
                value: value.to_string(),
                rule: Self::RULE,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The job id without an array index: `123_4` → `123`.
    pub fn base(&self) -> &str {
        self.0.split('_').next().unwrap_or(&self.0)
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        JobId::parse(&value)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl std::str::FromStr for JobId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobId::parse(s)
    }
}

/// Free text that ends up inside an `#SBATCH` value or a file name pattern (paths, gres, constraints):
/// anything printable except the characters sbatch's directive parser cannot carry.
pub fn directive_text(what: &'static str, value: &str) -> Result<(), InvalidValue> {
    const RULE: &str =
        "must be non-empty and must not contain line breaks, control characters, '\"' or '\\'";
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(InvalidValue {
            what,
            value: value.to_string(),
            rule: RULE,
        });
    }
    Ok(())
}

/// Text with no NUL in it: a C string (an environment value, a program argument) cannot carry one,
/// so a NUL would silently cut it short.
fn without_nul(what: &'static str, value: &str) -> Result<(), InvalidValue> {
    if value.contains('\0') {
        return Err(InvalidValue {
            what,
            value: value.to_string(),
            rule: "it must not contain a NUL character",
        });
    }
    Ok(())
}

/// A host name, address or ssh_config alias: one word an `ssh` command line could carry.
pub fn host_name(value: &str) -> Result<(), InvalidValue> {
    one_word("host name", value)
}

/// A user name on the cluster.
pub fn user_name(value: &str) -> Result<(), InvalidValue> {
    one_word("user name", value)
}

fn one_word(what: &'static str, value: &str) -> Result<(), InvalidValue> {
    let valid = !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('-')
        && !value.chars().any(|c| c.is_control() || c.is_whitespace());
    if valid {
        Ok(())
    } else {
        Err(InvalidValue {
            what,
            value: value.to_string(),
            rule: "write one word without spaces or control characters, not starting with '-'",
        })
    }
}

/// An environment variable's value.
pub fn env_value(value: &str) -> Result<(), InvalidValue> {
    without_nul("environment value", value)
}

/// One element of a command's argv.
pub fn command_argument(value: &str) -> Result<(), InvalidValue> {
    without_nul("command argument", value)
}

/// A script body.
pub fn script_text(value: &str) -> Result<(), InvalidValue> {
    without_nul("script", value)
}

/// An environment variable name a shell can export: letters, digits and `_`, not starting with a digit.
pub fn env_name(value: &str) -> Result<(), InvalidValue> {
    let mut chars = value.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(InvalidValue {
            what: "environment variable name",
            value: value.to_string(),
            rule: "use letters, digits and '_', not starting with a digit",
        })
    }
}

/// An environment module (`gcc/13.2`): printable, no spaces.
pub fn module_name(value: &str) -> Result<(), InvalidValue> {
    if value.is_empty() || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(InvalidValue {
            what: "module name",
            value: value.to_string(),
            rule: "a module name is one word without spaces or control characters (e.g. gcc/13.2)",
        });
    }
    Ok(())
}

/// An extra `#SBATCH` option: `--name` or `--name=value`, the value fit for a directive line.
pub fn extra_directive(value: &str) -> Result<(), InvalidValue> {
    let err = || InvalidValue {
        what: "#SBATCH option",
        value: value.to_string(),
        rule: "write one long option, --name or --name=value, without line breaks, '\"' or '\\'",
    };
    let (option, argument) = match value.split_once('=') {
        Some((option, argument)) => (option, Some(argument)),
        None => (value, None),
    };
    let name_ok = option.len() > 2
        && option.starts_with("--")
        && option[2..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !name_ok || argument.is_some_and(|a| directive_text("#SBATCH option", a).is_err()) {
        return Err(err());
    }
    Ok(())
}

/// An `--array` spec: `0-99`, `1,3,5-7`, `0-15:4`, with an optional `%N` throttle.
pub fn array_spec(value: &str) -> Result<(), InvalidValue> {
    const RULE: &str = "an array spec is comma-separated indices or ranges (e.g. 0-99, 1,3,5-7, 0-15:4), optionally ending in %N";
    let err = || InvalidValue {
        what: "array spec",
        value: value.to_string(),
        rule: RULE,
    };
    let (ranges, throttle) = match value.split_once('%') {
        Some((ranges, throttle)) => (ranges, Some(throttle)),
        None => (value, None),
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(throttle) = throttle
        && !number(throttle)
    {
        return Err(err());
    }
    let valid_range = |part: &str| {
        let (range, step) = match part.split_once(':') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        let range_ok = match range.split_once('-') {
            Some((lo, hi)) => number(lo) && number(hi),
            None => number(range) && step.is_none(),
        };
        range_ok && step.is_none_or(number)
    };
    if ranges.split(',').all(valid_range) {
        Ok(())
    } else {
        Err(err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names() {
        for good in ["hello", "train_v2", "a.b-c", "_x", "9lives"] {
            assert!(JobName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "x; rm -rf ~",
            "a\nb",
            "$(id)",
            "-rf",
            ".hidden",
            "a b",
            "a/b",
            "../x",
            "naïve",
            &"x".repeat(129),
        ] {
            let err = JobName::parse(bad).unwrap_err();
            assert_eq!(err.what, "job name");
        }
    }

    #[test]
    fn error_says_what_to_write() {
        let err = Partition::parse("debug;id").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid partition \"debug;id\": use 1 to 64 letters, digits, '_', '-', '.', starting with a letter, digit or '_'"
        );
    }

    #[test]
    fn job_ids() {
        for good in ["1", "123456", "12_3"] {
            assert!(JobId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "12;id", "12_", "_3", "12_3_4", "0x10", "12 13", "-1"] {
            assert!(JobId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(JobId::parse("12_3").unwrap().base(), "12");
    }

    #[test]
    fn array_specs() {
        for good in ["0-99", "1,3,5-7", "0-15:4", "0-9%2", "7"] {
            assert!(array_spec(good).is_ok(), "{good}");
        }
        for bad in ["", "0-", "a-b", "1;id", "0-9%", "0-9%x", "3:2", "1,,2"] {
            assert!(array_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn directive_text_refuses_line_breaks_and_quotes() {
        assert!(directive_text("output", "/home/u/out dir/%j.out").is_ok());
        for bad in ["", "a\nb", "a\"b", "a\\b", "a\rb"] {
            assert!(directive_text("output", bad).is_err(), "{bad:?}");
        }
    }
}
