"""Prometheus text exposition of an engine's stats, one CollectorRegistry per replica.

A custom collector builds metric families from the pure stats at scrape time, so many replicas
live in one process without sharing prometheus_client's global registry. Counters carry no
``_created`` series, as vLLM's multiprocess-mode /metrics has none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .metrics_spec import LABELS, Flavor, metric_specs
from .quirks import Quirks
from .stats import Histogram

if TYPE_CHECKING:
    from .engine import Engine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EngineCollector:
    def __init__(self, engine: Engine, flavor: Flavor, quirks: Quirks | None = None) -> None:
        self._engine = engine
        self._flavor = flavor
        self._quirks = quirks or Quirks()

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        stats = engine.stats
        cfg = engine.config
        quirks = self._quirks
        names = list(LABELS) if quirks.engine_label else [n for n in LABELS if n != "engine"]
        labels = [cfg.served_name, "0"][: len(names)]
        # lazy_series: nothing but gauges until the first request has finished.
        seen = sum(stats.request_success.values()) > 0
        for spec in metric_specs(self._flavor):
            value = getattr(stats, spec.source)
            if spec.kind != "gauge" and quirks.lazy_series and not seen:
                continue
            if spec.kind == "gauge":
                family: Metric = GaugeMetricFamily(spec.name, spec.documentation, labels=names)
                family.add_metric(labels, float(value))
            elif spec.kind == "counter":
                if spec.extra_label:
                    extra = quirks.finish_reason_label if spec.extra_label == "finished_reason" else spec.extra_label
                    family = CounterMetricFamily(spec.name, spec.documentation, labels=[*names, extra])
                    for reason, count in value.items():
                        if count or not quirks.lazy_series:
                            family.add_metric([*labels, reason], float(count))
                else:
                    family = CounterMetricFamily(spec.name, spec.documentation, labels=names)
                    family.add_metric(labels, float(value))
            else:
                hist: Histogram = value
                family = HistogramMetricFamily(spec.name, spec.documentation, labels=names)
                buckets = [(floatToGoString(bound), float(count)) for bound, count in hist.cumulative()]
                family.add_metric(labels, buckets, sum_value=hist.sum)
            yield family
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=[
                "block_size",
                "cache_dtype",
                "enable_prefix_caching",
                "engine",
                "gpu_memory_utilization",
                "num_gpu_blocks",
            ],
        )
        info.add_metric(
            [str(cfg.block_size), "auto", str(cfg.enable_prefix_caching), "0", "0.9", str(cfg.num_blocks)], 1.0
        )
        yield info


def make_registry(engine: Engine, flavor: Flavor = Flavor.CURRENT, quirks: Quirks | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine, flavor, quirks))
    return registry


def render_metrics(engine: Engine, flavor: Flavor = Flavor.CURRENT, quirks: Quirks | None = None) -> bytes:
    return generate_latest(make_registry(engine, flavor, quirks))
