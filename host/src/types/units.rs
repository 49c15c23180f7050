//! Quantities with units, written as a Slurmfile or sbatch writes them: time limits, memory, node
//! counts, byte counts and short durations. Each reads a bare number or text through one untagged
//! form ([`NumberOrText`]) and validates as it is read, so a bad value names its line.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::names::InvalidValue;

/// How a quantity may be written in TOML: a bare number, or text with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Integer(u64),
    Float(f64),
    Text(String),
}

impl NumberOrText {
    /// The written value as text, and whether it was a bare number; a fraction is refused, naming `what`.
    fn text<E: serde::de::Error>(self, what: &str) -> Result<(String, bool), E> {
        match self {
            NumberOrText::Integer(n) => Ok((n.to_string(), true)),
            NumberOrText::Text(text) => Ok((text, false)),
            NumberOrText::Float(x) => Err(E::custom(format!(
                "invalid {what} {x}: write a whole number, or text with a unit"
            ))),
        }
    }
}

/// A wall-clock limit. Written as Slurm writes it (`90` minutes, `1:30:00`, `2-00:00:00`) or with a unit
/// (`90s`, `45m`, `2h`, `1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimit(u64);

impl TimeLimit {
    const RULE: &'static str = "write minutes (90), [D-]HH:MM:SS (1:30:00, 2-00:00:00), or a number with a unit (90s, 45m, 2h, 1d)";

    /// Longer than any cluster allows; anything above is a typo (or an attempt to overflow).
    const MAX_SECONDS: u64 = 1000 * 86_400;

    pub fn from_seconds(seconds: u64) -> Self {
        TimeLimit(seconds)
    }

    pub fn seconds(self) -> u64 {
        self.0
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let err = || InvalidValue {
            what: "time limit",
            value: raw.to_string(),
            rule: Self::RULE,
        };
        // At most nine digits per number, so no arithmetic below can overflow.
        let number = |s: &str| -> Result<u64, InvalidValue> {
            if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            s.parse().map_err(|_| err())
        };
        let raw_trimmed = raw.trim();
        let unit_seconds = match raw_trimmed.chars().last() {
            Some('s') => Some(1),
            Some('m') => Some(60),
            Some('h') => Some(3600),
            Some('d') => Some(86_400),
            _ => None,
        };
        let seconds = if let Some(unit) = unit_seconds {
            number(&raw_trimmed[..raw_trimmed.len() - 1])?
                .checked_mul(unit)
                .ok_or_else(err)?
        } else {
            // Slurm's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
            let (days, clock) = match raw_trimmed.split_once('-') {
                Some((d, rest)) => (Some(number(d)?), rest),
                None => (None, raw_trimmed),
            };
            let parts = clock
                .split(':')
                .map(number)
                .collect::<Result<Vec<u64>, _>>()?;
            let clock_seconds = match (days.is_some(), parts.as_slice()) {
                (false, [m]) => m * 60,
                (false, [m, s]) => m * 60 + s,
                (false, [h, m, s]) | (true, [h, m, s]) => h * 3600 + m * 60 + s,
                (true, [h]) => h * 3600,
                (true, [h, m]) => h * 3600 + m * 60,
                _ => return Err(err()),
            };
            days.unwrap_or(0) * 86_400 + clock_seconds
        };
        if seconds == 0 || seconds > Self::MAX_SECONDS {
            return Err(err());
        }
        Ok(TimeLimit(seconds))
    }
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// Written as `"<seconds>s"`, a form [`TimeLimit::parse`] reads back exactly (a bare number would
/// read back as minutes).
impl Serialize for TimeLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for TimeLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, bare) = NumberOrText::deserialize(d)?.text("time limit")?;
        if bare && text == "0" {
            return Err(serde::de::Error::custom(
                "a time limit of 0 minutes is not a limit",
            ));
        }
        TimeLimit::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An amount of memory in MiB. Written as Slurm writes it: `4096` (MiB), `512M`, `4G`, `1T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Memory(u64);

impl Memory {
    const RULE: &'static str =
        "write a whole number of MiB (4096) or a number with a unit K, M, G or T (512M, 4G)";

    pub fn mebibytes(self) -> u64 {
        self.0
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let err = || InvalidValue {
            what: "memory size",
            value: raw.to_string(),
            rule: Self::RULE,
        };
        // A bare number is MiB, as sbatch reads it.
        let bytes = parse_binary_size(raw, 1 << 20).ok_or_else(err)?;
        let mib = bytes.div_ceil(1 << 20);
        if mib == 0 {
            return Err(err());
        }
        Ok(Memory(mib))
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, _) = NumberOrText::deserialize(d)?.text("memory size")?;
        Memory::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `N`, `NK`, `NM`, `NG`, `NT` (binary units; a trailing `i`/`B` is allowed: `4GiB`) in bytes, a bare
/// number counting in `default_unit` bytes. `None` when it is not such a size or overflows.
pub fn parse_binary_size(raw: &str, default_unit: u64) -> Option<u64> {
    let text = raw
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i');
    let (digits, unit) = match text.chars().last()? {
        'K' | 'k' => (&text[..text.len() - 1], 1u64 << 10),
        'M' | 'm' => (&text[..text.len() - 1], 1 << 20),
        'G' | 'g' => (&text[..text.len() - 1], 1 << 30),
        'T' | 't' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, default_unit),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// `--nodes`: a count, or a `min-max` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCount {
    pub min: u32,
    pub max: Option<u32>,
}

impl NodeCount {
    const RULE: &'static str = "write a node count (2) or a range (2-4) of at least 1";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let err = || InvalidValue {
            what: "node count",
            value: raw.to_string(),
            rule: Self::RULE,
        };
        let count = |s: &str| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(err)
        };
        match raw.split_once('-') {
            Some((min, max)) => {
                let (min, max) = (count(min)?, count(max)?);
                if max < min {
                    return Err(err());
                }
                Ok(NodeCount {
                    min,
                    max: Some(max),
                })
            }
            None => Ok(NodeCount {
                min: count(raw)?,
                max: None,
            }),
        }
    }
}

/// Written as `"2"` or `"2-4"`, the form the Slurmfile uses and [`NodeCount::parse`] reads back.
impl Serialize for NodeCount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.max {
            Some(max) => s.serialize_str(&format!("{}-{max}", self.min)),
            None => s.serialize_str(&self.min.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for NodeCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, _) = NumberOrText::deserialize(d)?.text("node count")?;
        NodeCount::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A byte count written as a number or with a unit (`64K`, `1M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteCount(pub u64);

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, _) = NumberOrText::deserialize(d)?.text("size")?;
        parse_binary_size(&text, 1).map(ByteCount).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid size {text:?}: write bytes (65536) or a number with a unit (64K, 1M)"
            ))
        })
    }
}

