"""Reading the daemon's ``/metrics`` text back with ``prometheus_client``'s own parser, so a
test asserts names, labels and values, not how the library spells a number."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, frozenset[tuple[str, str]]]


def samples(text: str) -> dict[Series, float]:
    """Every sample of the exposition: (sample name, its labels) → value. Raises on text
    that is not the Prometheus text format."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def types(text: str) -> dict[str, str]:
    """Family name → its ``# TYPE`` (counter, gauge, histogram)."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def key(name: str, **labels: str) -> Series:
    return name, frozenset(labels.items())
