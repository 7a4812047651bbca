//! The demo tenant (made by `serve --dev` or `mqrtc instance demo`) and
//! what a first start tells its operator. Secrets never go to standard
//! output, which a service manager keeps in its journal: the demo access
//! key is written to a file only the owner can read, and its path printed.

use std::path::{Path, PathBuf};

use crate::store::{DemoTenant, DEMO_INSTANCE};

/// Name of the file, in the data dir, that holds the demo access key.
pub const DEMO_TENANT_FILE: &str = "demo-tenant.txt";

/// Writes the demo tenant's access key to `<data_dir>/demo-tenant.txt`
/// (0600) and returns the path.
pub fn save(data_dir: &Path, t: &DemoTenant) -> std::io::Result<PathBuf> {
    let path = data_dir.join(DEMO_TENANT_FILE);
    let text = format!(
        "# The demo tenant, instance {DEMO_INSTANCE}: Group IDs GID_demo and GID_web; parent topics\n\
         # rtc_up (uplink), rtc_down (downlink), rtc_event (event).\n\
         # Devices connect with username Signature|{id}|{DEMO_INSTANCE} and password\n\
         # Base64(HMAC-SHA1(AccessKeySecret, ClientId)).\n\
         AccessKeyId:     {id}\n\
         AccessKeySecret: {secret}\n",
        id = t.key.id,
        secret = t.key.secret,
    );
    crate::private::write(&path, text.as_bytes())?;
    Ok(path)
}

/// What to print once the demo tenant was made.
pub fn created(path: &Path, dev: bool) -> String {
    format!(
        "Created the demo tenant {DEMO_INSTANCE} (Group IDs GID_demo and GID_web). Its access key is in \
         {} (readable by this user only).{}",
        path.display(),
        if dev {
            " In --dev mode its devices may also connect with no username."
        } else {
            ""
        }
    )
}

/// What a start without `--dev` prints while no tenant is provisioned: how
/// to make one, and how to sign in to the console.
pub fn first_start_hint(data_dir: &Path, console: &str) -> String {
    let d = data_dir.display();
    format!(
        "\nNo tenant is provisioned yet, so no device can connect. Either:\n\
         \x20 - open the console at {console} and sign in as admin (the password is in \
         {d}/{admin}, readable by this user only), Provisioning page; or\n\
         \x20 - use the command line (docs/auth.md):\n\
         \x20     mqrtc instance create acme --data-dir {d}\n\
         \x20     mqrtc instance add-key acme --data-dir {d}\n\
         \x20     mqrtc topic create acme_up --instance acme --role uplink --data-dir {d}\n\
         \x20     mqrtc group create GID_acme --instance acme --data-dir {d}\n\
         \x20 - or make the demo tenant: `mqrtc instance demo --data-dir {d}` (its key goes to \
         {d}/{DEMO_TENANT_FILE}), or start with --dev for a demo on this machine.\n",
        admin = crate::app::ADMIN_PASSWORD_FILE,
    )
}
