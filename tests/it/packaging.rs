//! The Debian package and the systemd unit: the conffile lists every key
//! with its default, `systemd-analyze` rates the unit "OK" and verifies it,
//! the appliance speaks systemd's notify protocol, and the package installs
//! (owners and modes), runs its `ExecStart` as its user, upgrades keeping
//! the data, and removes and purges. systemd is not PID 1 here, so the unit
//! itself is never started: its command line is run as the unit would.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqrtc::config::Config;

use crate::common::{run, text};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/mqrtc.service");
const BUILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/build-deb.sh");

/// The keys of a TOML table, dotted, recursively.
fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let name = format!("{prefix}{k}");
        match v {
            toml::Value::Table(sub) => keys(sub, &format!("{name}."), out),
            _ => out.push(name),
        }
    }
}

#[test]
fn the_conffile_lists_every_key_with_its_default() {
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/mqrtc.toml"))
            .expect("packaging/mqrtc.toml");
    // Uncomment the `# key = value` lines: that is the default config.
    let uncommented: String = file
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                rest
            }
            _ if l.starts_with('#') => "",
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let as_file: Config = toml::from_str(&uncommented).expect("the conffile parses uncommented");
    assert_eq!(
        as_file,
        Config::default(),
        "a default in packaging/mqrtc.toml differs (scripts/gen-conffile.py)"
    );
    let (mut listed, mut all) = (Vec::new(), Vec::new());
    keys(
        &toml::from_str(&uncommented).expect("TOML"),
        "",
        &mut listed,
    );
    keys(
        &toml::from_str(&Config::default().to_toml()).expect("TOML"),
        "",
        &mut all,
    );
    listed.sort();
    all.sort();
    assert_eq!(
        listed, all,
        "packaging/mqrtc.toml does not list every key (scripts/gen-conffile.py)"
    );
    // The keys unset by default are described, not left out.
    for unset in ["acl_file", "cert", "key"] {
        assert!(
            file.contains(&format!("Example: {unset} = ")),
            "{unset} not described"
        );
    }
}

#[test]
fn systemd_rates_the_unit_ok() {
    let o = run("systemd-analyze", &["security", "--offline=true", UNIT]);
    let out = text(&o);
    let level: f64 = out
        .lines()
        .find_map(|l| l.split("Overall exposure level for mqrtc.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(level <= 2.0, "exposure {level} (goal 2.0 or lower):\n{out}");
}

/// Starts the binary with a notify socket and a 1 s watchdog, as systemd would.
#[test]
fn the_appliance_tells_systemd_when_it_is_ready_alive_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // systemd sets WATCHDOG_PID to the service's pid: the shell's, which exec keeps.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "export WATCHDOG_PID=$$; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_mqrtc"),
        ])
        .args(["serve", "--dev", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(crate::common::FREE_PORTS)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mqrtc");
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| {
        let mut buf = [0u8; 512];
        loop {
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {what} (saw {seen:?}): {e}"));
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.push(msg.clone());
            if msg.lines().any(|l| l == what) {
                return;
            }
        }
    };
    wait_for("READY=1");
    assert!(
        dir.path().join("data/ports.json").exists(),
        "READY=1 before ports.json"
    );
    wait_for("WATCHDOG=1");
    wait_for("WATCHDOG=1");
    let pid = child.id().to_string();
    assert!(run("kill", &["-TERM", &pid]).status.success());
    wait_for("STOPPING=1");
    assert!(child.wait().expect("wait").success());
}

fn is_root() -> bool {
    run("id", &["-u"]).stdout.starts_with(b"0")
}

fn mode_owner(p: &str) -> (u32, String, String) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let name = |cmd: &str, id: u32| {
        text(&run("getent", &[cmd, &id.to_string()]))
            .split(':')
            .next()
            .unwrap_or("")
            .to_string()
    };
    (
        m.permissions().mode() & 0o7777,
        name("passwd", m.uid()),
        name("group", m.gid()),
    )
}

