//! Who runs slurmkit on this machine — uid, name and home directory — found the way OpenSSH finds
//! them: from the passwd entry of the process's uid, with the environment only as a fallback.

use std::path::PathBuf;

/// This process's uid (`/proc/self` is owned by it).
pub fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The passwd fields of this process's uid.
fn passwd_entry() -> Option<Vec<String>> {
    let uid = uid()?.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<String> = line.split(':').map(str::to_string).collect();
        (fields.len() > 5 && fields[2] == uid).then_some(fields)
    })
}

/// The login name: the passwd entry's, else `$USER` or `$LOGNAME`.
pub fn name() -> Option<String> {
    passwd_entry().map(|fields| fields[0].clone()).or_else(|| {
        ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
    })
}

/// The home directory: the passwd entry's (what `~` means to OpenSSH), else `$HOME`.
pub fn home() -> Option<PathBuf> {
    passwd_entry()
        .map(|fields| PathBuf::from(&fields[5]))
        .or_else(dirs::home_dir)
}
