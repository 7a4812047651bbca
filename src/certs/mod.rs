//! TLS material: a local CA and a server certificate generated with rcgen on
//! first start into `<data_dir>/certs`, reused on later starts, or the
//! user's own certificate and key from the config. Also the addresses this
//! machine is reached on, which the generated certificate must cover.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair};

mod client;
pub mod issue;
pub mod reload;

pub use client::client_config;

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

/// Returns the TLS files to use: the configured ones, or those in
/// `<data_dir>/certs`, generating them if they do not exist yet.
pub fn ensure(data_dir: &Path, tls: &Tls) -> Result<TlsFiles, CertError> {
    ensure_for(data_dir, tls, &[])
}

/// As [`ensure`], the generated server certificate also covering `extra`
/// (IP addresses or DNS names, see [`names_for`]). The server certificate
/// is made again, signed by the same CA (so clients that trust `ca.pem`
/// keep working), when the names it must cover changed or it ends within
/// 30 days. A new CA is made only when there is none, it ends within 30
/// days, or its name constraints do not allow a name the machine now has;
/// clients must then trust the new `ca.pem`, and the log says so.
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
    let names: Vec<String> = host_names()
        .into_iter()
        .chain(extra.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    issue(data_dir, &names, Renew::IfDue)
}

/// What [`issue`] renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renew {
    /// Only what is missing, ends soon, or no longer fits the names.
    IfDue,
    /// The server certificate now (same CA).
    Server,
    /// The CA and the server certificate now.
    CaAndServer,
}

/// The generated files in `<data_dir>/certs`, for `names`, renewed as
/// `renew` says.
pub fn issue(data_dir: &Path, names: &[String], renew: Renew) -> Result<TlsFiles, CertError> {
    let dir = data_dir.join("certs");
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: Some(ca_path.clone()),
    };
    for key in [&ca_key_path, &files.key] {
        crate::private::check(key, crate::private::Readers::Owner)?;
    }
    let now = issue::now();
    let soon = now + issue::RENEW_BEFORE_DAYS * 86_400;
    let state = issue::State::read(&dir);
    let ca_there = ca_path.exists() && ca_key_path.exists();
    let ca_why = if !ca_there {
        Some("there was none")
    } else if renew == Renew::CaAndServer {
        Some("asked for")
    } else {
        match &state {
            Some(s) if s.ca_not_after.is_some_and(|t| t < soon) => {
                Some("the old one ends within 30 days")
            }
            Some(issue::State {
                ca_permits: Some(p),
                ..
            }) if !names.iter().all(|n| issue::permitted(p, n)) => {
                Some("the machine has a name the old one may not sign for")
            }
            _ => None,
        }
    };
    let server_due = ca_why.is_some()
        || renew == Renew::Server
        || !(files.cert.exists() && files.key.exists())
        || state
            .as_ref()
            .is_none_or(|s| s.names != names || s.server_not_after < soon);
    if !server_due {
        warn_if_ca_ends_soon(state.as_ref(), now);
        return Ok(files);
    }
    crate::private::create_dir(&dir).map_err(io_err(&dir))?;
    let (issuer, ca_pem, ca_permits, ca_not_after) = if let Some(why) = ca_why {
        let permits = issue::permits_for(names);
        let key = KeyPair::generate()?;
        let params = issue::ca_params(Some(&permits), now)?;
        let pem = params.self_signed(&key)?.pem();
        write_file(&ca_key_path, &key.serialize_pem(), true)?;
        write_file(&ca_path, &pem, false)?;
        if ca_there {
            tracing::warn!(dir = %dir.display(), why, "made a new local CA: clients must trust the new ca.pem");
        }
        let not_after = now + issue::CA_DAYS * 86_400;
        (
            Issuer::new(params, key),
            pem,
            Some(permits),
            Some(not_after),
        )
    } else {
        let pem = fs::read_to_string(&ca_path).map_err(io_err(&ca_path))?;
        let key_pem = fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
        let permits = state.as_ref().and_then(|s| s.ca_permits.clone());
        let params = issue::ca_params(permits.as_deref(), now)?;
        let not_after = state.as_ref().and_then(|s| s.ca_not_after);
        (
            Issuer::new(params, KeyPair::from_pem(&key_pem)?),
            pem,
            permits,
            not_after,
        )
    };
    let (cert, key, server_not_after) = issue::server_cert(names, &issuer, now)?;
    // The key first: a reader that sees the new key with the old
    // certificate keeps the old pair until both match (reload.rs).
    write_file(&files.key, &key, true)?;
    write_file(&files.cert, &format!("{cert}{ca_pem}"), false)?;
    let state = issue::State {
        names: names.to_vec(),
        server_not_after,
        ca_permits,
        ca_not_after,
    };
    state.write(&dir)?;
    tracing::info!(dir = %dir.display(), names = ?names, days = issue::SERVER_DAYS, "issued a server certificate");
    if state.ca_permits.is_none() {
        tracing::info!("the local CA was made by an older mqrtc, without name constraints; `mqrtc certs rotate --ca` makes one with them (clients must then trust the new ca.pem)");
    }
    warn_if_ca_ends_soon(Some(&state), now);
    Ok(files)
}

fn warn_if_ca_ends_soon(state: Option<&issue::State>, now: i64) {
    if let Some(t) = state.and_then(|s| s.ca_not_after) {
        if t < now + issue::CA_WARN_DAYS * 86_400 {
            tracing::warn!(
                days_left = (t - now) / 86_400,
                "the local CA ends soon; `mqrtc certs rotate --ca` makes a new one, which clients must then trust"
            );
        }
    }
}

/// `mqrtc certs rotate|show`: what to print.
pub fn command(cmd: &crate::cli::CertsCmd, data_dir: &Path) -> Result<String, CertError> {
    let dir = data_dir.join("certs");
    if let crate::cli::CertsCmd::Rotate { ca } = cmd {
        let renew = if *ca {
            Renew::CaAndServer
        } else {
            Renew::Server
        };
        issue(data_dir, &current_names(data_dir), renew)?;
    }
    let s = issue::State::read(&dir).unwrap_or_default();
    let day = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .map(|d| d.date().to_string())
            .unwrap_or_default()
    };
    Ok(format!(
        "{}server certificate: {}, valid until {}
local CA: {}, valid until {}
{}",
        match cmd {
            crate::cli::CertsCmd::Rotate { ca: true } => "Made a new CA and server certificate: clients must trust the new ca.pem.\n",
            crate::cli::CertsCmd::Rotate { ca: false } => "Issued a new server certificate under the same CA; a running appliance uses it for new connections within a second.\n",
            crate::cli::CertsCmd::Show => "",
        },
        dir.join("server.pem").display(),
        day(s.server_not_after),
        dir.join("ca.pem").display(),
        s.ca_not_after.map_or_else(|| "unknown (made by an older mqrtc)".into(), day),
        format_args!(
            "names: {}
the CA may sign for: {}",
            s.names.join(", "),
            s.ca_permits
                .map_or_else(|| "anything (no name constraints)".into(), |p| p.join(", "))
        )
    ))
}

/// The names the generated server certificate covers now (from the state
/// file), or this machine's own names if there is none.
pub fn current_names(data_dir: &Path) -> Vec<String> {
    issue::State::read(&data_dir.join("certs"))
        .map(|s| s.names)
        .unwrap_or_else(host_names)
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

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    let mode = if secret { 0o600 } else { 0o644 };
    crate::private::replace(path, text.as_bytes(), mode).map_err(io_err(path))
}

#[cfg(test)]
mod tests;
