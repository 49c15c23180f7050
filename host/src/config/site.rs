//! The site layer: `/etc/slurmkit/Slurmfile.toml` (or the file `$SLURMKIT_SITE_CONFIG` names), written
//! by a cluster's administrators. Its `[[policy]]` entries run on every job, before the user's own,
//! whatever the user's Slurmfile says (it cannot remove them). A missing file is fine; one that cannot
//! be read, or holds anything but valid `[[policy]]` entries, is an error naming the file and line.

use std::path::{Path, PathBuf};

use super::settings::SiteSettings;
use super::{ConfigError, parse_error, resolve_local_path};

/// Where the site layer is, unless [`SITE_CONFIG_ENV`] says otherwise.
pub const SITE_CONFIG: &str = "/etc/slurmkit/Slurmfile.toml";
/// The variable that names another site file (tests, or a site that keeps it elsewhere).
pub const SITE_CONFIG_ENV: &str = "SLURMKIT_SITE_CONFIG";

/// The site layer as read.
#[derive(Debug, Clone)]
pub struct SiteLayer {
    pub path: PathBuf,
    /// What its relative paths (plugins, grants) are relative to.
    pub dir: PathBuf,
    pub settings: SiteSettings,
}

impl SiteLayer {
    /// The site file's path: `$SLURMKIT_SITE_CONFIG` if set and not empty, else [`SITE_CONFIG`].
    pub fn path() -> PathBuf {
        match std::env::var_os(SITE_CONFIG_ENV) {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(SITE_CONFIG),
        }
    }

    /// Read the site layer at `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<SiteLayer>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::parse(path, &text).map(Some)
    }

    pub fn parse(path: &Path, text: &str) -> Result<SiteLayer, ConfigError> {
        let settings: SiteSettings =
            toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(SiteLayer {
            path: path.to_path_buf(),
            dir,
            settings,
        })
    }

    /// A path written in the site file, resolved against its directory.
    pub fn resolve_path(&self, written: &str) -> PathBuf {
        resolve_local_path(written, &self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_site_file_is_no_layer_and_a_bad_one_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Slurmfile.toml");
        assert!(SiteLayer::load(&path).unwrap().is_none());
        std::fs::write(
            &path,
            "[[policy]]\nplugin = \"site.wasm\"\nname = \"site\"\n",
        )
        .unwrap();
        let layer = SiteLayer::load(&path).unwrap().unwrap();
        let policies = layer.settings.policy.as_ref().unwrap();
        assert_eq!(policies[0].name.as_deref(), Some("site"));
        assert_eq!(
            layer.resolve_path("site.wasm"),
            dir.path().join("site.wasm")
        );
        for (text, line, what) in [
            (
                "[[policy]]\nplugin = \"a.wasm\"\nplugn = 1\n",
                3,
                "unknown field `plugn`",
            ),
            ("[job]\npartition = \"x\"\n", 1, "unknown field `job`"),
        ] {
            crate::config::tests::assert_refused_at(
                SiteLayer::parse(&path, text).unwrap_err(),
                line,
                what,
                text,
            );
        }
    }
}
