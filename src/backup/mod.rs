//! `mqrtc backup` and `mqrtc restore`. A backup is a gzipped tar of the
//! data directory taken while the appliance runs: the database as a
//! consistent snapshot (`VACUUM INTO`, a reader that never blocks the
//! appliance), the session store and the certificates as they are on disk
//! (what a `kill -9` at that moment would leave, which the appliance
//! recovers from), and a manifest. Keys and other secrets (`*.key`, the
//! admin password and demo tenant files) go in only when asked, and then
//! the whole file is sealed with a passphrase (`seal`).

mod seal;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Format of the manifest.
const FORMAT: u32 = 1;
const DB: &str = "mqrtc.sqlite";
const MANIFEST: &str = "manifest.json";

/// What is in a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format (1).
    pub format: u32,
    /// The mqrtc that wrote it.
    pub made_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The database's schema version.
    pub schema: u32,
    /// Whether keys and secrets are in it (then it is sealed).
    pub keys: bool,
    /// Every file, relative to the data directory.
    pub files: Vec<String>,
}

/// Whether a data-directory file is a key or a secret.
fn is_secret(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".key") || name == "admin-password.txt" || name == "demo-tenant.txt"
}

/// Files a backup leaves out: the live database (its snapshot goes in),
/// the running appliance's ports, temporary files.
fn is_skipped(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let top = rel.parent() == Some(Path::new(""));
    (top && (name.starts_with(DB) || name == crate::app::PORTS_FILE)) || name.starts_with('.')
}

/// Every file under `dir`, relative to it, sorted.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let path = rel.join(e.file_name());
            match e.file_type()? {
                t if t.is_dir() => todo.push(path),
                t if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The passphrase from `file`, or from `MQRTC_BACKUP_PASSPHRASE`.
pub fn passphrase(file: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let p = text.trim_end_matches(['\r', '\n']);
        if p.len() < 8 {
            bail!(
                "the passphrase in {} is shorter than 8 characters",
                f.display()
            );
        }
        return Ok(Some(p.as_bytes().to_vec()));
    }
    Ok(std::env::var("MQRTC_BACKUP_PASSPHRASE")
        .ok()
        .map(String::into_bytes))
}

/// Writes a backup of `data_dir` to `to` (mode 0600); with `keys` (a
/// passphrase) the keys go in and the file is sealed.
pub fn backup(data_dir: &Path, to: &Path, keys: Option<&[u8]>) -> anyhow::Result<String> {
    let db = data_dir.join(DB);
    if !db.is_file() {
        bail!(
            "{} has no {DB}: not an mqrtc data directory",
            data_dir.display()
        );
    }
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let snapshot = tmp.path().join(DB);
    let c = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", db.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    c.execute("VACUUM INTO ?1", [snapshot.to_string_lossy()])
        .context("taking the database snapshot")?;
    let schema: u32 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    drop(c);

    let mut files = vec![DB.to_string()];
    let mut others = Vec::new();
    for rel in walk(data_dir).with_context(|| format!("reading {}", data_dir.display()))? {
        if is_skipped(&rel) || (is_secret(&rel) && keys.is_none()) {
            continue;
        }
        files.push(rel.to_string_lossy().into_owned());
        others.push(rel);
    }
    let manifest = Manifest {
        format: FORMAT,
        made_by: format!("mqrtc {}", env!("CARGO_PKG_VERSION")),
        created_at: crate::controller::now_ms(),
        schema,
        keys: keys.is_some(),
        files,
    };
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let add = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_mtime((manifest.created_at / 1000) as u64);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes)
    };
    add(&mut tar, MANIFEST, &serde_json::to_vec_pretty(&manifest)?)?;
    add(&mut tar, DB, &std::fs::read(&snapshot)?)?;
    let mut count = 2;
    for rel in &others {
        // The session store changes under us: a file gone meanwhile is skipped.
        match std::fs::read(data_dir.join(rel)) {
            Ok(bytes) => add(&mut tar, &rel.to_string_lossy(), &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", rel.display())),
        }
        count += 1;
    }
    let archive = tar.into_inner()?.finish()?;
    let out = match keys {
        Some(p) => seal::seal(&archive, p).map_err(anyhow::Error::msg)?,
        None => archive,
    };
    crate::private::write(to, &out).with_context(|| format!("writing {}", to.display()))?;
    Ok(format!(
        "backup of {} written to {}: {count} files, {} bytes, schema {schema}, {}",
        data_dir.display(),
        to.display(),
        out.len(),
        if keys.is_some() {
            "keys included, sealed with the passphrase"
        } else {
            "no keys (restore needs the original master.key)"
        }
    ))
}

/// Restores the backup `from` into `data_dir`, which must be new or empty.
pub fn restore(from: &Path, data_dir: &Path, passphrase: Option<&[u8]>) -> anyhow::Result<String> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let archive = if seal::is_sealed(&bytes) {
        let p = passphrase.context(
            "this backup is sealed (it holds keys): give its passphrase with --passphrase-file or MQRTC_BACKUP_PASSPHRASE",
        )?;
        seal::open(&bytes, p).map_err(anyhow::Error::msg)?
    } else {
        bytes
    };
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        bail!(
            "{} is not empty: restore into a new directory",
            data_dir.display()
        );
    }
    crate::private::create_dir(data_dir)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]));
    let mut manifest: Option<Manifest> = None;
    let mut count = 0;
    for entry in tar.entries().context("not an mqrtc backup")? {
        let mut entry = entry.context("damaged backup")?;
        if entry.path()?.as_ref() == Path::new(MANIFEST) {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            manifest = Some(serde_json::from_str(&text).context("damaged manifest")?);
            continue;
        }
        // unpack_in refuses paths that leave the directory.
        if !entry.unpack_in(data_dir)? {
            bail!(
                "refused a path outside the data directory: {}",
                entry.path()?.display()
            );
        }
        count += 1;
    }
    let m = manifest.context("not an mqrtc backup (no manifest)")?;
    if m.format != FORMAT {
        bail!("backup format {} is not known to this mqrtc", m.format);
    }
    private_modes(data_dir)?;
    let c =
        rusqlite::Connection::open(data_dir.join(DB)).context("opening the restored database")?;
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ok != "ok" {
        bail!("the restored database fails its integrity check: {ok}");
    }
    let keys = if m.keys {
        "keys restored".to_string()
    } else {
        format!("no keys in this backup: copy master.key from the original data directory into {} before starting", data_dir.display())
    };
    Ok(format!(
        "restored {count} files into {} (backup made by {} at {}, schema {}); {keys}",
        data_dir.display(),
        m.made_by,
        crate::http::when(m.created_at),
        m.schema
    ))
}

/// Directories 0700 and files 0600, as the appliance keeps its data.
fn private_modes(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for rel in walk(dir)? {
        std::fs::set_permissions(dir.join(&rel), std::fs::Permissions::from_mode(0o600))?;
        let mut parent = rel.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(0o700))?;
            parent = p.parent();
        }
    }
    Ok(())
}
