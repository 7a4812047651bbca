//! The cloud service's Signature and DeviceCredential password,
//! `Base64(HMAC-SHA1(secret, clientId))`: computed by clients (the SDK),
//! checked by the broker.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// `Base64(HMAC-SHA1(secret, client_id))`, the Signature and DeviceCredential password.
pub fn signature(secret: &str, client_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, client_id).finalize().into_bytes())
}

fn mac(secret: &str, client_id: &str) -> Hmac<Sha1> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(client_id.as_bytes());
    m
}

/// Constant-time check of a Signature password.
pub fn signature_matches(secret: &str, client_id: &str, password: &[u8]) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(password) else {
        return false;
    };
    mac(secret, client_id).verify_slice(&sig).is_ok()
}
