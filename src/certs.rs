//! TLS material: a local CA and a server certificate generated with rcgen on
//! first start into `<data_dir>/certs`, reused on later starts, or the
//! user's own certificate and key from the config.

use std::fs;
use std::io::Write;
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
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Returns the TLS files to use: the configured ones, or those in
/// `<data_dir>/certs`, generating them if they do not exist yet.
pub fn ensure(data_dir: &Path, tls: &Tls) -> Result<TlsFiles, CertError> {
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        for p in [cert, key] {
            fs::metadata(p).map_err(io_err(p))?;
        }
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
    let all_there = [&files.cert, &files.key, &ca_path, &ca_key_path]
        .iter()
        .all(|p| p.exists());
    if all_there {
        return Ok(files);
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let generated = generate(&host_names())?;
    write_file(&ca_path, &generated.ca_pem, false)?;
    write_file(&ca_key_path, &generated.ca_key_pem, true)?;
    write_file(&files.cert, &generated.server_chain_pem, false)?;
    write_file(&files.key, &generated.server_key_pem, true)?;
    tracing::info!(dir = %dir.display(), "generated a local CA and server certificate");
    Ok(files)
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

/// PEM texts of a freshly generated CA and server certificate.
struct Generated {
    ca_pem: String,
    ca_key_pem: String,
    server_chain_pem: String,
    server_key_pem: String,
}

fn generate(names: &[String]) -> Result<Generated, CertError> {
    let now = time_now();
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mqrtc local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "mqrtc");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(825);
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_cert = params.signed_by(&server_key, &issuer)?;

    Ok(Generated {
        ca_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_chain_pem: format!("{}{}", server_cert.pem(), ca_cert.pem()),
        server_key_pem: server_key.serialize_pem(),
    })
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(io_err(path))?;
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

    #[test]
    fn names_cover_loopback() {
        let n = host_names();
        for want in ["localhost", "127.0.0.1", "::1"] {
            assert!(n.iter().any(|x| x == want));
        }
    }
}
