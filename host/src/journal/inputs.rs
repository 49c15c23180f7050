//! What the journal remembers about local input files: the sha256 of each file sent through the
//! cluster's input store, keyed by the file's identity, so a later submission knows a file's digest
//! without reading it again.

use rusqlite::{OptionalExtension, params};

use super::{Journal, JournalError, now_ms};
use crate::types::work::FileIdentity;

impl Journal {
    /// The sha256 (hex) remembered for exactly this file, if any.
    pub fn input_digest(&self, file: &FileIdentity) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT sha256 FROM input_digests WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3
                 AND ctime_ns = ?4 AND inode = ?5 AND dev = ?6",
                params![
                    file.path,
                    file.size as i64,
                    file.mtime_ns,
                    file.ctime_ns,
                    // SQLite integers are signed: the bits are kept.
                    file.inode as i64,
                    file.dev as i64
                ],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Remember `sha256` (hex) for `file`, replacing what was remembered for its path.
    pub fn remember_input_digest(
        &self,
        file: &FileIdentity,
        sha256: &str,
    ) -> Result<(), JournalError> {
        self.conn.execute(
            "INSERT INTO input_digests (path, size, mtime_ns, ctime_ns, inode, dev, sha256, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (path) DO UPDATE SET size = ?2, mtime_ns = ?3, ctime_ns = ?4, inode = ?5,
             dev = ?6, sha256 = ?7, updated_ms = ?8",
            params![
                file.path,
                file.size as i64,
                file.mtime_ns,
                file.ctime_ns,
                file.inode as i64,
                file.dev as i64,
                sha256,
                now_ms()
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_found_only_for_the_same_file() {
        let journal = Journal::open_in_memory().unwrap();
        let file = FileIdentity {
            path: "/data/big.bin".into(),
            size: 2 << 20,
            mtime_ns: 1,
            ctime_ns: 2,
            inode: u64::MAX,
            dev: 7,
        };
        assert_eq!(journal.input_digest(&file).unwrap(), None);
        journal.remember_input_digest(&file, "ab").unwrap();
        assert_eq!(journal.input_digest(&file).unwrap().as_deref(), Some("ab"));
        let changed = FileIdentity {
            ctime_ns: 3,
            ..file.clone()
        };
        assert_eq!(
            journal.input_digest(&changed).unwrap(),
            None,
            "changed since"
        );
        journal.remember_input_digest(&changed, "cd").unwrap();
        assert_eq!(journal.input_digest(&file).unwrap(), None, "replaced");
        assert_eq!(
            journal.input_digest(&changed).unwrap().as_deref(),
            Some("cd")
        );
    }
}
