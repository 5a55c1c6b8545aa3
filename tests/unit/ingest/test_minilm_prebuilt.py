"""Where the MiniLM graph is read from: the image's prebuilt one first (built by the Dockerfile's
build stage, so no pod quantizes at start), else the writable cache."""

from __future__ import annotations

from pathlib import Path

from agentfleet_runtime.ingest import minilm

ROOT = Path(__file__).parents[3]


def test_the_images_prebuilt_graph_is_read_before_the_cache(tmp_path, monkeypatch) -> None:
    pre, cache = tmp_path / "prebuilt", tmp_path / "cache"
    monkeypatch.setenv("AGENTFLEET_CACHE_DIR", str(cache))
    monkeypatch.setenv("AGENTFLEET_PREBUILT_DIR", str(pre))
    packaged = minilm.package_model_dir()
    keyed = cache / f"minilm-int8-{minilm._cache_key(packaged, 'int8')}.onnx"
    assert minilm.graph_path(packaged, "int8") == keyed  # nothing prebuilt: built into the cache
    pre.mkdir()
    (pre / minilm.prebuilt_name("int8")).write_bytes(b"graph")
    assert minilm.graph_path(packaged, "int8") == pre / minilm.prebuilt_name("int8")
    assert minilm.graph_path(packaged, "fp32").parent == cache  # no fp32 graph in the image

    # Another model directory (a user's weights) never takes the packaged model's graph.
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"weights")
    assert minilm.graph_path(other, "int8").parent == cache


def test_without_a_prebuilt_dir_the_cache_serves(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AGENTFLEET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AGENTFLEET_PREBUILT_DIR", raising=False)
    assert minilm.graph_path(minilm.package_model_dir(), "int8").parent == tmp_path / "cache"


def test_the_image_builds_the_graph_where_its_pods_look() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "prebuild('/opt/agentfleet/prebuilt')" in dockerfile
    assert "AGENTFLEET_PREBUILT_DIR=/opt/agentfleet/prebuilt" in dockerfile


def test_prebuild_writes_a_graph_every_user_can_read(tmp_path, monkeypatch) -> None:
    built: list[Path] = []

    def fake_build(model_dir: Path, precision: str, out: Path) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"graph")
        out.chmod(0o600)  # as build_onnx's mkstemp leaves it
        built.append(out)
        return out

    monkeypatch.setattr(minilm, "build_onnx", fake_build)
    out = minilm.prebuild(tmp_path / "prebuilt")
    assert built == [out] and out.name == minilm.prebuilt_name("int8")
    assert out.stat().st_mode & 0o777 == 0o644
