"""The registry runbook: mirror cluster images into the local registry, verify, carry offline.

Modules: images (image list, references, rewrites), manifests (media types, platforms),
auth (credentials, challenges), client (HTTP API v2), plan (what to copy), mirror (the
parallel copy engine), quick (no-op fast path), ocilayout (save/load), lockfile, progress,
targets (where to connect), run/verify (operations), tasks (the Invoke collection).
"""
