#!/usr/bin/env python3
"""Writes packaging/mqrtc.toml, the Debian package's /etc/mqrtc/mqrtc.toml:
every key of `mqrtc print-config` commented out with its default, under the
doc comment of its field in src/config.rs (and src/upstream/config.rs). A test (config::tests) checks
that the file still lists every key with its default.

    scripts/gen-conffile.py target/debug/mqrtc > packaging/mqrtc.toml
"""
import re, subprocess, sys

src = open("src/config.rs").read() + open("src/upstream/config.rs").read()
docs = {}  # (struct, field) -> [lines]
for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", src, re.S):
    struct, body = m.group(1), m.group(2)
    pending = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("///"):
            pending.append(line[3:].strip())
        elif line.startswith("pub "):
            f = re.match(r"pub (\w+):", line)
            if f:
                docs[(struct, f.group(1))] = pending
            pending = []
        elif not line.startswith("#["):
            pending = []
sections = {"": "Config", "ports": "Ports", "tls": "Tls", "limits": "Limits",
            "startup": "Startup", "controller": "Controller", "rtc": "Rtc",
            "webhooks": "Webhooks", "upstream": "Upstream"}
optional = {  # keys that are unset by default: shown as prose, not as a value
    "": [("acl_file", '"/etc/mqrtc/acl"')],
    "tls": [("cert", '"/etc/mqrtc/server.crt"'), ("key", '"/etc/mqrtc/server.key"')],
    "upstream": [("password_file", '"/etc/mqrtc/upstream.password"'), ("ca_file", '"/etc/mqrtc/upstream-ca.pem"'), ("store_ca_file", '"/etc/mqrtc/db-ca.pem"')],
}
out = subprocess.run([sys.argv[1], "print-config"], check=True, capture_output=True, text=True).stdout
print("""# mqrtc configuration (/etc/mqrtc/mqrtc.toml).
#
# Every key is shown commented out with its default; uncomment to change.
# Later layers win: this file, then MQRTC_* environment variables
# (MQRTC_LIMITS__MAX_CONNECTIONS=...), then command-line flags. The
# systemd unit passes --data-dir /var/lib/mqrtc. After a change:
# systemctl restart mqrtc. Documentation: /usr/share/doc/mqrtc/.""")
section = ""
def emit_optional(sec):
    for key, example in optional.get(sec, []):
        print()
        for d in docs.get((sections[sec], key), []):
            print(f"# {d}".rstrip())
        print(f"# Unset by default. Example: {key} = {example}")
for line in out.splitlines():
    m = re.match(r"^\[(\w+)\]$", line)
    if m:
        emit_optional(section)
        section = m.group(1)
        print(f"\n{line}")
        continue
    m = re.match(r"^(\w+) = (.*)$", line)
    if m:
        key = m.group(1)
        print()
        for d in docs.get((sections[section], key), []):
            print(f"# {d}".rstrip())
        print(f"# {line}")
emit_optional(section)
