//! Tests of the generated certificates.
use super::*;

#[test]
fn generates_once_then_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let a = ensure(dir.path(), &Tls::default()).unwrap();
    let first = fs::read_to_string(&a.cert).unwrap();
    assert!(first.contains("BEGIN CERTIFICATE"));
    let b = ensure(dir.path(), &Tls::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        first,
        fs::read_to_string(&b.cert).unwrap(),
        "reused, not regenerated"
    );
}

#[test]
fn user_supplied_files_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls {
        cert: Some(dir.path().join("nope.pem")),
        key: Some(dir.path().join("k")),
    };
    assert!(ensure(dir.path(), &tls)
        .unwrap_err()
        .to_string()
        .contains("nope.pem"));
}

/// Whether the server certificate in `files` is valid for `name` under
/// the CA in `files.ca`, as a TLS client checks it.
fn valid_for(files: &TlsFiles, name: &str) -> bool {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
    let ca = fs::read(files.ca.as_ref().unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&ca).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .unwrap();
    let pem = fs::read(&files.cert).unwrap();
    let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&pem)
        .map(Result::unwrap)
        .collect();
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .is_ok()
}

#[test]
fn extra_addresses_are_subject_alt_names() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["192.0.2.7".to_string(), "2001:db8::7".into()];
    let files = ensure_for(dir.path(), &Tls::default(), &extra).unwrap();
    for name in ["192.0.2.7", "2001:db8::7", "localhost", "127.0.0.1", "::1"] {
        assert!(valid_for(&files, name), "{name} not covered");
    }
    assert!(!valid_for(&files, "192.0.2.8"));
}

#[test]
fn changed_names_regenerate_the_server_certificate_under_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::default();
    let read = |p: &Path| fs::read_to_string(p).unwrap();
    let a = ensure_for(dir.path(), &tls, &["192.168.1.10".into()]).unwrap();
    let ca_path = a.ca.clone().unwrap();
    let (ca, ca_key) = (read(&ca_path), read(&ca_path.with_extension("key")));
    let first = read(&a.cert);
    ensure_for(dir.path(), &tls, &["192.168.1.10".into()]).unwrap();
    assert_eq!(read(&a.cert), first, "same names: reused");

    // A new private address (DHCP): the CA may sign for it.
    let b = ensure_for(dir.path(), &tls, &["10.0.0.20".into()]).unwrap();
    assert_eq!(a, b);
    assert_ne!(read(&b.cert), first, "names changed: regenerated");
    assert_eq!(read(&ca_path), ca, "the CA stays");
    assert_eq!(read(&ca_path.with_extension("key")), ca_key);
    assert!(valid_for(&b, "10.0.0.20"));
    assert!(!valid_for(&b, "192.168.1.10"));

    // A data dir from before the state was recorded: regenerated, same CA.
    fs::remove_file(dir.path().join("certs").join(issue::STATE_FILE)).unwrap();
    let second = read(&b.cert);
    ensure_for(dir.path(), &tls, &["10.0.0.20".into()]).unwrap();
    assert_ne!(read(&b.cert), second);
    assert_eq!(read(&ca_path), ca);
    assert!(valid_for(&b, "10.0.0.20"));
}

#[test]
fn the_ca_is_constrained_to_its_names_and_a_name_outside_them_gets_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::default();
    let a = ensure_for(
        dir.path(),
        &tls,
        &["203.0.113.5".into(), "box.example.lan".into()],
    )
    .unwrap();
    let ca = fs::read_to_string(a.ca.as_ref().unwrap()).unwrap();
    assert!(valid_for(&a, "203.0.113.5") && valid_for(&a, "box.example.lan"));
    // The CA's key cannot make a certificate a client would accept for
    // another site: sign one for example.com with it and verify.
    let key_pem = fs::read_to_string(dir.path().join("certs/ca.key")).unwrap();
    let state = issue::State::read(&dir.path().join("certs")).unwrap();
    let params = issue::ca_params(state.ca_permits.as_deref(), issue::now()).unwrap();
    let issuer = Issuer::new(params, KeyPair::from_pem(&key_pem).unwrap());
    let names = [
        "example.com".into(),
        "8.8.8.8".into(),
        "box.example.lan".into(),
    ];
    let (cert, key, _) = issue::server_cert(&names, &issuer, issue::now()).unwrap();
    let rogue = dir.path().join("rogue");
    fs::create_dir(&rogue).unwrap();
    let files = TlsFiles {
        cert: rogue.join("server.pem"),
        key: rogue.join("server.key"),
        ca: a.ca.clone(),
    };
    fs::write(&files.cert, format!("{cert}{ca}")).unwrap();
    fs::write(&files.key, key).unwrap();
    assert!(!valid_for(&files, "example.com"), "outside the constraints");
    assert!(!valid_for(&files, "8.8.8.8"));
    let (cert, key, _) = issue::server_cert(&names[2..], &issuer, issue::now()).unwrap();
    fs::write(&files.cert, format!("{cert}{ca}")).unwrap();
    fs::write(&files.key, key).unwrap();
    assert!(
        valid_for(&files, "box.example.lan"),
        "the same way, inside them: valid"
    );

    // The machine gets a public address the CA may not sign for: a new CA.
    let b = ensure_for(dir.path(), &tls, &["198.51.100.2".into()]).unwrap();
    assert_ne!(fs::read_to_string(b.ca.as_ref().unwrap()).unwrap(), ca);
    assert!(valid_for(&b, "198.51.100.2"));
}

#[test]
fn rotation_renews_the_server_certificate_and_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let a = ensure(dir.path(), &Tls::default()).unwrap();
    let ca = fs::read_to_string(a.ca.as_ref().unwrap()).unwrap();
    let cert = fs::read_to_string(&a.cert).unwrap();
    let names = current_names(dir.path());
    let b = issue(dir.path(), &names, Renew::Server).unwrap();
    assert_ne!(fs::read_to_string(&b.cert).unwrap(), cert);
    assert_eq!(fs::read_to_string(b.ca.as_ref().unwrap()).unwrap(), ca);
    assert!(valid_for(&b, "localhost"));
    let c = issue(dir.path(), &names, Renew::CaAndServer).unwrap();
    assert_ne!(fs::read_to_string(c.ca.as_ref().unwrap()).unwrap(), ca);
    assert!(valid_for(&c, "localhost"));
    let s = issue::State::read(&dir.path().join("certs")).unwrap();
    let days = (s.server_not_after - issue::now()) / 86_400;
    assert!(
        (issue::SERVER_DAYS - 1..=issue::SERVER_DAYS).contains(&days),
        "{days}"
    );
}

#[test]
fn public_host_and_names_follow_the_bind_address() {
    let lan: IpAddr = "10.1.2.3".parse().unwrap();
    let any: IpAddr = "0.0.0.0".parse().unwrap();
    assert_eq!(public_host(lan, ""), "10.1.2.3");
    assert_eq!(public_host(any, "box.lan"), "box.lan");
    let auto: IpAddr = public_host(any, "").parse().unwrap();
    assert!(auto.is_ipv4());
    assert_eq!(names_for(lan, "box.lan"), ["10.1.2.3", "box.lan"]);
    assert!(names_for(any, "")
        .iter()
        .all(|n| n.parse::<IpAddr>().is_ok()));
    assert!(local_addrs().iter().all(|ip| !ip.is_loopback()));
}

#[test]
fn names_cover_loopback() {
    let n = host_names();
    for want in ["localhost", "127.0.0.1", "::1"] {
        assert!(n.iter().any(|x| x == want));
    }
}
