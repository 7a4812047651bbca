//! Making the local CA and the server certificate, and what is remembered
//! about them (`certs/state.json`): the names the server certificate
//! covers, the names the CA may sign for, and when each expires.
//!
//! The CA carries X.509 name constraints: it can sign only for the DNS
//! names this machine had when it was made (`localhost`, the host name,
//! the public host) and for loopback and private addresses (plus any other
//! address the machine had then), so its key cannot be used to
//! impersonate a site on the internet to a client that trusts it.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use serde::{Deserialize, Serialize};

use super::CertError;

/// How long a new local CA is valid.
pub const CA_DAYS: i64 = 3 * 365;
/// How long a server certificate is valid; renewed 30 days before.
pub const SERVER_DAYS: i64 = 90;
/// Renew (or, for the CA, make a new one) this close to the end.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// Warn this long before the CA ends (clients will have to trust a new one).
pub const CA_WARN_DAYS: i64 = 90;

/// Address ranges the CA may always sign for: loopback, private (RFC 1918,
/// RFC 4193), link-local and shared (RFC 6598) space, where a LAN's
/// addresses come and go with DHCP.
const PRIVATE_RANGES: [(&str, u8); 9] = [
    ("127.0.0.0", 8),
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("169.254.0.0", 16),
    ("100.64.0.0", 10),
    ("::1", 128),
    ("fc00::", 7),
    ("fe80::", 10),
];

/// What `certs/state.json` remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Names the server certificate covers.
    pub names: Vec<String>,
    /// When it ends (Unix seconds).
    pub server_not_after: i64,
    /// DNS names and address ranges (`addr/prefix`) the CA may sign for;
    /// `None` for a CA made by an older mqrtc without constraints.
    pub ca_permits: Option<Vec<String>>,
    /// When the CA ends (Unix seconds); `None` if not known (older CA).
    pub ca_not_after: Option<i64>,
}

/// Name of the state file in `certs/`.
pub const STATE_FILE: &str = "state.json";

impl State {
    /// The state in `dir`, if there is one that parses.
    pub fn read(dir: &Path) -> Option<State> {
        let text = std::fs::read(dir.join(STATE_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes it to `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        let path = dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        super::write_file(&path, &text, false)
    }
}

/// The DNS names and ranges a new CA for `names` may sign for.
pub fn permits_for(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = PRIVATE_RANGES
        .iter()
        .map(|(a, p)| format!("{a}/{p}"))
        .collect();
    for n in names {
        match n.parse::<IpAddr>() {
            Ok(ip) if !permitted(&out, n) => {
                out.push(format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
            }
            Ok(_) => {}
            Err(_) => out.push(n.to_ascii_lowercase()),
        }
    }
    out
}

/// Whether `name` (a DNS name or an address) falls under `permits`, as a
/// TLS client checks a name constraint: a DNS entry covers itself and its
/// subdomains, an address range its addresses.
pub fn permitted(permits: &[String], name: &str) -> bool {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return permits.iter().any(|p| {
            let Some((net, prefix)) = p.split_once('/') else {
                return false;
            };
            match (net.parse::<IpAddr>(), prefix.parse::<u8>()) {
                (Ok(net), Ok(prefix)) => in_range(ip, net, prefix),
                _ => false,
            }
        });
    }
    let name = name.to_ascii_lowercase();
    permits
        .iter()
        .filter(|p| !p.contains('/'))
        .any(|p| name == *p || name.ends_with(&format!(".{p}")))
}

fn in_range(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The local CA's parameters. A server certificate signed later uses them
/// with the stored CA key: the issuer name and key are what matter.
pub fn ca_params(permits: Option<&[String]>, now: i64) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "mqrtc local CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(now - 86_400);
    p.not_after = at(now + CA_DAYS * 86_400);
    if let Some(permits) = permits {
        let subtrees = permits
            .iter()
            .filter_map(|e| match e.split_once('/') {
                Some((net, prefix)) => {
                    let net: IpAddr = net.parse().ok()?;
                    let prefix: u8 = prefix.parse().ok()?;
                    Some(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                        net, prefix,
                    )))
                }
                None => Some(GeneralSubtree::DnsName(e.clone())),
            })
            .collect();
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: subtrees,
            excluded_subtrees: vec![],
        });
    }
    Ok(p)
}

/// A new server certificate for `names` signed by `issuer`: (certificate
/// PEM, private key PEM, not-after in Unix seconds).
pub fn server_cert(
    names: &[String],
    issuer: &Issuer<'_, KeyPair>,
    now: i64,
) -> Result<(String, String, i64), CertError> {
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "mqrtc");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let not_after = now + SERVER_DAYS * 86_400;
    params.not_before = at(now - 86_400);
    params.not_after = at(not_after);
    let cert = params.signed_by(&server_key, issuer)?;
    Ok((cert.pem(), server_key.serialize_pem(), not_after))
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_cover_the_names_private_ranges_and_subdomains_only() {
        let p = permits_for(&[
            "localhost".into(),
            "box1".into(),
            "demo.example.lan".into(),
            "192.168.1.20".into(),
            "203.0.113.9".into(),
            "::1".into(),
        ]);
        for ok in [
            "localhost",
            "box1",
            "Demo.Example.Lan",
            "a.demo.example.lan",
            "192.168.7.7",
            "10.1.2.3",
            "203.0.113.9",
            "127.0.0.1",
            "fe80::1",
        ] {
            assert!(permitted(&p, ok), "{ok}: {p:?}");
        }
        for no in [
            "example.com",
            "xbox1",
            "203.0.113.10",
            "8.8.8.8",
            "2001:db8::1",
            "lan",
        ] {
            assert!(!permitted(&p, no), "{no}: {p:?}");
        }
    }
}
