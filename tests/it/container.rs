//! The container image: built from Debian packages by
//! `packaging/build-image.sh` (debootstrap + umoci, no registry), then
//! started from its own configuration with runc (as Docker or Podman would,
//! on the host's network, a host directory as its volume): it runs as
//! user 10001 with `serve --all-interfaces`, and its healthcheck command
//! passes inside the container. Needs root, debootstrap, umoci, runc
//! (the README's install step) and the Debian mirror.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{run, text};

const BUILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/build-image.sh");

fn have(tool: &str) -> bool {
    run("sh", &["-c", &format!("command -v {tool}")])
        .status
        .success()
}

fn ok(o: std::process::Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn the_image_runs_as_its_user_and_its_healthcheck_passes() {
    let missing: Vec<&str> = ["debootstrap", "umoci", "runc"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !run("id", &["-u"]).stdout.starts_with(b"0") || !missing.is_empty() {
        eprintln!("skipped: needs root and debootstrap, umoci, runc (missing: {missing:?}); scripts/install-test-deps.sh installs them");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("image");
    let image = ok(
        Command::new(BUILD)
            .arg(env!("CARGO_BIN_EXE_mqrtc"))
            .arg(&out)
            .output()
            .expect("packaging/build-image.sh"),
        "build-image.sh",
    );
    let image = image.lines().last().expect("image reference").to_string();

    // The image's own configuration, as `docker inspect` would show it.
    let bundle = work.path().join("bundle");
    ok(
        run(
            "umoci",
            &["unpack", "--image", &image, bundle.to_str().expect("utf-8")],
        ),
        "umoci unpack",
    );
    let spec_path = bundle.join("config.json");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).expect("config.json"))
            .expect("JSON");
    assert_eq!(spec["process"]["user"]["uid"], 10001, "{}", spec["process"]);
    let args: Vec<&str> = spec["process"]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["/usr/bin/mqrtc", "serve", "--all-interfaces"]);
    let layout = image.split(':').next().expect("layout");
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{layout}/index.json")).expect("index"),
    )
    .expect("JSON");
    let blob = |d: &Value| -> Value {
        let d = d.as_str().expect("digest").replace(':', "/");
        serde_json::from_str(&std::fs::read_to_string(format!("{layout}/blobs/{d}")).expect("blob"))
            .expect("JSON")
    };
    let config = blob(&blob(&index["manifests"][0]["digest"])["config"]["digest"]);
    let c = &config["config"];
    assert_eq!(
        c["Healthcheck"]["Test"],
        json!(["CMD", "/usr/bin/mqrtc", "healthcheck"]),
        "{c}"
    );
    assert!(c["Volumes"]["/var/lib/mqrtc"].is_object(), "{c}");
    for port in [
        "1883/tcp", "8883/tcp", "8083/tcp", "8084/tcp", "8080/tcp", "8443/tcp",
    ] {
        assert!(
            c["ExposedPorts"][port].is_object(),
            "{port} not exposed: {c}"
        );
    }

    // Run it: host network, a host directory as the volume, free ports.
    let volume = work.path().join("volume");
    std::fs::create_dir(&volume).expect("volume");
    ok(
        run("chown", &["10001:10001", volume.to_str().expect("utf-8")]),
        "chown",
    );
    ok(
        run("chmod", &["0700", volume.to_str().expect("utf-8")]),
        "chmod",
    );
    spec["process"]["terminal"] = json!(false);
    let argv = spec["process"]["args"].as_array_mut().expect("args");
    argv.extend(crate::common::FREE_PORTS.iter().map(|a| json!(a)));
    spec["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "network");
    spec["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/var/lib/mqrtc", "type": "bind",
        "source": volume, "options": ["rbind", "rw"]
    }));
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec).expect("JSON"))
        .expect("config.json");
    let id = format!("mqrtc-test-{}", std::process::id());
    let _gone = Removed(id.clone());
    let log = std::fs::File::create(work.path().join("container.log")).expect("log");
    let mut child = Command::new("runc")
        .args(["run", "--bundle", bundle.to_str().expect("utf-8"), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("runc");
    let log = || std::fs::read_to_string(work.path().join("container.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !volume.join("ports.json").exists() {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the container exited ({s}):\n{}", log());
        }
        assert!(Instant::now() < deadline, "not ready in 60 s:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let exec = |cmd: &[&str]| {
        let mut a = vec!["exec", id.as_str()];
        a.extend_from_slice(cmd);
        run("runc", &a)
    };
    let health = exec(&["/usr/bin/mqrtc", "healthcheck"]);
    assert!(
        health.status.success(),
        "the image's healthcheck: {}\n{}",
        text(&health),
        log()
    );
    assert_eq!(ok(exec(&["id", "-u"]), "id -u"), "10001");
    assert_eq!(
        std::fs::metadata(volume.join("mqrtc.sqlite"))
            .expect("database in the volume")
            .uid(),
        10001
    );
    // Bound to every interface, so the host reaches it on its own address.
    let ports: Value =
        serde_json::from_str(&std::fs::read_to_string(volume.join("ports.json")).expect("ports"))
            .expect("JSON");
    let http = ports["http"].as_u64().expect("http port") as u16;
    let (status, _) = crate::common::http::request(http, "GET", "/healthz", &[], None);
    assert_eq!(status, 200);
    assert!(plain(&log()).contains("bind=0.0.0.0"), "{}", log());

    ok(run("runc", &["kill", &id, "TERM"]), "runc kill");
    let status = child.wait().expect("wait");
    let _ = run("runc", &["delete", "--force", &id]);
    assert!(status.success(), "exit after SIGTERM: {status}\n{}", log());
    let archive = out.join(format!("mqrtc-{}.oci.tar", env!("CARGO_PKG_VERSION")));
    assert!(
        archive.metadata().is_ok_and(|m| m.len() > 1_000_000),
        "{archive:?}"
    );
}

/// Removes the container however the test ends (a failed assertion would
/// otherwise leave it running).
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = run("runc", &["kill", &self.0, "KILL"]);
        let _ = run("runc", &["delete", "--force", &self.0]);
    }
}

/// `text` without its terminal colours.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut escape = false;
    for c in text.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out
}
