//! Starts the real `mqrtc` binary on free ports in a temp dir, and runs the
//! real clients (mosquitto, Python paho-mqtt) against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqrtc::http::PortsFile;

pub mod http;
/// Shared with the store's own tests.
#[path = "../../../src/store/pg/testing.rs"]
pub mod postgres;
pub mod sdk;

/// `mqrtc serve` flags that put every listener on a free port.
pub const FREE_PORTS: [&str; 12] = [
    "--mqtt-port",
    "0",
    "--mqtts-port",
    "0",
    "--ws-port",
    "0",
    "--wss-port",
    "0",
    "--http-port",
    "0",
    "--https-port",
    "0",
];

/// Browser tests take this so they run one at a time (2 cores).
pub static BROWSER: Mutex<()> = Mutex::new(());

/// The Paho suite (whose client gives a CONNACK 0.5 s) and the slowloris
/// (thousands of TLS handshakes in a debug build) take this so they never
/// run side by side: the second would starve the first of CPU.
pub static TIMING: Mutex<()> = Mutex::new(());

/// Takes the browser lock after checking that Debian's chromium and the npm
/// driver are installed; returns the lock and the repository root.
pub fn browser_test() -> (std::sync::MutexGuard<'static, ()>, &'static str) {
    let lock = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        Path::new("/usr/bin/chromium").exists()
            && Path::new(&format!("{root}/tests/js/node_modules/playwright-core")).exists(),
        "chromium or playwright-core missing: run ./scripts/install-test-deps.sh"
    );
    (lock, root)
}

pub use postgres::free_port;

/// A running appliance process.
pub struct Appliance {
    pub dir: Arc<tempfile::TempDir>,
    pub ports: PortsFile,
    child: Child,
    stdout: Arc<Mutex<String>>,
    args: Vec<String>,
    command: &'static str,
}

