//! A PostgreSQL server from Debian's packages, in a temp dir, on a free
//! port, as an unprivileged user (PostgreSQL refuses to run as root). For
//! the store's own tests and, through `#[path]`, the integration tests.

#![allow(dead_code)] // shared by two crates, each using a part

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (free when asked; bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The uid and gid the server runs as when the tests run as root (nobody).
const NOBODY: u32 = 65534;

/// A running server; stopped when dropped.
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
    _tls: Option<tempfile::TempDir>,
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
        Self::start_with(&[])
    }

    /// The same with TLS on: `files` is the server's certificate and key
    /// (PEM), copied where the server may read them.
    pub fn start_tls(cert: &Path, key: &Path) -> Postgres {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = vec!["ssl=on".to_string()];
        for (name, from) in [("cert", cert), ("key", key)] {
            let to = dir.path().join(format!("server.{name}"));
            std::fs::copy(from, &to).expect("copy");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            let _ = std::os::unix::fs::chown(&to, Some(NOBODY), Some(NOBODY));
            settings.push(format!("ssl_{name}_file={}", to.display()));
        }
        let _ = std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY));
        let mut pg = Self::start_with(&settings);
        pg._tls = Some(dir);
        pg
    }

    fn start_with(settings: &[String]) -> Postgres {
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
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&[o.stdout.as_slice(), o.stderr.as_slice()].concat())
        );
        let port = free_port();
        let child = command(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
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
            _tls: None,
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

impl Postgres {
    /// A new empty database on this server; its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        match self.url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("URL {}", self.url),
        }
    }
}
