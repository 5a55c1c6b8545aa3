"""The AgentFleet pass's own act and refusal paths, against the in-memory API of test_agentfleet_pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from agentfleet_contract.runtime_config import token_line
from kubernetes.dynamic.exceptions import ConflictError

from agentfleet.controllers import agentfleet as ctl
from tests.unit.controllers.test_agentfleet_pass import FakeKube, fleet, mrs, recorder, up


def test_an_invalid_spec_is_refused_once_with_ready_false_and_nothing_applied() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    events = recorder(kube)
    bad = fleet(workers={"replicas": "many"})
    for _ in range(2):
        again = ctl.AgentFleetPass(kube, events, copy.deepcopy(bad), probe=up).run()
        assert again is None  # a spec change brings the next pass
    st = kube.status_writes[-1][0]["status"]
    assert set(st) == {"observedGeneration", "conditions"}
    (ready,) = st["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "spec.workers.replicas" in ready["message"]
    assert [e[1] for e in kube.events] == ["InvalidSpec"] and not kube.applied and not kube.created


class RacingKube(FakeKube):
    """Another writer creates the generated Secret between the pass's read and its create."""

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        super().create({**body, "stringData": {k: "theirs" for k in body["stringData"]}})
        raise ConflictError(type("E", (), {"status": 409, "reason": "AlreadyExists", "body": "", "headers": {}})())


def test_a_generated_secret_made_by_another_writer_mid_pass_applies_nothing_rendered_with_ours() -> None:
    # The runtime ConfigMap carries the token's hash: rendered with this pass's value, it must not
    # be applied once the Secret holds another. The next pass (backoff) reads theirs.
    kube = RacingKube({("ModelReplicaSet", "llama"): mrs()})
    with pytest.raises(ctl.SecretRaced):
        ctl.AgentFleetPass(kube, recorder(kube), fleet(), probe=up).run()
    assert not [o for o in kube.applied if o["kind"] in ("ConfigMap", "Deployment")]
    kube.__class__ = FakeKube
    ctl.AgentFleetPass(kube, recorder(kube), fleet(), probe=up).run()
    cm = kube.objects[("ConfigMap", "support-runtime")]["data"]["api-tokens"]
    assert cm == token_line("default", "theirs") + "\n"