impl Appliance {
    /// Starts `mqrtc serve` with `args` in a fresh temp dir.
    pub fn start(args: &[&str]) -> Appliance {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, args)
    }

    /// Starts `mqrtc serve` with `args` in `dir` (to restart on the same
    /// data). A new data dir started without `--dev` or `--standard-mqtt`
    /// first gets the demo tenant the way an operator makes it
    /// (`mqrtc instance demo`), so the tests have devices to connect.
    pub fn start_in(dir: Arc<tempfile::TempDir>, args: &[&str]) -> Appliance {
        let plain = !args
            .iter()
            .any(|a| *a == "--dev" || *a == "--standard-mqtt");
        if plain && !dir.path().join("mqrtc.sqlite").exists() {
            let o = run(
                env!("CARGO_BIN_EXE_mqrtc"),
                &[
                    "instance",
                    "demo",
                    "--data-dir",
                    dir.path().to_str().expect("utf-8 path"),
                ],
            );
            assert!(o.status.success(), "mqrtc instance demo: {}", text(&o));
        }
        Self::start_bare(dir, args)
    }

    /// Starts `mqrtc serve` with `args` in `dir` as it is.
    pub fn start_bare(dir: Arc<tempfile::TempDir>, args: &[&str]) -> Appliance {
        Self::launch(dir, "serve", args)
    }

    /// Starts `mqrtc controller` (against an external broker) with `args`
    /// in `dir` as it is; `ports.http` is its HTTP port.
    pub fn controller(dir: Arc<tempfile::TempDir>, args: &[&str]) -> Appliance {
        Self::launch(dir, "controller", args)
    }

    fn launch(dir: Arc<tempfile::TempDir>, command: &'static str, args: &[&str]) -> Appliance {
        let ports_file = dir.path().join("ports.json");
        let _ = std::fs::remove_file(&ports_file);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqrtc"));
        cmd.arg(command).arg("--data-dir").arg(dir.path());
        let flags: &[&str] = if command == "serve" {
            &[
                "--mqtt-port",
                "--mqtts-port",
                "--ws-port",
                "--wss-port",
                "--http-port",
                "--https-port",
            ]
        } else {
            &["--http-port"]
        };
        for p in flags {
            if !args.contains(p) {
                cmd.args([*p, "0"]);
            }
        }
        cmd.args(args)
            .env("RUST_LOG", "info,rmqtt=warn,sled=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file(dir.path())));
        let mut child = cmd.spawn().expect("spawn mqrtc");
        let stdout = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let ports = loop {
            if let Ok(text) = std::fs::read(&ports_file) {
                if let Ok(p) = serde_json::from_slice::<PortsFile>(&text) {
                    break p;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "mqrtc exited during start-up ({status}); log:\n{}",
                    log(dir.path())
                );
            }
            assert!(
                Instant::now() < deadline,
                "mqrtc not ready in 60 s; log:\n{}",
                log(dir.path())
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Appliance {
            dir,
            ports,
            child,
            stdout,
            args: args.iter().map(|s| s.to_string()).collect(),
            command,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the process right now (Linux).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The data dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The generated CA certificate clients trust.
    pub fn ca(&self) -> PathBuf {
        self.path().join("certs/ca.pem")
    }

    /// Everything the process printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The appliance's log (stderr) so far.
    pub fn log(&self) -> String {
        log(self.path())
    }

    /// The demo access key from `demo-tenant.txt` in the data dir:
    /// (AccessKeyId, AccessKeySecret).
    pub fn demo_key(&self) -> (String, String) {
        let out = std::fs::read_to_string(self.path().join("demo-tenant.txt"))
            .expect("demo-tenant.txt in the data dir");
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in demo-tenant.txt:\n{out}"))
        };
        (field("AccessKeyId:"), field("AccessKeySecret:"))
    }

    /// SIGTERM, wait for a clean exit, start again on the same data dir.
    pub fn restart(mut self) -> Appliance {
        self.terminate();
        Self::start_in(
            self.dir.clone(),
            &self.args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    /// SIGKILL and start again on the same data dir.
    pub fn kill9_and_restart(mut self) -> Appliance {
        self.kill9();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        match self.command {
            "serve" => Self::start_in(self.dir.clone(), &args),
            c => Self::launch(self.dir.clone(), c, &args),
        }
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// SIGKILL and start again on the same data dir and the same ports, so
    /// connected clients find it again by themselves.
    pub fn kill9_and_restart_same_ports(mut self) -> Appliance {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
        let p = &self.ports;
        let ports = [
            ("--mqtt-port", p.mqtt),
            ("--mqtts-port", p.mqtts),
            ("--ws-port", p.ws),
            ("--wss-port", p.wss),
            ("--http-port", p.http),
            ("--https-port", p.https),
        ];
        let mut args: Vec<String> = self
            .args
            .iter()
            .filter(|a| !ports.iter().any(|(f, _)| f == a))
            .cloned()
            .collect();
        for (f, n) in ports {
            args.push(f.to_string());
            args.push(n.to_string());
        }
        Self::start_in(
            self.dir.clone(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    /// SIGTERM and wait; panics if the exit is not clean.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok);
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "mqrtc exit {status}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("mqrtc.log"))
        .expect("log file")
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("mqrtc.log")).unwrap_or_default()
}

/// Runs a command to completion and returns its output.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install it: see README): {e}"))
}

/// stdout + stderr of an output, for assertions and messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `tests/py/<script>` with python3 and returns its output.
pub fn python(script: &str, args: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let mut all = vec![path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run("python3", &all)
}

/// A background `mosquitto_sub` (or script) whose output lines can be awaited.
pub struct Sub {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
}

impl Sub {
    /// Starts `mosquitto_sub` with `args` plus `-v -d`; waits until it has
    /// subscribed (or returns with whatever it printed if it could not).
    pub fn start(args: &[&str]) -> Sub {
        // stdbuf: mosquitto_sub block-buffers a piped stdout.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"])
            .args(args)
            .args(["-v", "-d"]);
        Sub::spawn(cmd)
    }

    /// Starts a script of tests/py in the background, its lines awaitable.
    pub fn python(script: &str, args: &[&str]) -> Sub {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/py")
            .join(script);
        let mut cmd = Command::new("python3");
        cmd.arg(path).args(args);
        Sub::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Sub {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn (install mosquitto-clients and the Python requirements)");
        let (tx, rx) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Sub { child, rx }
    }

    /// Waits for a line containing `needle`; returns it, or everything seen.
    pub fn wait_for(&self, needle: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        let mut seen = String::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(seen)
    }

    /// Everything printed so far (does not wait).
    pub fn drain(&self) -> String {
        self.rx.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's mosquitto broker on a free port (anonymous, no persistence file),
/// killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_with("", &[])
    }

    /// Starts mosquitto with `extra` lines in its config and `files`
    /// (name, content) in its directory; `{dir}` in `extra` is that directory.
    pub fn start_with(extra: &str, files: &[(&str, &str)]) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("mosquitto file");
        }
        let extra = extra.replace("{dir}", dir.path().to_str().expect("utf-8 path"));
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}"),
        )
        .expect("mosquitto.conf");
        let bin = if Path::new("/usr/sbin/mosquitto").exists() {
            "/usr/sbin/mosquitto"
        } else {
            "mosquitto"
        };
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (scripts/install-test-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
