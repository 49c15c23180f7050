//! What the journal remembers about each cluster: its remote home directory, and its MaxArraySize.

use rusqlite::{OptionalExtension, params};

use super::{Journal, JournalError, now_ms};

impl Journal {
    /// The remote home directory last seen on `cluster`.
    pub fn remote_home(&self, cluster: &str) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT home FROM clusters WHERE key = ?1",
                params![cluster],
                |row| row.get(0),
            )
            .optional()?
            .flatten())
    }

    pub fn set_remote_home(&self, cluster: &str, home: &str) -> Result<(), JournalError> {
        self.conn.execute(
            "INSERT INTO clusters (key, home, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET home = ?2, updated_ms = ?3",
            params![cluster, home, now_ms()],
        )?;
        Ok(())
    }

    /// The cluster's MaxArraySize as read within the last `max_age_ms`: `Some(None)` when the cluster
    /// did not say, `None` when it was not read recently enough.
    pub fn max_array_size(
        &self,
        cluster: &str,
        max_age_ms: i64,
    ) -> Result<Option<Option<u64>>, JournalError> {
        let row: Option<(Option<i64>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT max_array_size, max_array_size_ms FROM clusters WHERE key = ?1",
                params![cluster],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((size, Some(read_ms))) if now_ms() - read_ms <= max_age_ms => {
                Some(size.and_then(|s| u64::try_from(s).ok()))
            }
            _ => None,
        })
    }

    pub fn set_max_array_size(&self, cluster: &str, size: Option<u64>) -> Result<(), JournalError> {
        let size = size.and_then(|s| i64::try_from(s).ok());
        self.conn.execute(
            "INSERT INTO clusters (key, updated_ms, max_array_size, max_array_size_ms) VALUES (?1, ?2, ?3, ?2)
             ON CONFLICT (key) DO UPDATE SET max_array_size = ?3, max_array_size_ms = ?2, updated_ms = ?2",
            params![cluster, now_ms(), size],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_array_size_is_remembered_for_a_while_and_with_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
        assert_eq!(
            journal.max_array_size("c", 1000).unwrap(),
            None,
            "never read"
        );
        journal.set_max_array_size("c", Some(1001)).unwrap();
        assert_eq!(journal.max_array_size("c", 1000).unwrap(), Some(Some(1001)));
        assert_eq!(journal.max_array_size("c", -1).unwrap(), None, "too old");
        journal.set_remote_home("c", "/home/u").unwrap();
        journal.set_max_array_size("c", None).unwrap();
        assert_eq!(
            journal.max_array_size("c", 1000).unwrap(),
            Some(None),
            "read, not said"
        );
        assert_eq!(
            journal.remote_home("c").unwrap().as_deref(),
            Some("/home/u")
        );
    }
}
