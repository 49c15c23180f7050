//! `slurmkit import`: the Python SDK's Slurmfile converted (by [`crate::config::import`]), printed or
//! written atomically, and what was not carried over said on stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::diagnostics::Failure;
use crate::config::ConfigError;
use crate::config::import::convert;
use crate::error::{Diagnose, exit};

/// `--output` could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path} exists: not replacing it", path = .0.display())]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}", path = .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Diagnose for OutputError {
    fn exit_code(&self) -> u8 {
        match self {
            OutputError::Exists(_) => exit::WOULD_OVERWRITE,
            OutputError::Write { .. } => exit::INTERNAL,
        }
    }

    fn hint(&self) -> Option<String> {
        matches!(self, OutputError::Exists(_))
            .then(|| "give --force to replace it, or another --output".to_string())
    }
}

pub fn run(
    path: &Path,
    environments: &[String],
    output: Option<&Path>,
    force: bool,
) -> Result<ExitCode, Failure> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let conversion = convert(path, &text, environments)?;
    match output {
        Some(output) => write_atomically(output, conversion.text.as_bytes(), force)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(conversion.text.as_bytes())?;
            out.flush()?;
        }
    }
    let mut err = std::io::stderr().lock();
    for item in &conversion.dropped {
        writeln!(err, "not carried over: {item}")?;
    }
    if let Some(output) = output {
        writeln!(
            err,
            "wrote {} (environments: {})",
            crate::types::text::escape_controls(&output.display().to_string()),
            crate::types::text::escape_controls(&conversion.environments.join(", "))
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `bytes` to `path` through a temporary file beside it: readers see the old file or the whole
/// new one. Without `force`, an existing `path` is never replaced, even one that appears meanwhile.
fn write_atomically(path: &Path, bytes: &[u8], force: bool) -> Result<(), OutputError> {
    let error = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    if !force && path.symlink_metadata().is_ok() {
        return Err(OutputError::Exists(path.to_path_buf()));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.slurmkit-{:08x}", rand::random::<u32>()));
    let result = (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if force {
            std::fs::rename(&temporary, path)
        } else {
            // A link fails if the name exists: nothing is replaced, even if it appeared just now.
            std::fs::hard_link(&temporary, path)?;
            std::fs::remove_file(&temporary)
        }
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
            OutputError::Exists(path.to_path_buf())
        } else {
            error(e)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_written_whole_and_replaced_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Slurmfile.toml");
        write_atomically(&path, b"one", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let err = write_atomically(&path, b"two", false).unwrap_err();
        assert_eq!(err.exit_code(), exit::WOULD_OVERWRITE);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomically(&path, b"two", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
