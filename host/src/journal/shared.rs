//! The journal shared between the tasks of one session, used from async code.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Journal, JournalError};

/// The journal, shared, with every call made on a blocking thread (SQLite does file I/O and may wait
/// on another process's lock).
#[derive(Clone)]
pub struct SharedJournal(Arc<Mutex<Journal>>);

impl SharedJournal {
    pub async fn open(path: &Path) -> Result<SharedJournal, JournalError> {
        let path = path.to_path_buf();
        let journal = tokio::task::spawn_blocking(move || Journal::open(&path))
            .await
            .map_err(|e| JournalError::Failed(format!("the task using it failed: {e}")))??;
        Ok(SharedJournal(Arc::new(Mutex::new(journal))))
    }

    pub fn in_memory() -> Result<SharedJournal, JournalError> {
        Ok(SharedJournal(Arc::new(Mutex::new(
            Journal::open_in_memory()?,
        ))))
    }

    /// Run `work` on the journal, off the async threads.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Journal) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let journal = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let journal = journal
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&journal)
        })
        .await
        .unwrap_or_else(|e| {
            Err(JournalError::Failed(format!(
                "the task using it failed: {e}"
            )))
        })
    }
}
