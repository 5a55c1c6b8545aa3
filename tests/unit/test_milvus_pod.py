"""The Milvus standalone pod's pure builders (e2e/harness/milvus_pod.py): its config and manifests."""

from __future__ import annotations

import pytest
import yaml

from e2e.harness.milvus_pod import BIN, DATA, config_yaml, manifests

TEMPLATE = """etcd:
  endpoints: localhost:{{ etcd_port(int): 2379 }}
  log:
    path: {{ etcd_log_path: stdout }}
  data:
    dir: {{ etcd_data_dir }}
localStorage:
  path: {{ local_storage_dir }} # a comment
rocksmq:
  path: {{ rocksmq_data_dir }}
proxy:
  port: {{ proxy_port(int): 19530 }}
log:
  file:
    rootPath: {{ system_log_path }} # "" means no log file
common:
  security:
    authorizationEnabled: {{ authorization_enabled(bool): false }}
"""


def test_the_template_is_filled_for_a_pod() -> None:
    got = yaml.safe_load(config_yaml(TEMPLATE, "/d"))
    assert got["etcd"] == {
        "endpoints": "localhost:2379",
        "log": {"path": "stdout"},
        "data": {"dir": "/d/data/etcd.data"},
    }
    assert got["localStorage"]["path"] == "/d/data" and got["rocksmq"]["path"] == "/d/data/rocksmq"
    assert got["proxy"]["port"] == 19530 and got["common"]["security"]["authorizationEnabled"] is False
    # An empty string, not null: Milvus logs to stdout only (kubectl logs).
    assert got["log"]["file"]["rootPath"] == ""
    assert "{{" not in config_yaml(TEMPLATE)


def test_a_placeholder_without_a_value_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="new_dir"):
        config_yaml("x: {{ new_dir }}\n")


def test_the_binaries_come_read_only_from_the_node_or_from_the_image() -> None:
    _, deployment, service = manifests("img", "/cache/bin", {"milvus.yaml": ""})
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["bin"] == {"name": "bin", "mountPath": BIN, "readOnly": True}
    assert {"name": "bin", "hostPath": {"path": "/cache/bin", "type": "Directory"}} in pod["volumes"]
    assert container["command"][0] == f"{BIN}/milvus" and container["workingDir"] == DATA
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
    assert service["spec"]["ports"][0]["port"] == 19530
    _, own, _ = manifests("img", None, {})
    own_pod = own["spec"]["template"]["spec"]
    assert all(v["name"] != "bin" for v in own_pod["volumes"])
    assert all(m["name"] != "bin" for m in own_pod["containers"][0]["volumeMounts"])
