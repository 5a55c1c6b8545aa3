"""How many of a task set's facts the ingested passages can ground, under the old and the strict rule.

The manual's pages are cut into chunks as the ingestion Job cuts them (MiniLM's tokenizer,
postgres-manual.yaml's maxTokens and overlapTokens); for each expected fact it counts the facts
some chunk of a supporting page holds by its digits or words (the old rule), states as a quantity
or phrase anywhere (not negated), and states near the thing asked (scoring.supports, the rule a
cited passage is held to). A fact no chunk states near its subject cannot be grounded by any
citation, however good the retrieval.

    .venv/bin/python -m e2e.eval.chunk_support [--tasks e2e/eval/postgres-manual-tasks.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from agentfleet_eval.claims import fact_stated, numbers_in
from agentfleet_eval.scoring import subjects, supports
from agentfleet_eval.taskset import load_taskset

from e2e.eval.corpus import OBJECTS, TASKS, ensure_manual


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=Path, default=TASKS)
    args = ap.parse_args()
    from tokenizers import Tokenizer

    from agentfleet_runtime.ingest.chunking import chunk_document
    from agentfleet_runtime.ingest.documents import html_to_text
    from agentfleet_runtime.ingest.minilm import package_model_dir

    objects = yaml.safe_load_all(OBJECTS.read_text())
    spec = next(d for d in objects if d and d.get("kind") == "VectorIndex")["spec"]["chunking"]
    tok = Tokenizer.from_file(str(package_model_dir() / "tokenizer.json"))

    def count(texts):
        return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    manual = ensure_manual()
    chunks: dict[str, list[str]] = {}
    n = digits = stated = near = 0
    for t in load_taskset(args.tasks).tasks:
        for s in t.supporting:
            if s not in chunks:
                text = html_to_text((manual / s).read_text(encoding="utf-8"))
                cut = chunk_document(s, text, count, spec["maxTokens"], spec.get("overlapTokens", 0))
                chunks[s] = [c.text for c in cut]
        mine = [c for s in t.supporting for c in chunks[s]]
        for f, subject in zip(t.facts, subjects(t)[0], strict=True):
            n += 1
            digits += any(set(f.numbers) & set(numbers_in(c)) or any(x.lower() in c.lower() for x in f.texts)
                          for c in mine)  # fmt: skip
            stated += any(fact_stated(f, c) for c in mine)
            ok = any(supports(t, f, subject, c) for c in mine)
            near += ok
            if not ok:
                print(f"  no chunk states it near the thing asked: {t.id}: {f.describe()}")
    print(f"{n} facts; a chunk of a supporting page holds the digits or words of {digits}, states {stated},"
          f" states near the thing asked {near}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
