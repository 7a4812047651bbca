//! A PostgreSQL server from Debian's packages, in a temp dir, on a free
//! port, as an unprivileged user (PostgreSQL refuses to run as root).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The uid and gid the server runs as when the tests run as root (nobody).
const NOBODY: u32 = 65534;

/// A running server; stopped when dropped.
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .filter(|d| d.join("initdb").exists())
        .expect("PostgreSQL (scripts/install-test-deps.sh installs it)")
}

/// `program` as the unprivileged user when we are root.
fn command(program: PathBuf) -> Command {
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// initdb and start; returns once it accepts connections.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let _ = std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY));
        let data = dir.path().join("data");
        let o = command(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(o.status.success(), "initdb: {}", crate::common::text(&o));
        let port = crate::common::free_port();
        let child = command(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .arg("-k")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("postgres.log")).expect("log"),
            ))
            .spawn()
            .expect("postgres");
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&url, postgres::NoTls).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Postgres {
            url,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: a fast shutdown (clients are disconnected).
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
