//! Files only the appliance's own user may read: the data dir and its
//! subdirectories are created 0700, key files and secrets 0600, and a key
//! file that others can read is refused (the way OpenSSH refuses an
//! unprotected private key) rather than used.

use std::io::Write;
use std::path::Path;

/// A key file whose permissions let other users read it.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to use {path}: it is readable by {who} (mode {mode:04o}); a key file must be readable \
     by its owner only. Fix it with `chmod 600 {path}` (and consider the key compromised if others \
     could log in to this machine)"
)]
pub struct InsecureKey {
    /// The file.
    pub path: String,
    /// Its permission bits.
    pub mode: u32,
    /// "group and others", "others" or "the group".
    pub who: &'static str,
}

/// Who may read a key file besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    /// Owner only: every file the appliance made itself.
    Owner,
    /// Owner and group: a key the operator supplied (`tls.key`), where a
    /// group such as Debian's `ssl-cert` is the usual way to share it.
    OwnerAndGroup,
}

/// Creates `dir` (and missing parents) and makes a directory it created
/// mode 0700. An existing directory keeps its mode; a warning is logged if
/// others can enter it.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        warn_if_open(dir);
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)
}

/// Writes `bytes` to `path`, readable by its owner only (0600), replacing
/// the file if it exists (its mode too).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, 0o600)
}

/// Replaces `path` with `bytes` at once (a reader sees the old file or the
/// new one, never half of it): written to a temporary file in the same
/// directory with `mode`, flushed, then renamed over it.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} is not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    owner_only(&mut opts);
    let mut f = opts.open(&tmp)?;
    set_mode(&tmp, mode)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to a new file at `path` (0600); fails if it exists.
pub fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    owner_only(&mut opts);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads a key file after checking that only `readers` can read it.
pub fn read_key(path: &Path, readers: Readers) -> Result<String, KeyError> {
    check(path, readers)?;
    std::fs::read_to_string(path).map_err(|error| KeyError::Io {
        path: path.display().to_string(),
        error,
    })
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Others can read it.
    #[error(transparent)]
    Insecure(#[from] InsecureKey),
    /// It could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What reading it said.
        error: std::io::Error,
    },
}

/// Refuses a key file that more than `readers` can read. Missing files
/// pass (the caller's read reports them).
pub fn check(path: &Path, readers: Readers) -> Result<(), InsecureKey> {
    let Some(mode) = mode_of(path) else {
        return Ok(());
    };
    let who = match (mode & 0o044, readers) {
        (0o044, Readers::Owner) => "group and others",
        (0o004, _) | (0o044, Readers::OwnerAndGroup) => "others",
        (0o040, Readers::Owner) => "the group",
        _ => return Ok(()),
    };
    Err(InsecureKey {
        path: path.display().to_string(),
        mode: mode & 0o7777,
        who,
    })
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn mode_of(_: &Path) -> Option<u32> {
    None
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

fn owner_only(opts: &mut std::fs::OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(opts, 0o600);
    #[cfg(not(unix))]
    let _ = opts;
}

fn warn_if_open(dir: &Path) {
    if let Some(mode) = mode_of(dir).filter(|m| m & 0o007 != 0) {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{:04o}", mode & 0o7777),
            "other users can enter the data dir; `chmod 700` it (keys inside are checked one by one)"
        );
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_dirs_are_0700_and_existing_ones_are_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        create_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        set_mode(&d, 0o755).unwrap();
        create_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o755);
    }

    #[test]
    fn written_files_are_0600_even_when_they_existed_with_another_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("k");
        std::fs::write(&p, "old").unwrap();
        set_mode(&p, 0o644).unwrap();
        write(&p, b"new").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert!(create_new(&p, b"x").is_err(), "create_new never replaces");
        let q = t.path().join("q");
        create_new(&q, b"x").unwrap();
        assert_eq!(mode(&q), 0o600);
    }

    #[test]
    fn keys_readable_by_others_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("k");
        std::fs::write(&p, "secret").unwrap();
        for (m, owner_ok, group_ok) in [
            (0o600, true, true),
            (0o400, true, true),
            (0o640, false, true),
            (0o604, false, false),
            (0o644, false, false),
            (0o620, true, true),
        ] {
            set_mode(&p, m).unwrap();
            assert_eq!(check(&p, Readers::Owner).is_ok(), owner_ok, "{m:o} owner");
            assert_eq!(
                check(&p, Readers::OwnerAndGroup).is_ok(),
                group_ok,
                "{m:o} group"
            );
        }
        set_mode(&p, 0o644).unwrap();
        let e = read_key(&p, Readers::Owner).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("0644"), "{e}");
        assert!(check(&t.path().join("missing"), Readers::Owner).is_ok());
    }
}
