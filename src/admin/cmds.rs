//! The provisioning subcommands and their arguments.

use clap::Subcommand;

use crate::directory::{P2pScope, TokenKind, TopicRole};

/// `mqrtc instance ...`
#[derive(Debug, Clone, Subcommand)]
pub enum InstanceCmd {
    /// Create an instance (a tenant).
    Create {
        /// Instance id, used in usernames (`Mode|Key|InstanceId`).
        id: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Make the demo tenant (instance `demo`, Group IDs GID_demo and
    /// GID_web); its access key goes to `demo-tenant.txt` in the data dir.
    Demo,
    /// List instances and their AccessKeyIds.
    List,
    /// Delete an instance and everything it owns.
    Delete {
        /// Instance id.
        id: String,
    },
    /// Create an access key (prints its secret once).
    AddKey {
        /// Instance id.
        id: String,
    },
    /// Delete an access key (its clients are disconnected).
    DeleteKey {
        /// AccessKeyId.
        key_id: String,
    },
}

/// `mqrtc group ...`
#[derive(Debug, Clone, Subcommand)]
pub enum GroupCmd {
    /// Provision a Group ID.
    Create {
        /// `GID_...` or `GID-...`.
        id: String,
        /// Owning instance.
        #[arg(long)]
        instance: String,
        /// Where its devices may send P2P: instance, group, none.
        #[arg(long, default_value = "instance", value_parser = parse_scope)]
        p2p: P2pScope,
    },
    /// List Group IDs with their permissions.
    List {
        /// Only this instance's.
        #[arg(long)]
        instance: Option<String>,
    },
    /// Delete a Group ID (its clients are disconnected).
    Delete {
        /// Group ID.
        id: String,
    },
    /// Set where the group's devices may send P2P: instance, group, none.
    SetP2p {
        /// Group ID.
        id: String,
        /// Scope.
        #[arg(value_parser = parse_scope)]
        scope: P2pScope,
    },
    /// Grant publish and/or subscribe on a parent topic (from the first grant
    /// on, the group may use only granted topics).
    Grant {
        /// Group ID.
        id: String,
        /// Parent topic.
        topic: String,
        /// Allow publishing.
        #[arg(long)]
        publish: bool,
        /// Allow subscribing.
        #[arg(long)]
        subscribe: bool,
    },
    /// Remove a grant.
    Revoke {
        /// Group ID.
        id: String,
        /// Parent topic.
        topic: String,
    },
}

/// `mqrtc topic ...`
#[derive(Debug, Clone, Subcommand)]
pub enum TopicCmd {
    /// Provision a parent topic.
    Create {
        /// The first topic level.
        name: String,
        /// Owning instance.
        #[arg(long)]
        instance: String,
        /// uplink, downlink or event.
        #[arg(long, value_parser = parse_role)]
        role: TopicRole,
    },
    /// List parent topics.
    List {
        /// Only this instance's.
        #[arg(long)]
        instance: Option<String>,
    },
    /// Delete a parent topic.
    Delete {
        /// Name.
        name: String,
    },
}

/// `mqrtc device ...`
#[derive(Debug, Clone, Subcommand)]
pub enum DeviceCmd {
    /// Issue a DeviceCredential key pair for one client id (prints the secret once).
    Create {
        /// `GroupID@@@DeviceID`.
        client_id: String,
        /// Instance.
        #[arg(long)]
        instance: String,
    },
    /// List device credentials.
    List {
        /// Only this instance's.
        #[arg(long)]
        instance: Option<String>,
    },
    /// Delete a device credential (its client is disconnected).
    Delete {
        /// DeviceAccessKeyId.
        id: String,
    },
}

/// `mqrtc token ...`
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCmd {
    /// Issue a token (prints it once).
    Create {
        /// Instance.
        #[arg(long)]
        instance: String,
        /// R, W or RW.
        #[arg(long = "type", value_parser = parse_kind)]
        kind: TokenKind,
        /// Topic filters it covers (repeat, or separate with commas); a bare
        /// parent topic covers all of it.
        #[arg(long = "resource", required = true, value_delimiter = ',')]
        resources: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
    },
    /// List tokens (not the tokens themselves).
    List {
        /// Only this instance's.
        #[arg(long)]
        instance: Option<String>,
    },
    /// Revoke a token (its clients are told and disconnected).
    Delete {
        /// Token id.
        id: String,
    },
}

/// `mqrtc admin ...`: console accounts and API keys.
#[derive(Debug, Clone, Subcommand)]
pub enum AccountCmd {
    /// Set a new console password for an admin (creating the account if
    /// needed); prints a generated one unless --password-stdin is given.
    /// Ends that admin's console sessions.
    ResetPassword {
        /// Admin name.
        #[arg(long, default_value = crate::store::FIRST_ADMIN)]
        user: String,
        /// Read the new password (12 characters or more) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create an API key for scripts (prints the key once).
    ApiKeyCreate {
        /// What it is for.
        name: String,
    },
    /// List API keys (not the keys).
    ApiKeyList,
    /// Revoke an API key.
    ApiKeyRevoke {
        /// Key id.
        id: String,
    },
}

fn parse_scope(s: &str) -> Result<P2pScope, String> {
    P2pScope::parse(s).ok_or_else(|| format!("{s}: expected instance, group or none"))
}

fn parse_role(s: &str) -> Result<TopicRole, String> {
    TopicRole::parse(s).ok_or_else(|| format!("{s}: expected uplink, downlink or event"))
}

fn parse_kind(s: &str) -> Result<TokenKind, String> {
    TokenKind::parse(s).ok_or_else(|| format!("{s}: expected R, W or RW"))
}
