"""metallb's steps from facts: the controller/webhook wait and the CR diff in check mode."""

from __future__ import annotations

import json

import pytest

from runbooks.core.facts import FactResult
from runbooks.metallb.plan import ControllerReady, CustomResources

POOL = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "default", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.168.20.0/28"], "autoAssign": True}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
          "metadata": {"name": "greenroom-bgp-edge", "namespace": "metallb-system"},
          "stringData": {"password": "s3cret-pw"}}


def _ok(obj: object) -> FactResult:
    return FactResult(0, json.dumps(obj))


MISSING = FactResult(1, 'Error from server (NotFound): deployments.apps "controller" not found')
AVAILABLE = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
STARTING = {"status": {"conditions": [{"type": "Available", "status": "False"}]}}
WITH_EP = {"subsets": [{"addresses": [{"ip": "10.42.0.10"}]}]}
NO_EP = {"subsets": []}

WAIT_CASES = [
    ("not-installed", MISSING, MISSING, "controller not Available"),
    ("starting", _ok(STARTING), _ok(NO_EP), "controller not Available"),
    ("no-endpoints-yet", _ok(AVAILABLE), _ok(NO_EP), "webhook has no endpoints"),
    ("ready", _ok(AVAILABLE), _ok(WITH_EP), None),
]


def test_controller_ready_waits_until_available_and_endpoints() -> None:
    step = ControllerReady("k3s kubectl")
    assert set(step.facts()) == {"deploy", "endpoints"}
    for name, deploy, endpoints, summary in WAIT_CASES:
        changes = step.plan({"deploy": deploy, "endpoints": endpoints})
        if summary is None:
            assert changes == [], name
        else:
            assert len(changes) == 1 and summary in changes[0].summary, name
            command = changes[0].actions[0].command
            assert "wait --for=condition=Available" in command and "metallb-webhook-service" \
                in command, name


def test_cr_diff_in_check_mode_hides_secret_values() -> None:
    step = CustomResources("CRs", [SECRET, POOL], prefix="k3s kubectl", retry_for=10)
    current_pool = json.loads(json.dumps(POOL))
    current_pool["spec"]["addresses"] = ["192.168.30.0/28"]
    current_pool["metadata"]["uid"] = "1234"  # added by the API: not a difference
    # one kubectl reads both (one namespace); the Secret is not there yet
    changes = step.plan({"objects metallb-system": _ok({"kind": "List",
                                                        "items": [current_pool]})})
    assert len(changes) == 1
    diff = changes[0].diff
    assert "-  - 192.168.30.0/28" in diff and "+  - 192.168.20.0/28" in diff
    assert "uid" not in diff
    assert "s3cret-pw" not in diff and "password: '********'" in diff
    assert "apply -f -" in changes[0].actions[0].command


def test_cr_converged_means_no_change() -> None:
    step = CustomResources("CRs", [POOL], prefix="k3s kubectl", retry_for=10)
    current = dict(POOL, status={}, metadata=dict(POOL["metadata"], uid="1"))
    assert step.plan({"objects metallb-system": _ok(current)}) == []


def test_microk8s_addon_enabled_is_refused_with_the_reason() -> None:
    import pytest

    from runbooks.core.steps import StepFailed
    from runbooks.metallb.plan import NoMicrok8sAddon

    step = NoMicrok8sAddon()
    assert step.plan({"addon": FactResult(0, "disabled\n")}) == []
    with pytest.raises(StepFailed, match="microk8s disable metallb"):
        step.plan({"addon": FactResult(0, "enabled\n")})


def _fake_kubectl(tmp_path, refusals: int, error: str = "") -> str:
    """A stand-in `kubectl` script: refuses like a webhook `refusals` times, then applies."""
    count = tmp_path / "count"
    count.write_text("0")
    script = tmp_path / "kubectl"
    script.write_text(
        f"#!/bin/sh\ncat >/dev/null\nn=$(cat {count}); echo $((n + 1)) > {count}\n"
        f"if [ -n {error!r} ]; then echo {error!r} >&2; exit 1; fi\n"
        f"if [ \"$n\" -lt {refusals} ]; then echo 'Error from server (InternalError): failed "
        "calling webhook \"x\": connect: connection refused' >&2; exit 1; fi\n"
        "echo 'ipaddresspool.metallb.io/default created'\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(("refusals", "retry_for", "error", "rc", "tries", "said"), [
    pytest.param(0, 90, "", 0, 1, "default created", id="accepted-at-once"),
    pytest.param(1, 90, "", 0, 2, "applied after 1 webhook refusal(s)", id="refused-once"),
    pytest.param(5, 0, "", 1, 1, "still refused by the webhook after 1 tries in 0 s",
                 id="no-retry-time-left"),
    pytest.param(0, 90, "error: schema says no", 1, 1, "schema says no",
                 id="other-errors-are-not-retried"),
])
def test_apply_script_retries_only_webhook_refusals(tmp_path, refusals, retry_for, error, rc,
                                                    tries, said) -> None:
    import subprocess

    from runbooks.common.kubectl import apply_script

    kubectl = _fake_kubectl(tmp_path, refusals, error)
    done = subprocess.run(["sh", "-c", apply_script(kubectl, retry_for)], input="{}",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == rc, done.stderr
    assert int((tmp_path / "count").read_text()) == tries
    assert said in done.stdout + done.stderr
