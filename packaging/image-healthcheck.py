#!/usr/bin/env python3
"""Adds Docker's `Healthcheck` (as in packaging/Containerfile) to the config
of the image LAYOUT:TAG, rewriting the config and manifest blobs and the
index: OCI image configs have no such field and umoci cannot set it.

    image-healthcheck.py LAYOUT TAG
"""
import hashlib, json, os, sys

layout, tag = sys.argv[1], sys.argv[2]
SECOND = 1_000_000_000

def blob(digest):
    return os.path.join(layout, "blobs", *digest.split(":"))

def put(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob(digest), "wb") as f:
        f.write(data)
    return digest, len(data)

index = json.load(open(os.path.join(layout, "index.json")))
entry = next(m for m in index["manifests"]
             if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
manifest = json.load(open(blob(entry["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
config["config"]["Healthcheck"] = {
    "Test": ["CMD", "/usr/bin/mqrtc", "healthcheck"],
    "Interval": 30 * SECOND, "Timeout": 10 * SECOND,
    "StartPeriod": 60 * SECOND, "Retries": 3,
}
manifest["config"]["digest"], manifest["config"]["size"] = put(json.dumps(config).encode())
entry["digest"], entry["size"] = put(json.dumps(manifest).encode())
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump(index, f)
