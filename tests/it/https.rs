//! The HTTP service over TLS (the `https` port, issue 11): curl trusting
//! only the appliance's generated CA, idle and plain-HTTP clients that must
//! not hurt anyone else, and a certificate that covers the LAN addresses
//! when bound to all interfaces.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{http, run, text, Appliance};

/// `curl --cacert <ca> https://<host>:<port><path>` connecting to
/// 127.0.0.1 whatever `host` is, so only the name checked differs;
/// returns (HTTP status, body), status 0 if curl failed, and curl's output.
fn curl(a: &Appliance, host: &str, path: &str) -> (u16, String, String) {
    let ca = a.ca();
    let port = a.ports.https;
    let url = format!("https://{host}:{port}{path}");
    let to = format!("{host}:{port}:127.0.0.1:{port}");
    let args = [
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        "--cacert",
        ca.to_str().expect("utf-8 path"),
        "--write-out",
        "\n%{http_code}",
        "--connect-to",
        &to,
        &url,
    ];
    let o = run("curl", &args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    let status = if o.status.success() {
        code.trim().parse().unwrap_or(0)
    } else {
        0
    };
    (status, body.to_string(), text(&o))
}

#[test]
fn healthz_and_console_over_https_with_the_generated_ca() {
    let a = Appliance::start(&[]);
    assert_ne!(a.ports.https, 0, "ports.json names the HTTPS port");
    assert_ne!(a.ports.https, a.ports.http);

    let (status, body, out) = curl(&a, "localhost", "/healthz");
    assert_eq!(status, 200, "curl: {out}\nlog:\n{}", a.log());
    let health: serde_json::Value = serde_json::from_str(&body).expect("healthz JSON");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ports"]["https"], a.ports.https);

    for host in ["127.0.0.1", "[::1]"] {
        let (status, _, out) = curl(&a, host, "/healthz");
        assert_eq!(status, 200, "{host}: {out}");
    }

    let (status, body, out) = curl(&a, "localhost", "/console/login");
    assert_eq!(status, 200, "console login page: {out}");
    assert!(body.contains("<form"), "{body}");

    // Without the CA curl refuses: the certificate is really checked.
    let o = run(
        "curl",
        &[
            "--silent",
            "--max-time",
            "10",
            &format!("https://localhost:{}/healthz", a.ports.https),
        ],
    );
    assert!(!o.status.success(), "untrusted certificate accepted");
}

#[test]
fn idle_and_plain_http_clients_do_not_stall_anyone() {
    let a = Appliance::start(&[]);
    // Connects and never sends a ClientHello.
    let mut idle = TcpStream::connect(("127.0.0.1", a.ports.https)).expect("connect");
    let _idle2 = TcpStream::connect(("127.0.0.1", a.ports.https)).expect("connect");
    let started = Instant::now();
    let (status, _, out) = curl(&a, "localhost", "/healthz");
    assert_eq!(status, 200, "blocked by an idle client: {out}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Plain HTTP to the TLS port: told so and closed; the server goes on.
    let (status, body) = http::request(a.ports.https, "GET", "/healthz", &[], None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("https://"), "{body}");
    let mut junk = TcpStream::connect(("127.0.0.1", a.ports.https)).expect("connect");
    std::io::Write::write_all(&mut junk, b"\x00\x01garbage").expect("write");
    let mut rest = Vec::new();
    junk.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let _ = junk.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no answer to garbage");
    let (status, _, out) = curl(&a, "localhost", "/healthz");
    assert_eq!(status, 200, "{out}");
    // Plain HTTP still works on its own port.
    assert_eq!(
        http::request(a.ports.http, "GET", "/healthz", &[], None).0,
        200
    );

    // The idle client is dropped after the handshake deadline (10 s).
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed too early: {:?}",
        started.elapsed()
    );
}

#[test]
fn all_interfaces_certificate_covers_the_machine_addresses() {
    let a = Appliance::start(&["--all-interfaces", "--public-host", "demo-box.lan"]);
    let mut names: Vec<String> = mqrtc::certs::local_addrs()
        .iter()
        .map(|ip| match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        })
        .collect();
    names.push("demo-box.lan".into());
    for name in &names {
        let (status, _, out) = curl(&a, name, "/healthz");
        assert_eq!(status, 200, "{name}: {out}");
    }
    let (status, _, _) = curl(&a, "198.51.100.9", "/healthz");
    assert_eq!(status, 0, "an address not of this machine is not covered");
    let state = std::fs::read_to_string(a.path().join("certs/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(
        state["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "demo-box.lan"),
        "{state}"
    );
    assert!(
        state["ca_permits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "demo-box.lan"),
        "the CA may sign for the public host: {state}"
    );
    assert!(
        a.log().contains("demo-box.lan"),
        "ready line names the public host:\n{}",
        a.log()
    );
}

/// A console sign-in over HTTPS gets a `Secure` session cookie; over plain
/// HTTP (loopback) the cookie cannot be `Secure` or the browser would drop it.
#[test]
fn the_session_cookie_is_secure_over_https() {
    let a = Appliance::start(&[]);
    let password = std::fs::read_to_string(a.path().join("admin-password.txt")).unwrap();
    let form = format!("name=admin&password={}", password.trim());
    let sign_in = |scheme: &str, port: u16| {
        let ca = a.ca();
        let url = format!("{scheme}://localhost:{port}/console/login");
        let origin = format!("Origin: {scheme}://localhost:{port}");
        let o = run(
            "curl",
            &[
                "--silent",
                "--show-error",
                "--include",
                "--max-time",
                "10",
                "--cacert",
                ca.to_str().unwrap(),
                "-H",
                &origin,
                "--data",
                &form,
                &url,
            ],
        );
        let head = String::from_utf8_lossy(&o.stdout).to_string();
        head.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with("set-cookie: mqrtc_session=")
            })
            .unwrap_or_else(|| panic!("no session cookie over {scheme}: {head}\n{}", text(&o)))
            .to_string()
    };
    let secure = sign_in("https", a.ports.https);
    assert!(secure.contains("; Secure"), "{secure}");
    assert!(
        secure.contains("HttpOnly") && secure.contains("SameSite=Strict"),
        "{secure}"
    );
    let plain = sign_in("http", a.ports.http);
    assert!(!plain.contains("Secure"), "{plain}");
}
