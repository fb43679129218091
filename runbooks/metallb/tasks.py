"""metallb: MetalLB on the cluster, from the inventory's `metallb:` section.

`inv metallb` installs and configures it; `inv metallb.fetch` pins and caches the release
manifest; `inv metallb.check` reads the BGP sessions, routes and the service through the
router; `inv metallb.convert FILE` turns an old ConfigMap (MetalLB 0.12 and before) into the
inventory section.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Context, Exit

from runbooks.core.cli import COMMON_HELP, load_inventory_or_exit, runbook_task, settings, task

converge = runbook_task(
    "runbooks.metallb.plan:RUNBOOK",
    """Install MetalLB on the cluster and apply the pools, peers and advertisement.

    On the first server, through the distribution's kubectl: the pinned manifest (`inv
    metallb.fetch` first), a wait for the controller and the webhook's endpoints, then the
    objects rendered from the inventory (checked against the CRDs' schemas before they are
    sent, retried while the webhook still refuses), and the demo LoadBalancer Service.
    """,
    name="converge",
    default=True,
)


@task(help={"inventory": COMMON_HELP["inventory"],
            "source": "Download from this mirror of MetalLB's repository files instead of "
                      "the section's source / invoke.yaml's greenroom.metallb.source."})
def fetch(c: Context, inventory: str | None = None, source: str | None = None) -> None:
    """Download MetalLB's manifest for the inventory's version, pin its sha256, cache it.

    The first fetch of a version records the sha256 in <inventory>.metallb.lock (read the
    manifest, then commit the lock); later fetches must match it.
    """
    from runbooks.common.bgp import metallb_of
    from runbooks.metallb import fetch as fetching

    inv = load_inventory_or_exit(c, inventory)
    metallb = metallb_of(inv)
    if metallb is None:
        raise Exit(f"{inv.path}: no `metallb:` section; add one (see README, metallb)", code=2)
    configured = (settings(c).get("metallb") or {}).get("source")
    chosen = source or metallb.source or configured
    if not chosen:
        raise Exit("no source for MetalLB's manifests: set greenroom.metallb.source in "
                   "invoke.yaml or metallb.source in the inventory", code=2)
    lock = fetching.lock_path(Path(inv.path))
    try:
        got = fetching.fetch(metallb.version, metallb.backend, chosen, lock)
    except fetching.FetchError as exc:
        raise Exit(f"metallb.fetch: {exc}", code=1) from None
    words = {"cached": "already cached and matching its pin",
             "downloaded": "downloaded, matches its pin",
             "pinned": f"downloaded and pinned in {lock} (read it, then commit the lock)"}
    print(f"MetalLB {metallb.version} {got.path.name}: {words[got.how]}\n"
          f"  {got.path}\n  sha256 {got.sha256}")


@task(help={"file": "A MetalLB ConfigMap (YAML) as in MetalLB 0.12 and before.",
            "inventory": "Inventory whose routers the ConfigMap's peers may be (matched by "
                         "address); default: none, peers become router stubs.",
            "version": "The MetalLB release to write in the section."},
      positional=["file"])
def convert(c: Context, file: str, inventory: str | None = None,
            version: str = "v0.14.9") -> None:
    """Print the inventory `metallb:` section equivalent to an old MetalLB ConfigMap."""
    from runbooks.common.bgp import host_address
    from runbooks.metallb.convert import ConvertError
    from runbooks.metallb.convert import convert as converting

    try:
        text = Path(file).read_text()
    except OSError as exc:
        raise Exit(f"{file}: {exc.strerror or exc}", code=2) from None
    known: dict[str, str] = {}
    if inventory:
        inv = load_inventory_or_exit(c, inventory)
        for name, host in inv.hosts.items():
            address = host_address(host)
            if "router" in host.roles and address is not None:
                known[str(address)] = name
            if "router" in host.roles:
                known[str(host.address)] = name
    try:
        print(converting(text, known, version).text(), end="")
    except ConvertError as exc:
        raise Exit(f"{file}: {exc}", code=2) from None


@task(help={**{k: v for k, v in COMMON_HELP.items() if k != "check"},
            "address": "LoadBalancer IPs to check, comma separated (a route on every router, "
                       "an HTTP answer from every client host); default: every IP the "
                       "cluster assigned, read on its first server.",
            "from_router": "Also fetch the addresses from the routers themselves (for sites "
                           "without a host with role client)."})
def check(c: Context, inventory: str | None = None, host: str | None = None,
          parallel: int = 0, report: str | None = None,
          accept_new_host_keys: bool = False, address: str = "",
          from_router: bool = False) -> None:
    """Read-only: BGP sessions Established, routes to the LoadBalancer IPs, service answering.

    The LoadBalancer IPs are read from the cluster (every Service of type LoadBalancer must
    have one) unless --address names them. On each router (role router): every cluster
    node's session is Established and each IP has a BGP route (frr: `show bgp summary json`;
    bird: `birdc show protocols`; routeros6: `/routing bgp peer print status`; routeros7:
    `/routing/bgp/session print`; RouterOS routes from `/ip route print detail where bgp`);
    on each client (role client): each IP answers HTTP, i.e. through the router. Exits 1
    when anything is not so.
    """
    from ipaddress import ip_address

    from runbooks.core.cli import execute, usage_errors_exit
    from runbooks.core.runner import select_hosts
    from runbooks.metallb.health import CHECK

    addresses = [a.strip() for a in address.split(",") if a.strip()]
    for item in addresses:
        try:
            ip_address(item)
        except ValueError:
            raise Exit(f"--address {item!r} is not an IP address", code=2) from None
    inv = load_inventory_or_exit(c, inventory)
    with usage_errors_exit():
        selected = [h.name for h in select_hosts(inv, CHECK, host)]
    routeros = _routeros_routers(inv, selected)
    failed = _check_routeros(inv, routeros, addresses, accept_new_host_keys) if routeros else 0
    others = [name for name in selected if name not in routeros]
    try:
        if others or not routeros:
            execute(c, CHECK, inventory, ",".join(others) if routeros else host, False,
                    parallel, report, accept_new_host_keys,
                    {"addresses": addresses, "from_router": from_router})
    finally:
        if failed:
            print(f"{failed} RouterOS router(s) not healthy (see above)")
    if failed:
        raise Exit(code=1)


def _routeros_routers(inv: object, names: list[str]) -> list[str]:
    """The selected routers of kind routeros6/routeros7 (read outside the engine)."""
    from runbooks.common.bgp import PlanError, site_plan
    from runbooks.common.routeros_state import SESSIONS

    try:
        site = site_plan(inv)
    except PlanError:
        return []  # the engine's run reports it
    return [r.name for r in site.routers if r.kind in SESSIONS and r.name in names]


def _check_routeros(inv: object, names: list[str], addresses: list[str],
                    accept_new_host_keys: bool) -> int:
    """Sessions and routes of each RouterOS router over SSH; how many are not healthy."""
    from runbooks.common.bgp import site_plan
    from runbooks.common.routeros_state import run_over
    from runbooks.core.session import Connector
    from runbooks.core.steps import StepFailed
    from runbooks.metallb import services
    from runbooks.metallb.routeros_check import check_routers

    site = site_plan(inv)
    connector = Connector(inv, accept_new_host_keys=accept_new_host_keys)  # type: ignore
    bad = 0
    try:
        if not addresses:
            try:
                assigned = services.read(inv, connector)  # type: ignore[arg-type]
            except StepFailed as exc:
                for name in names:
                    print(f"{name} ({site.router(name).kind}): FAILED: {exc}")
                return len(names)
            for service, found in sorted(assigned.addresses.items()):
                print(f"cluster: ok   Service {service}: {', '.join(found)}")
            for service in assigned.pending:
                print(f"cluster: BAD  Service {service}: no LoadBalancer IP assigned "
                      "(pool exhausted, or MetalLB's controller not running?)")
            addresses = assigned.all()
            if not addresses and not assigned.pending:
                print("cluster: BAD  no Service of type LoadBalancer in the cluster: run "
                      "`inv metallb` (it creates the demo's)")
            bad = 1 if assigned.pending or not addresses else 0
        results = check_routers(
            lambda name: run_over(connector.connection(inv.hosts[name])),  # type: ignore
            site, names, addresses)
    finally:
        connector.close_all()
    for result in results:
        for line in result.text():
            print(line)
    return bad + sum(not r.ok for r in results)

ns = Collection("metallb")
ns.add_task(converge, default=True)
ns.add_task(fetch)
ns.add_task(convert)
ns.add_task(check)
