"""What several runbooks share, between the engine (runbooks.core) and the runbooks.

containerd (config.toml merger, certs.d hosts.toml), registry_trust (k3s registries.yaml,
Docker daemon.json, restart handlers), registry (the registry endpoint), vlan + links (VLAN
interfaces), nat (forwarding, masquerade, port forwards), kernel (sysctl.d, modules), reboot
(reboot, wait, verify), facts (shared named facts), schema/ (inventory sections and per-role
vars). Modules here import only runbooks.core and each other, never a runbook.
"""
