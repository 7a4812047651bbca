//! The admin REST API: every route refuses a missing or revoked key, the
//! OpenAPI document validates (openapi-spec-validator, a checker nobody
//! here wrote) and lists every route, keys from the CLI work, errors are
//! JSON with proper status codes.

use crate::common::http::request;
use crate::common::{python, run, text, Appliance};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn cli(a: &Appliance, args: &[&str]) -> serde_json::Value {
    let dir = a.path().to_str().unwrap().to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--data-dir", &dir, "--json"]);
    let o = run(env!("CARGO_BIN_EXE_mqrtc"), &all);
    assert!(o.status.success(), "mqrtc {args:?}: {}", text(&o));
    json(&String::from_utf8_lossy(&o.stdout))
}

/// Every (method, path) of the OpenAPI document, path parameters filled in.
fn routes(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        let filled: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in ops.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), format!("/api/v1{filled}")));
        }
    }
    out
}

#[test]
fn every_route_refuses_a_missing_or_revoked_key_and_the_document_validates() {
    let a = Appliance::start(&[]);
    let port = a.ports.http;
    let (status, body) = request(port, "GET", "/api/v1/openapi.json", &[], None);
    assert_eq!(status, 200);
    let doc = json(&body);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let spec = a.path().join("openapi.json");
    std::fs::write(&spec, &body).unwrap();
    let o = python("validate_openapi.py", &[spec.to_str().unwrap()]);
    assert!(o.status.success(), "openapi-spec-validator: {}", text(&o));

    let all = routes(&doc);
    for want in [
        ("GET", "/api/v1/instances"),
        ("POST", "/api/v1/groups"),
        ("DELETE", "/api/v1/connections/x"),
        ("GET", "/api/v1/calls/x/timeline"),
        ("GET", "/api/v1/rtc/channels"),
        ("GET", "/api/v1/tail"),
        ("POST", "/api/v1/api-keys"),
        ("GET", "/api/v1/stats"),
    ] {
        assert!(
            all.iter().any(|(m, p)| m == want.0 && p == want.1),
            "{want:?} not in the document: {all:?}"
        );
    }
    assert!(all.len() >= 30, "{} routes: {all:?}", all.len());

    let key = cli(&a, &["admin", "api-key-create", "ci"]);
    let (id, secret) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    let bearer = format!("Bearer {secret}");
    let (status, body) = request(
        port,
        "GET",
        "/api/v1/instances",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"mqrtc-demo\""), "{body}");
    cli(&a, &["admin", "api-key-revoke", id]);
    for (method, path) in &all {
        if path.ends_with("/openapi.json") {
            continue;
        }
        let body = (method != "GET" && method != "DELETE").then_some("{}");
        for auth in [None, Some(bearer.as_str()), Some("Bearer mqrtc_not_a_key")] {
            let headers: Vec<(&str, &str)> =
                auth.map(|h| ("Authorization", h)).into_iter().collect();
            let (status, answer) = request(port, method, path, &headers, body);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {answer}");
            assert_eq!(json(&answer)["error"], "unauthorized", "{method} {path}");
        }
    }
}

