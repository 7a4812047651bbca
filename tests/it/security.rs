//! Secure defaults: owner-only files, refusal of key files others can read,
//! no demo tenant without `--dev`, no secret on standard output, and
//! `--dev` kept to loopback unless asked twice.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{text, Appliance};

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn chmod(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// `mqrtc serve` on free ports that is expected to refuse to start: its
/// exit status and everything it said.
fn serve_refused(data_dir: &Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqrtc"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--mqtt-port", "0", "--mqtts-port", "0", "--ws-port", "0"])
        .args(["--wss-port", "0", "--http-port", "0", "--https-port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mqrtc");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline || data_dir.join("ports.json").exists() {
            let _ = child.kill();
            panic!("mqrtc serve {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let said = text(&out);
    (out.status, said)
}

#[cfg(unix)]
#[test]
fn the_data_dir_and_every_key_file_are_owner_only() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqrtc"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--mqtt-port", "0", "--mqtts-port", "0", "--ws-port", "0"])
        .args(["--wss-port", "0", "--http-port", "0", "--https-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mqrtc");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !data.join("ports.json").exists() {
        assert!(child.try_wait().unwrap().is_none(), "mqrtc exited");
        assert!(Instant::now() < deadline, "not ready in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(mode(&data), 0o700, "the data dir");
    assert_eq!(mode(&data.join("certs")), 0o700, "certs/");
    for f in [
        "master.key",
        "rtc-app.key",
        "certs/ca.key",
        "certs/server.key",
        "admin-password.txt",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused_with_how_to_fix_it() {
    let mut a = Appliance::start(&[]);
    a.terminate();
    for f in [
        "master.key",
        "rtc-app.key",
        "certs/ca.key",
        "certs/server.key",
    ] {
        let p = a.path().join(f);
        for m in [0o644, 0o640, 0o604] {
            chmod(&p, m);
            let (status, said) = serve_refused(a.path(), &[]);
            assert!(!status.success(), "{f} {m:o}");
            assert!(
                said.contains(&p.display().to_string()) && said.contains("chmod 600"),
                "{f} {m:o}: the refusal names the file and the fix:\n{said}"
            );
        }
        chmod(&p, 0o600);
    }
    // Fixed as told, it starts again.
    drop(Appliance::start_in(a.dir.clone(), &[]));
}

#[test]
fn without_dev_there_is_no_demo_tenant_and_the_first_start_says_what_to_do() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let a = Appliance::start_bare(dir, &[]);
    let out = a.stdout();
    assert!(
        out.contains("No tenant is provisioned yet")
            && out.contains("admin-password.txt")
            && out.contains("mqrtc instance create"),
        "{out}"
    );
    assert!(!a.path().join("demo-tenant.txt").exists());
    let list = crate::common::run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &["instance", "list", "--data-dir", a.path().to_str().unwrap()],
    );
    assert!(
        !text(&list).contains("demo"),
        "no instance: {}",
        text(&list)
    );
    let password = std::fs::read_to_string(a.path().join("admin-password.txt")).unwrap();
    assert!(!out.contains(password.trim()), "no secret on stdout");
    // A demo device is refused: its Group ID is not provisioned.
    let o = crate::common::run(
        "mosquitto_pub",
        &[
            "-p",
            &a.ports.mqtt.to_string(),
            "-i",
            "GID_demo@@@alice",
            "-t",
            "rtc_event/x",
            "-m",
            "hi",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn the_dev_tenant_key_is_written_to_an_owner_only_file_not_printed() {
    let a = Appliance::start(&["--dev"]);
    let file = a.path().join("demo-tenant.txt");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    let (_, secret) = a.demo_key();
    let out = a.stdout();
    assert!(out.contains(&file.display().to_string()), "{out}");
    assert!(!out.contains(&secret), "the secret is not printed: {out}");
    assert!(!a.log().contains(&secret), "nor logged");
}

#[test]
fn dev_on_a_network_address_needs_a_second_flag_and_is_warned_about() {
    let t = tempfile::tempdir().unwrap();
    let (status, said) = serve_refused(t.path(), &["--dev", "--bind", "0.0.0.0"]);
    assert!(!status.success());
    assert!(said.contains("--dev-on-network"), "{said}");

    let a = Appliance::start(&["--dev", "--dev-on-network", "--bind", "0.0.0.0"]);
    let log = a.log();
    assert!(log.contains("--dev on a network address"), "{log}");
    assert!(log.contains("travel in clear"), "{log}");
    // Every start, not only the first.
    let a = a.restart();
    assert_eq!(a.log().matches("--dev on a network address").count(), 2);

    // Loopback: neither warning.
    let b = Appliance::start(&["--dev"]);
    assert!(!b.log().contains("travel in clear"), "{}", b.log());
}

/// The server certificate a TLS client that trusts `ca` is shown on `port`
/// (the handshake fails, and this panics, if it does not verify).
fn presented(port: u16, ca: &Path) -> Vec<u8> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("ca.pem"))
        .expect("a CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("a name");
    let mut tls = rustls::ClientConnection::new(Arc::new(cfg), name).expect("client");
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    while tls.is_handshaking() {
        tls.complete_io(&mut sock)
            .unwrap_or_else(|e| panic!("TLS handshake on port {port}: {e}"));
    }
    tls.peer_certificates().expect("a certificate")[0].to_vec()
}

#[test]
fn certs_rotate_is_picked_up_by_every_tls_listener_without_dropping_clients() {
    use crate::common::{run, Sub};
    let a = Appliance::start(&["--dev"]);
    let ca = a.ca();
    let tls_ports = [a.ports.mqtts, a.ports.wss, a.ports.https];
    let before: Vec<Vec<u8>> = tls_ports.iter().map(|p| presented(*p, &ca)).collect();
    // A device connected over TLS before the rotation.
    let (port, cafile) = (a.ports.mqtts.to_string(), ca.to_str().unwrap().to_string());
    let sub = Sub::start(&[
        "-h",
        "localhost",
        "-p",
        &port,
        "--cafile",
        &cafile,
        "-i",
        "GID_web@@@rot",
        "-c",
        "-q",
        "1",
        "-t",
        "rtc_event/p2p/GID_web@@@rot",
    ]);
    sub.wait_for("SUBACK", Duration::from_secs(10))
        .expect("subscribed over TLS");

    let data_dir = a.path().to_str().unwrap().to_string();
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &["certs", "rotate", "--data-dir", &data_dir],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("same CA"), "{}", text(&o));

    // Every TLS listener presents the new certificate (within seconds; the
    // files are looked at once a second), verified with the same ca.pem.
    for (p, old) in tls_ports.iter().zip(&before) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while presented(*p, &ca) == *old {
            assert!(
                Instant::now() < deadline,
                "port {p} still shows the old certificate"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The device connected before is still there: a message sent over a
    // new TLS connection reaches it.
    let o = run(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &cafile,
            "-i",
            "GID_demo@@@rot-pub",
            "-q",
            "1",
            "-t",
            "rtc_event/p2p/GID_web@@@rot",
            "-m",
            "after-rotation",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    sub.wait_for("after-rotation", Duration::from_secs(10))
        .expect("the connection made before the rotation still receives");
    let shown = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &["certs", "show", "--data-dir", &data_dir],
    );
    assert!(
        text(&shown).contains("the CA may sign for: 127.0.0.0/8"),
        "{}",
        text(&shown)
    );
}