/// A duration of up to a day, written as seconds (`2`, `0.5`) or with a unit (`500ms`, `2s`, `1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortDuration(pub Duration);

impl<'de> Deserialize<'de> for ShortDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let err = |v: &str| {
            serde::de::Error::custom(format!(
                "invalid duration {v:?}: write seconds (2, 0.5) or a number with a unit (500ms, 2s, 1m)"
            ))
        };
        let duration = match NumberOrText::deserialize(d)? {
            NumberOrText::Integer(s) => Duration::from_secs(s),
            NumberOrText::Float(s) if s > 0.0 => {
                Duration::try_from_secs_f64(s).map_err(|_| err(&s.to_string()))?
            }
            NumberOrText::Float(s) => return Err(err(&s.to_string())),
            NumberOrText::Text(text) => {
                let trimmed = text.trim();
                let (digits, unit) = trimmed.split_at(
                    trimmed
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(trimmed.len()),
                );
                let n: u64 = digits.parse().map_err(|_| err(&text))?;
                match unit {
                    "ms" => Duration::from_millis(n),
                    "" | "s" => Duration::from_secs(n),
                    "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(|| err(&text))?),
                    _ => return Err(err(&text)),
                }
            }
        };
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "a duration of zero is not a limit",
            ));
        }
        if duration > Duration::from_secs(86_400) {
            return Err(serde::de::Error::custom(
                "a plugin call may take at most a day",
            ));
        }
        Ok(ShortDuration(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits() {
        let secs = |s: &str| TimeLimit::parse(s).unwrap().seconds();
        assert_eq!(secs("90"), 5400);
        assert_eq!(secs("1:30"), 90);
        assert_eq!(secs("1:30:00"), 5400);
        assert_eq!(secs("2-00:00:00"), 172_800);
        assert_eq!(secs("1-2"), 93_600);
        assert_eq!(secs("1-2:30"), 95_400);
        assert_eq!(secs("45m"), 2700);
        assert_eq!(secs("2h"), 7200);
        assert_eq!(secs("30s"), 30);
        for bad in [
            "",
            "0",
            "abc",
            "1:2:3:4",
            "-5",
            "1h30",
            "5x",
            "400000000000000000",
            "99999999999999999s",
            "1001d",
        ] {
            assert!(TimeLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_sizes() {
        let mib = |s: &str| Memory::parse(s).unwrap().mebibytes();
        assert_eq!(mib("4096"), 4096);
        assert_eq!(mib("512M"), 512);
        assert_eq!(mib("4G"), 4096);
        assert_eq!(mib("4GB"), 4096);
        assert_eq!(mib("4GiB"), 4096);
        assert_eq!(mib("1T"), 1 << 20);
        assert_eq!(mib("100K"), 1);
        for bad in ["", "G", "4X", "-1", "1.5G", "0"] {
            assert!(Memory::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_counts() {
        assert_eq!(
            NodeCount::parse("2").unwrap(),
            NodeCount { min: 2, max: None }
        );
        assert_eq!(
            NodeCount::parse("2-4").unwrap(),
            NodeCount {
                min: 2,
                max: Some(4)
            }
        );
        for bad in ["0", "4-2", "x", ""] {
            assert!(NodeCount::parse(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Limits {
        memory: Option<Memory>,
        timeout: Option<ShortDuration>,
        output: Option<ByteCount>,
        time: Option<TimeLimit>,
    }

    #[test]
    fn every_quantity_reads_a_number_or_text() {
        let limits: Limits =
            toml::from_str("memory = \"32M\"\ntimeout = \"500ms\"\noutput = \"64K\"\ntime = 90")
                .unwrap();
        assert_eq!(limits.memory.unwrap().mebibytes(), 32);
        assert_eq!(limits.timeout.unwrap().0, Duration::from_millis(500));
        assert_eq!(limits.output.unwrap().0, 65536);
        assert_eq!(limits.time.unwrap().seconds(), 5400);
        let limits: Limits = toml::from_str("timeout = 2.5\nmemory = 64").unwrap();
        assert_eq!(limits.timeout.unwrap().0, Duration::from_millis(2500));
        assert_eq!(limits.memory.unwrap().mebibytes(), 64);
        for bad in [
            "timeout = \"2h\"",
            "timeout = 0",
            "timeout = 1e300",
            "timeout = 86401",
            "timeout = \"99999999999999999999m\"",
            "memory = 1.5",
            "time = 0",
        ] {
            assert!(toml::from_str::<Limits>(bad).is_err(), "{bad}");
        }
    }
}