#[test]
fn provisioning_through_the_api_applies_at_once_and_errors_are_json() {
    let a = Appliance::start(&[]);
    let port = a.ports.http;
    let key = cli(&a, &["admin", "api-key-create", "ci"]);
    let bearer = format!("Bearer {}", key["key"].as_str().unwrap());
    let auth = [("Authorization", bearer.as_str())];
    let call =
        |method: &str, path: &str, body: Option<&str>| request(port, method, path, &auth, body);

    assert_eq!(
        call("POST", "/api/v1/instances", Some(r#"{"id":"acme"}"#)).0,
        200
    );
    let (status, body) = call("POST", "/api/v1/instances", Some(r#"{"id":"acme"}"#));
    assert_eq!(
        (status, json(&body)["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (status, body) = call(
        "POST",
        "/api/v1/groups",
        Some(r#"{"id":"nogid","instance":"acme"}"#),
    );
    assert_eq!(
        (status, json(&body)["error"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let (status, body) = call("POST", "/api/v1/groups", Some("not json"));
    assert_eq!(
        (status, json(&body)["error"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let (status, body) = call("GET", "/api/v1/calls?state=sideways", None);
    assert_eq!(status, 400, "{body}");
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .contains("expected live"),
        "{body}"
    );
    assert_eq!(
        call("DELETE", "/api/v1/connections/GID_x@@@nobody", None).0,
        404
    );
    assert_eq!(call("GET", "/api/v1/no-such-route", None).0, 404);

    // A Group ID and a device credential made through the API work at once.
    assert_eq!(
        call(
            "POST",
            "/api/v1/topics",
            Some(r#"{"name":"acme_ev","instance":"acme","role":"event"}"#)
        )
        .0,
        200
    );
    assert_eq!(
        call(
            "POST",
            "/api/v1/groups",
            Some(r#"{"id":"GID_acme","instance":"acme"}"#)
        )
        .0,
        200
    );
    let (status, body) = call(
        "POST",
        "/api/v1/device-credentials",
        Some(r#"{"client_id":"GID_acme@@@u1","instance":"acme"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let cred = json(&body);
    let creds = mqrtc::client::Credentials::DeviceCredential {
        instance: "acme".into(),
        key_id: cred["id"].as_str().unwrap().into(),
        secret: cred["secret"].as_str().unwrap().into(),
    };
    let id = mqrtc::client::ClientId::new("GID_acme", "u1").unwrap();
    let (user, pass) = creds.login(&id).unwrap();
    let mqtt = a.ports.mqtt.to_string();
    let o = run(
        "mosquitto_pub",
        &[
            "-V",
            "5",
            "-h",
            "127.0.0.1",
            "-p",
            &mqtt,
            "-i",
            "GID_acme@@@u1",
            "-u",
            &user,
            "-P",
            &pass,
            "-t",
            "acme_ev/x",
            "-m",
            "hi",
            "-q",
            "1",
        ],
    );
    assert!(
        o.status.success(),
        "mosquitto_pub with the new credential: {}",
        text(&o)
    );
    let (_, body) = call("GET", "/api/v1/connections/GID_acme@@@u1", None);
    let report = json(&body);
    assert!(
        report["broker"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "connected"),
        "{report}"
    );
    // Revoking it ends it.
    let (status, _) = call(
        "DELETE",
        &format!(
            "/api/v1/device-credentials/{}",
            cred["id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(status, 200);
}

#[test]
fn reset_password_ends_sessions_and_the_first_password_is_owner_only() {
    let a = Appliance::start(&[]);
    let file = a.path().join("admin-password.txt");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "admin-password.txt is owner-only");
    }
    let first = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(!a.log().contains(&first), "the password is never logged");
    assert!(
        !a.stdout().contains(&first),
        "the password is never printed"
    );
    let port = a.ports.http;
    let origin = format!("http://127.0.0.1:{port}");
    let login = |pw: &str| {
        let form = format!("name=admin&password={pw}");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read, Write};
        write!(s, "POST /console/login HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let ok = login(&first);
    assert!(ok.starts_with("HTTP/1.0 303"), "{ok}");
    let cookie = ok
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    assert!(
        ok.to_lowercase().contains("httponly") && ok.contains("SameSite=Strict"),
        "{ok}"
    );
    let (status, _) = request(port, "GET", "/api/v1/stats", &[("Cookie", &cookie)], None);
    assert_eq!(status, 200);
    let reset = cli(&a, &["admin", "reset-password"]);
    let fresh = reset["password"].as_str().unwrap();
    let (status, _) = request(port, "GET", "/api/v1/stats", &[("Cookie", &cookie)], None);
    assert_eq!(status, 401, "a reset ends the old sessions");
    assert!(login(&first).starts_with("HTTP/1.0 401"));
    assert!(login(fresh).starts_with("HTTP/1.0 303"));
}
