"""The demo's LoadBalancer Service: a small web server MetalLB gives an address to.

Its image comes from the site's registry (`<registry host VLAN address>:<port>/nginx:...`),
so the nodes pull it through the local registry like every other image of the demo.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "greenroom-demo"
NAME = "hello"
IMAGE = "library/nginx:1.27-alpine"  # as files/registry/images.d/metallb.yaml mirrors it


def image(inventory: Any) -> str:
    """The demo image as the nodes pull it: through the site's registry when there is one."""
    registry = getattr(inventory, "registry", None)
    if registry is None:
        return IMAGE
    host = inventory.hosts.get(registry.host)
    vlan = getattr(host, "vlan", None)
    address = vlan.address.ip if vlan is not None and vlan.address is not None \
        else inventory.network.gateway
    return f"{address}:{registry.port}/{IMAGE}"


def objects(inventory: Any) -> list[dict[str, Any]]:
    """Namespace, Deployment and Service (type LoadBalancer) of the demo."""
    labels = {"app": NAME, "app.kubernetes.io/managed-by": "greenroom"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": NAME}},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{
                                   "name": NAME, "image": image(inventory),
                                   "ports": [{"containerPort": 80}]}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"type": "LoadBalancer", "selector": {"app": NAME},
                  "ports": [{"port": 80, "targetPort": 80}]}},
    ]
