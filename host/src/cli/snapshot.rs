//! Text snapshots for tests: what a user reads (an error's wording, a drawn screen), kept in files so a
//! change shows up as a diff to review.

use std::path::PathBuf;

/// Compare `text` with `<dir>/<name>.txt` (relative to the crate); `UPDATE_SNAPSHOTS=1` writes it
/// instead, for review in the diff.
#[track_caller]
pub fn check(dir: &str, name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a snapshot has a directory"))
            .expect("the snapshot directory can be created");
        std::fs::write(&path, text).expect("the snapshot can be written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text == expected,
        "{} differs (rerun with UPDATE_SNAPSHOTS=1 and review the diff):\n{text}",
        path.display()
    );
}
