//! TLS material: a local CA and a server certificate generated with rcgen on
//! first start into `<data_dir>/certs`, reused on later starts, or the
//! user's own certificate and key from the config. Also the addresses this
//! machine is reached on, which the generated certificate must cover.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::config::Tls;

/// Paths of the PEM files the TLS and WSS listeners use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (server certificate first).
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// The CA that signed `cert`, for clients to trust (absent for user-supplied material).
    pub ca: Option<PathBuf>,
}

/// Why TLS material could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Reading or writing the files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// rcgen refused to build a certificate.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A private key is readable by other users.
    #[error(transparent)]
    Insecure(#[from] crate::private::InsecureKey),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Name of the file, in `<data_dir>/certs`, listing the names the generated
/// server certificate covers (one a line).
const NAMES_FILE: &str = "server-names.txt";

/// Returns the TLS files to use: the configured ones, or those in
/// `<data_dir>/certs`, generating them if they do not exist yet.
pub fn ensure(data_dir: &Path, tls: &Tls) -> Result<TlsFiles, CertError> {
    ensure_for(data_dir, tls, &[])
}

/// As [`ensure`], the generated server certificate also covering `extra`
/// (IP addresses or DNS names, see [`names_for`]). When the names it must
/// cover changed since it was generated, the server certificate is generated
/// again, signed by the same CA, so clients that trust `ca.pem` keep working.
pub fn ensure_for(data_dir: &Path, tls: &Tls, extra: &[String]) -> Result<TlsFiles, CertError> {
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        for p in [cert, key] {
            fs::metadata(p).map_err(io_err(p))?;
        }
        crate::private::check(key, crate::private::Readers::OwnerAndGroup)?;
        return Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: None,
        });
    }
    let dir = data_dir.join("certs");
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: Some(ca_path.clone()),
    };
    let names: Vec<String> = host_names()
        .into_iter()
        .chain(extra.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let names_path = dir.join(NAMES_FILE);
    let names_text: String = names.iter().map(|n| format!("{n}\n")).collect();
    let ca_there = ca_path.exists() && ca_key_path.exists();
    let same_names = fs::read_to_string(&names_path).is_ok_and(|t| t == names_text);
    for key in [&ca_key_path, &files.key] {
        crate::private::check(key, crate::private::Readers::Owner)?;
    }
    if ca_there && same_names && files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    crate::private::create_dir(&dir).map_err(io_err(&dir))?;
    if ca_there {
        let ca_pem = fs::read_to_string(&ca_path).map_err(io_err(&ca_path))?;
        let ca_key_pem = fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
        let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&ca_key_pem)?);
        let (cert, key) = server_cert(&names, &issuer)?;
        write_file(&files.cert, &format!("{cert}{ca_pem}"), false)?;
        write_file(&files.key, &key, true)?;
        tracing::info!(dir = %dir.display(), names = ?names, "generated a new server certificate (same CA) for the names this machine has now");
    } else {
        let ca_key = KeyPair::generate()?;
        let ca_pem = ca_params()?.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca_params()?, ca_key);
        let (cert, key) = server_cert(&names, &issuer)?;
        write_file(&ca_path, &ca_pem, false)?;
        write_file(&ca_key_path, &issuer.key().serialize_pem(), true)?;
        write_file(&files.cert, &format!("{cert}{ca_pem}"), false)?;
        write_file(&files.key, &key, true)?;
        tracing::info!(dir = %dir.display(), names = ?names, "generated a local CA and server certificate");
    }
    write_file(&names_path, &names_text, false)?;
    Ok(files)
}

/// The names, beyond localhost and the host name, a server certificate for
/// an appliance bound to `bind` and reached as `public_host` must cover:
/// every interface address when bound to all interfaces, else the bind
/// address; and the public host.
pub fn names_for(bind: IpAddr, public_host: &str) -> Vec<String> {
    let mut names: Vec<String> = if bind.is_unspecified() {
        local_addrs().iter().map(IpAddr::to_string).collect()
    } else {
        vec![bind.to_string()]
    };
    if !public_host.is_empty() {
        names.push(public_host.to_string());
    }
    names
}

/// The host other machines reach this appliance on: `configured` if set;
/// else, bound to all interfaces, the first non-loopback IPv4 address of
/// the machine (127.0.0.1 if it has none); else the bind address.
pub fn public_host(bind: IpAddr, configured: &str) -> String {
    if !configured.is_empty() {
        configured.to_string()
    } else if bind.is_unspecified() {
        let first = local_addrs().into_iter().find(IpAddr::is_ipv4);
        first.map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
    } else {
        bind.to_string()
    }
}

/// The machine's own non-loopback, non-link-local interface addresses,
/// those of interfaces that are up and not point-to-point (VPN) first.
pub fn local_addrs() -> Vec<IpAddr> {
    let mut ifs = match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs,
        Err(e) => {
            tracing::warn!("cannot list network interfaces: {e}");
            return vec![];
        }
    };
    ifs.retain(|i| !i.is_loopback());
    ifs.sort_by_key(|i| !i.is_oper_up() || i.is_p2p()); // stable: keeps system order
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in ifs.iter().map(if_addrs::Interface::ip) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The names the generated server certificate is valid for.
fn host_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = hostname::get() {
        if let Some(h) = h.to_str() {
            if !h.is_empty() && !names.iter().any(|n| n == h) {
                names.push(h.to_string());
            }
        }
    }
    names
}

/// The local CA's parameters. A server certificate signed again later uses
/// them with the stored CA key: the issuer name and key are what matter.
fn ca_params() -> Result<CertificateParams, CertError> {
    let now = time_now();
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mqrtc local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    Ok(ca_params)
}

/// A new server certificate for `names` signed by `issuer`: (certificate
/// PEM, private key PEM).
fn server_cert(
    names: &[String],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), CertError> {
    let now = time_now();
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "mqrtc");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(825);
    let cert = params.signed_by(&server_key, issuer)?;
    Ok((cert.pem(), server_key.serialize_pem()))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    if secret {
        return crate::private::write(path, text.as_bytes()).map_err(io_err(path));
    }
    let mut f = fs::File::create(path).map_err(io_err(path))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
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
        let a = ensure_for(dir.path(), &tls, &["192.0.2.1".into()]).unwrap();
        let ca_path = a.ca.clone().unwrap();
        let (ca, ca_key) = (read(&ca_path), read(&ca_path.with_extension("key")));
        let first = read(&a.cert);
        ensure_for(dir.path(), &tls, &["192.0.2.1".into()]).unwrap();
        assert_eq!(read(&a.cert), first, "same names: reused");

        let b = ensure_for(dir.path(), &tls, &["198.51.100.2".into()]).unwrap();
        assert_eq!(a, b);
        assert_ne!(read(&b.cert), first, "names changed: regenerated");
        assert_eq!(read(&ca_path), ca, "the CA stays");
        assert_eq!(read(&ca_path.with_extension("key")), ca_key);
        assert!(valid_for(&b, "198.51.100.2"));
        assert!(!valid_for(&b, "192.0.2.1"));

        // A data dir from before the names were recorded: regenerated, same CA.
        fs::remove_file(dir.path().join("certs").join(NAMES_FILE)).unwrap();
        let second = read(&b.cert);
        ensure_for(dir.path(), &tls, &["198.51.100.2".into()]).unwrap();
        assert_ne!(read(&b.cert), second);
        assert_eq!(read(&ca_path), ca);
        assert!(valid_for(&b, "198.51.100.2"));
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
}
