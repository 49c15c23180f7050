//! A container a job's payload runs in: `container = { image, mounts, runtime, workdir }`.
//!
//! Every value is validated as it is read, so a bad one in a Slurmfile is reported with its file and
//! line. A renderer quotes each value as one shell word; what is refused here is what a runtime would
//! read differently from what was written: control characters, a `,` in a mount (pyxis and apptainer
//! both split their mount lists on commas), a `:` in a mount's paths (they split each mount on colons),
//! an image that would be taken for an option.

use serde::{Deserialize, Serialize};

use super::names::InvalidValue;
use crate::wit::ContainerRuntime;

/// The container table of a job, checked as a whole: `image` and `runtime` are required, nothing
/// else is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ContainerSettings")]
pub struct Container {
    pub image: ContainerImage,
    pub mounts: Vec<Mount>,
    pub runtime: ContainerRuntime,
    pub workdir: Option<ContainerPath>,
}

/// The container table as written, before the required keys are checked (so a missing one is named
/// with the rule, not just as a missing field).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerSettings {
    image: Option<ContainerImage>,
    #[serde(default)]
    mounts: Vec<Mount>,
    runtime: Option<ContainerRuntime>,
    workdir: Option<ContainerPath>,
}

impl TryFrom<ContainerSettings> for Container {
    type Error = &'static str;

    fn try_from(raw: ContainerSettings) -> Result<Self, Self::Error> {
        let image = raw
            .image
            .ok_or("a container needs an `image` (e.g. image = \"docker://ubuntu:24.04\")")?;
        let runtime = raw.runtime.ok_or(
            "a container needs a `runtime`: \"pyxis\" (srun --container-image) or \"apptainer\" (apptainer exec)",
        )?;
        Ok(Container {
            image,
            mounts: raw.mounts,
            runtime,
            workdir: raw.workdir,
        })
    }
}

fn has_control(value: &str) -> bool {
    value.chars().any(char::is_control)
}

/// A container image: `docker://ubuntu:24.04`, `nvcr.io#nvidia/pytorch:24.05-py3`, `/images/x.sif`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ContainerImage(String);

impl ContainerImage {
    const RULE: &'static str = "write the image as the runtime takes it (docker://ubuntu:24.04, nvcr.io#nvidia/pytorch:24.05-py3, /images/app.sif): not empty, not starting with '-', no control characters";

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.trim().is_empty() || value.starts_with('-') || has_control(value) {
            return Err(InvalidValue {
                what: "container image",
                value: value.to_string(),
                rule: Self::RULE,
            });
        }
        Ok(ContainerImage(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ContainerImage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ContainerImage::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An absolute path inside the container (its `workdir`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ContainerPath(String);

impl ContainerPath {
    const RULE: &'static str =
        "write an absolute path inside the container (e.g. /work), without control characters";

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if !value.starts_with('/') || has_control(value) {
            return Err(InvalidValue {
                what: "container workdir",
                value: value.to_string(),
                rule: Self::RULE,
            });
        }
        Ok(ContainerPath(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ContainerPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ContainerPath::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A bind mount, `SRC:DST` or `SRC:DST:ro|rw`: a path on the compute node and where it appears in the
/// container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Mount(String);

impl Mount {
    const RULE: &'static str = "write SRC:DST or SRC:DST:ro|rw, SRC and DST absolute paths without ',', ':' or control characters (e.g. /data:/data:ro)";

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let path = |p: &str| p.starts_with('/') && !p.contains(',') && !has_control(p);
        let parts: Vec<&str> = value.split(':').collect();
        let valid = match parts.as_slice() {
            [src, dst] => path(src) && path(dst),
            [src, dst, opts] => path(src) && path(dst) && matches!(*opts, "ro" | "rw"),
            _ => false,
        };
        if !valid {
            return Err(InvalidValue {
                what: "container mount",
                value: value.to_string(),
                rule: Self::RULE,
            });
        }
        Ok(Mount(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Mount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Mount::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_absolute_pairs_with_known_options() {
        for ok in ["/data:/data", "/data:/data:ro", "/a b:/c:rw", "/:/host"] {
            assert!(Mount::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "data:/data",
            "/data:data",
            "/data",
            "/data:/data:rx",
            "/a,b:/c",
            "/a:/b:ro:x",
            "/a\n:/b",
            "",
        ] {
            assert!(Mount::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn images_and_workdirs() {
        assert!(ContainerImage::parse("nvcr.io#nvidia/pytorch:24.05-py3").is_ok());
        for bad in ["", " ", "--rm", "a\u{1b}b"] {
            assert!(ContainerImage::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ContainerPath::parse("/work dir").is_ok());
        for bad in ["work", "", "/a\nb"] {
            assert!(ContainerPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_table_needs_image_and_runtime_and_nothing_else() {
        let ok: Container = toml::from_str(
            "image = \"docker://ubuntu\"\nruntime = \"apptainer\"\nmounts = [\"/d:/d:ro\"]\n",
        )
        .unwrap();
        assert_eq!(ok.runtime, ContainerRuntime::Apptainer);
        assert_eq!(ok.mounts.len(), 1);
        for (text, message) in [
            ("image = \"x\"", "needs a `runtime`"),
            ("runtime = \"pyxis\"", "needs an `image`"),
            (
                "image = \"x\"\nruntime = \"docker\"",
                "container runtimes are: pyxis, apptainer",
            ),
            (
                "image = \"x\"\nruntime = \"pyxis\"\nmount = []",
                "unknown field",
            ),
        ] {
            let err = toml::from_str::<Container>(text).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    /// The journal stores specs as JSON: a container reads back as written.
    #[test]
    fn reads_back_from_json() {
        let container = Container {
            image: ContainerImage::parse("x.sif").unwrap(),
            mounts: vec![Mount::parse("/a:/b:ro").unwrap()],
            runtime: ContainerRuntime::Pyxis,
            workdir: Some(ContainerPath::parse("/w").unwrap()),
        };
        let json = serde_json::to_string(&container).unwrap();
        assert_eq!(
            serde_json::from_str::<Container>(&json).unwrap(),
            container,
            "{json}"
        );
    }
}
