//! Access control for `--standard-mqtt` from a file in mosquitto's
//! `acl_file` format, so users of the plain mode can reuse what they have:
//!
//! ```text
//! # comment
//! topic [read|write|readwrite|deny] TOPIC     # anonymous clients (before any `user`)
//! user NAME
//! topic [read|write|readwrite|deny] TOPIC     # that user
//! pattern [read|write|readwrite|deny] TOPIC   # everyone; %c client id, %u username
//! ```
//!
//! With a file, anything not granted is refused; `deny` wins over grants.
//! As in mosquitto: a publish needs `write` on its topic; a subscription
//! needs `read` on a pattern that contains the whole filter (`topic read
//! sensors/#` allows `sensors/+/t`) and is refused if the whole filter lies
//! within a `deny`; and each message is checked again for `read` when it
//! is delivered, so `#` may be subscribed to but a denied topic's messages
//! never arrive.

use std::path::Path;

use crate::bridge::filter_matches;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe (and so receive).
    Read,
    /// Publish.
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    ReadWrite,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Anonymous,
    User(String),
    Everyone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    who: Who,
    kind: Kind,
    topic: String,
    /// `pattern` line: `%c` and `%u` are substituted.
    pattern: bool,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFile {
    rules: Vec<Rule>,
}

impl AclFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<AclFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the file's text; an error names the line.
    pub fn parse(text: &str) -> Result<AclFile, String> {
        let mut who = Who::Anonymous;
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match word {
                "user" if !rest.is_empty() => who = Who::User(rest.to_string()),
                "topic" | "pattern" => {
                    let (kind, topic) = match rest.split_once(char::is_whitespace) {
                        Some(("read", t)) => (Kind::Read, t),
                        Some(("write", t)) => (Kind::Write, t),
                        Some(("readwrite", t)) => (Kind::ReadWrite, t),
                        Some(("deny", t)) => (Kind::Deny, t),
                        _ => (Kind::ReadWrite, rest),
                    };
                    let topic = topic.trim();
                    if topic.is_empty() || ["read", "write", "readwrite", "deny"].contains(&topic) {
                        return Err(format!("line {}: `{word}` needs a topic", n + 1));
                    }
                    let pattern = word == "pattern";
                    rules.push(Rule {
                        who: if pattern { Who::Everyone } else { who.clone() },
                        kind,
                        topic: topic.to_string(),
                        pattern,
                    });
                }
                _ => {
                    return Err(format!(
                        "line {}: expected `topic`, `user` or `pattern`, found `{line}`",
                        n + 1
                    ))
                }
            }
        }
        Ok(AclFile { rules })
    }

    /// Whether `username` (None: anonymous) as `client_id` may `access`
    /// `topic` (a topic name to publish, a filter to subscribe).
    pub fn allows(
        &self,
        username: Option<&str>,
        client_id: &str,
        topic: &str,
        access: Access,
    ) -> bool {
        let mine = self.rules.iter().filter(|r| match &r.who {
            Who::Everyone => true,
            Who::Anonymous => username.is_none(),
            Who::User(u) => username == Some(u.as_str()),
        });
        let expand = |r: &Rule| {
            if r.pattern {
                r.topic
                    .replace("%c", client_id)
                    .replace("%u", username.unwrap_or(""))
            } else {
                r.topic.clone()
            }
        };
        let mut granted = false;
        for r in mine {
            let t = expand(r);
            match (r.kind, access) {
                (Kind::Deny, Access::Write) if filter_matches(&t, topic) => return false,
                (Kind::Deny, Access::Read) if within(&t, topic) => return false,
                (Kind::Write | Kind::ReadWrite, Access::Write) => {
                    granted |= filter_matches(&t, topic)
                }
                (Kind::Read | Kind::ReadWrite, Access::Read) => granted |= within(&t, topic),
                _ => {}
            }
        }
        granted
    }
}

/// Every topic `sub` can match is matched by `acl`.
fn within(acl: &str, sub: &str) -> bool {
    let mut a = acl.split('/');
    let mut s = sub.split('/');
    loop {
        match (a.next(), s.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(x)) if x != "#" => {}
            (Some(x), Some(y)) if x == y && x != "+" && x != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "
# anonymous clients
topic readwrite #
topic deny test/nosubscribe

user alice
topic read sensors/#
topic write sensors/alice/+
topic deny sensors/secret

pattern readwrite devices/%c/#
";

    #[test]
    fn grants_and_denials_as_mosquitto_reads_them() {
        let acl = AclFile::parse(FILE).unwrap();
        let anon = |t: &str, a| acl.allows(None, "c1", t, a);
        assert!(anon("TopicA/B", Access::Write) && anon("TopicA/+", Access::Read));
        assert!(!anon("test/nosubscribe", Access::Read), "deny wins");
        assert!(
            anon("test/#", Access::Read),
            "a broader filter is allowed..."
        );
        assert!(anon("#", Access::Read));
        assert!(anon("test/other", Access::Read));
        assert!(!anon("test/nosubscribe", Access::Write));

        let alice = |t: &str, a| acl.allows(Some("alice"), "c2", t, a);
        assert!(alice("sensors/+/t", Access::Read));
        assert!(alice("sensors/#", Access::Read));
        assert!(
            !alice("sensors/secret", Access::Read),
            "...and its messages are not delivered"
        );
        assert!(alice("sensors/alice/t", Access::Write));
        assert!(!alice("sensors/bob/t", Access::Write));
        assert!(
            !alice("TopicA", Access::Write),
            "anonymous lines are not alice's"
        );
        assert!(alice("devices/c2/x", Access::Write), "pattern with %c");
        assert!(!alice("devices/c3/x", Access::Write));
        assert!(
            !acl.allows(Some("bob"), "c4", "sensors/x", Access::Read),
            "not granted"
        );
    }

    #[test]
    fn filters_within() {
        assert!(within("a/#", "a/b/+") && within("a/+", "a/b") && within("#", "#"));
        assert!(!within("a/+", "a/#") && !within("a/b", "a/+") && !within("a", "a/b"));
        assert!(
            filter_matches("a/+/c", "a/b/c")
                && filter_matches("#", "a")
                && !filter_matches("#", "$SYS/x")
        );
    }

    #[test]
    fn bad_lines_name_the_line() {
        let e = AclFile::parse("topic read a\nbogus b\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(AclFile::parse("topic read\n")
            .unwrap_err()
            .contains("line 1"));
    }
}
