"""An OpenAI-compatible ``/v1/embeddings`` client (vLLM, TEI, OpenAI itself), stdlib HTTP only.

Token counts for chunking use the MiniLM WordPiece tokenizer when its package is installed (a
close proxy for BERT-family embedding models) and a words x 1.3 estimate otherwise; the remote
model's tokenizer is not available offline. Keep spec.chunking.maxTokens well under the remote
model's window when the tokenizers differ.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

import numpy as np

from agentfleet_runtime.ingest.embedding import EmbeddingError, normalize

RETRIES = 4
TIMEOUT_SECONDS = 60.0
DEFAULT_WINDOW = 512
_WORDS = re.compile(r"\w+|[^\w\s]")


def _fallback_counter() -> Callable[[Sequence[str]], list[int]]:
    try:
        from tokenizers import Tokenizer

        from agentfleet_runtime.ingest.minilm import package_model_dir

        tok = Tokenizer.from_file(str(package_model_dir() / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        return lambda texts: [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]
    except Exception:  # noqa: BLE001 - any failure means: estimate instead
        return lambda texts: [math.ceil(len(_WORDS.findall(t)) * 1.3) for t in texts]


class OpenAIEmbedder:
    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        dimension: int | None = None,
        window: int = DEFAULT_WINDOW,
        normalize_vectors: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = endpoint.rstrip("/")
        self.url = base + ("/embeddings" if base.endswith("/v1") else "/v1/embeddings")
        self.model = model
        self.api_key = api_key
        self.batch_size = max(1, batch_size)
        self._dimension = dimension
        self._window = window
        self._normalize = normalize_vectors
        self._sleep = sleep
        self._count = _fallback_counter()

    @property
    def name(self) -> str:
        return self.model

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    @property
    def max_input_tokens(self) -> int:
        return self._window - 2

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._count(texts)

    def _post(self, inputs: list[str]) -> list[list[float]]:
        body = json.dumps({"model": self.model, "input": inputs, "encoding_format": "float"}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(RETRIES + 1):
            if attempt:
                self._sleep(min(0.5 * 2**attempt, 15.0))
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:  # noqa: S310 - endpoint comes from the spec
                    payload = json.loads(resp.read())
                data = sorted(payload["data"], key=lambda d: d["index"])
                if len(data) != len(inputs):
                    raise EmbeddingError(f"{self.url} returned {len(data)} embeddings for {len(inputs)} inputs")
                return [d["embedding"] for d in data]
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode(errors="replace")
                last = f"HTTP {e.code} from {self.url}: {detail}"
                if e.code < 500 and e.code not in (408, 429):
                    raise EmbeddingError(last) from e
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"cannot reach {self.url}: {getattr(e, 'reason', e)}"
            except (KeyError, TypeError, ValueError) as e:
                raise EmbeddingError(f"unexpected answer from {self.url}: {e}") from e
        raise EmbeddingError(last + f" (after {RETRIES + 1} attempts)", retryable=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._post(list(texts[start : start + self.batch_size])))
        if not rows:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        out = np.asarray(rows, dtype=np.float32)
        if self._dimension is not None and out.shape[1] != self._dimension:
            raise EmbeddingError(
                f"{self.model} at {self.url} returned {out.shape[1]} values per vector, expected {self._dimension}"
            )
        self._dimension = out.shape[1]
        return normalize(out) if self._normalize else out
