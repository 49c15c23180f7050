//! The cluster's input store from this side ([`crate::slurm::store`]): before a submission is sent,
//! which of its large inputs need not be; after, the digests of the large inputs that were.

use std::collections::HashMap;
use std::path::PathBuf;

use super::session::Session;
use crate::exec::Exec as _;
use crate::slurm::store::{self, STORE_THRESHOLD};
use crate::slurm::submit::{Content, Hashed, StagedJob};
use crate::types::work::FileIdentity;

/// The identity of the local file at `path` when it is large enough for the store.
fn identity(path: &std::path::Path) -> Option<FileIdentity> {
    // A stat first: most inputs are small, and resolving a path costs more.
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() || metadata.len() < STORE_THRESHOLD {
        return None;
    }
    FileIdentity::of(path).ok()
}

/// Turn into [`Content::Stored`] every large input of `jobs` whose digest the journal remembers for
/// the file as it is now, and which the store under `base` holds with the same size: one exec, and
/// only when some digest is remembered. When anything fails on the way, the inputs are sent.
pub(super) async fn reuse(session: &Session, base: &str, jobs: &mut [StagedJob]) {
    let mut sources: Vec<PathBuf> = jobs
        .iter()
        .flat_map(|job| &job.inputs)
        .filter_map(|input| match &input.content {
            Content::File(path) => Some(path.clone()),
            _ => None,
        })
        .collect();
    sources.sort();
    sources.dedup();
    if sources.is_empty() {
        return;
    }
    // Stat each file and look its identity up, on the journal's blocking thread.
    let known = session
        .journal
        .run(move |journal| {
            let mut known = HashMap::new();
            for source in sources {
                let Some(file) = identity(&source) else {
                    continue;
                };
                if let Some(digest) = journal.input_digest(&file)? {
                    known.insert(source, (digest, file.size));
                }
            }
            Ok(known)
        })
        .await;
    let known = match known {
        Ok(known) if !known.is_empty() => known,
        Ok(_) => return,
        Err(error) => {
            tracing::debug!("the input digests cannot be read from the journal: {error}");
            return;
        }
    };
    let nonce = format!("slurmkit-{:016x}", rand::random::<u64>());
    let mut digests: Vec<String> = known.values().map(|(digest, _)| digest.clone()).collect();
    digests.sort();
    digests.dedup();
    let command = store::query(&nonce, base, &digests);
    let held = match session.conn.exec(&command).await {
        Ok(output) => store::held(&nonce, &output),
        Err(error) => {
            tracing::debug!("the input store cannot be asked, so every input is sent: {error}");
            return;
        }
    };
    let mut reused = 0u64;
    for input in jobs.iter_mut().flat_map(|job| job.inputs.iter_mut()) {
        let Content::File(source) = &input.content else {
            continue;
        };
        if let Some((digest, size)) = known.get(source)
            && held.get(digest) == Some(size)
        {
            reused += size;
            input.content = Content::Stored {
                source: source.clone(),
                sha256: digest.clone(),
            };
        }
    }
    tracing::debug!("{reused} bytes of inputs come from the cluster's input store");
}

/// Remember the digests of the large inputs just sent, for the next submission.
pub(super) async fn remember(session: &Session, hashed: Vec<Hashed>) {
    if hashed.is_empty() {
        return;
    }
    let remembered = session
        .journal
        .run(move |journal| {
            journal.batch(|journal| {
                for file in &hashed {
                    journal.remember_input_digest(&file.identity, &file.sha256)?;
                }
                Ok(())
            })
        })
        .await;
    if let Err(error) = remembered {
        tracing::debug!("the input digests cannot be remembered: {error}");
    }
}