fn build_deb(out: &Path, version: &str) -> String {
    let o = Command::new(BUILD)
        .arg(env!("CARGO_BIN_EXE_mqrtc"))
        .arg(out)
        .env("MQRTC_DEB_VERSION", version)
        .output()
        .expect("packaging/build-deb.sh");
    assert!(o.status.success(), "build-deb.sh: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn dpkg(args: &[&str]) {
    let o = run("dpkg", args);
    assert!(o.status.success(), "dpkg {args:?}: {}", text(&o));
}

/// Runs the unit's ExecStart as the unit's user (free ports added), waits
/// for it, asks `mqrtc healthcheck`, stops it with SIGTERM.
fn run_as_the_unit_would() {
    let unit =
        std::fs::read_to_string("/lib/systemd/system/mqrtc.service").expect("installed unit");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let user = unit
        .lines()
        .find_map(|l| l.strip_prefix("User="))
        .expect("User=");
    let _ = std::fs::remove_file("/var/lib/mqrtc/ports.json");
    // setpriv execs (runuser would fork and stand between the signal and it).
    let (uid, gid) = (format!("--reuid={user}"), format!("--regid={user}"));
    let mut args: Vec<&str> = vec![&uid, &gid, "--init-groups", "--"];
    args.extend(exec.split_whitespace());
    args.extend(crate::common::FREE_PORTS);
    let log = std::fs::File::create(std::env::temp_dir().join("mqrtc-deb-test.log")).expect("log");
    let mut child = Command::new("setpriv")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("setpriv");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new("/var/lib/mqrtc/ports.json").exists() {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "the unit's command exited ({s}): {}",
                std::fs::read_to_string(std::env::temp_dir().join("mqrtc-deb-test.log"))
                    .unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "not ready in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = run(
        "runuser",
        &[
            "-u",
            user,
            "--",
            "/usr/bin/mqrtc",
            "healthcheck",
            "--data-dir",
            "/var/lib/mqrtc",
        ],
    );
    assert!(
        o.status.success(),
        "mqrtc healthcheck as {user}: {}",
        text(&o)
    );
    assert!(run("kill", &["-TERM", &child.id().to_string()])
        .status
        .success());
    assert!(child.wait().expect("wait").success(), "exit after SIGTERM");
    assert_eq!(mode_owner("/var/lib/mqrtc/mqrtc.sqlite").1, "mqrtc");
    assert_eq!(
        mode_owner("/var/lib/mqrtc/master.key"),
        (0o600, "mqrtc".into(), "mqrtc".into())
    );
}

#[test]
fn the_deb_installs_runs_as_its_user_upgrades_removes_and_purges() {
    if !is_root() || run("sh", &["-c", "command -v dpkg-deb"]).stdout.is_empty() {
        eprintln!("skipped: needs root and dpkg (CI runs as root on Debian)");
        return;
    }
    if run("dpkg", &["-s", "mqrtc"]).status.success() {
        eprintln!(
            "skipped: an mqrtc package is installed on this machine; this test would purge it"
        );
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let first = build_deb(&out.path().join("1"), "0.1.0~test1");
    dpkg(&["-i", &first]);

    assert_eq!(
        mode_owner("/usr/bin/mqrtc"),
        (0o755, "root".into(), "root".into())
    );
    assert_eq!(
        mode_owner("/etc/mqrtc/mqrtc.toml"),
        (0o640, "root".into(), "mqrtc".into())
    );
    assert_eq!(
        mode_owner("/var/lib/mqrtc"),
        (0o700, "mqrtc".into(), "mqrtc".into())
    );
    let passwd = text(&run("getent", &["passwd", "mqrtc"]));
    assert!(passwd.trim_end().ends_with("/usr/sbin/nologin"), "{passwd}");
    let v = run(
        "systemd-analyze",
        &["verify", "/lib/systemd/system/mqrtc.service"],
    );
    assert!(
        v.status.success() && text(&v).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&v)
    );

    run_as_the_unit_would();
    let db = std::fs::metadata("/var/lib/mqrtc/mqrtc.sqlite")
        .expect("database")
        .ino();

    // An upgrade keeps the data (the same database file) and the new binary starts on it.
    let second = build_deb(&out.path().join("2"), "0.1.0~test2");
    dpkg(&["-i", &second]);
    assert_eq!(
        std::fs::metadata("/var/lib/mqrtc/mqrtc.sqlite")
            .expect("database kept")
            .ino(),
        db
    );
    run_as_the_unit_would();

    dpkg(&["-r", "mqrtc"]);
    assert!(!Path::new("/usr/bin/mqrtc").exists());
    assert!(
        Path::new("/var/lib/mqrtc/mqrtc.sqlite").exists(),
        "remove keeps the data"
    );
    assert!(
        Path::new("/etc/mqrtc/mqrtc.toml").exists(),
        "remove keeps the conffile"
    );
    dpkg(&["-P", "mqrtc"]);
    assert!(
        !Path::new("/var/lib/mqrtc").exists(),
        "purge deletes the data"
    );
    assert!(
        !Path::new("/etc/mqrtc").exists(),
        "purge deletes the conffile"
    );
    assert!(
        !run("getent", &["passwd", "mqrtc"]).status.success(),
        "purge deletes the user"
    );
}
