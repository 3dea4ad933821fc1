"""A candidate model as data: its kind and parameters, and how a registry version records it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NAIVE_KEY = "naive()"


@dataclass(frozen=True)
class ModelSpec:
    """What to build: a kind and its parameters. Two specs are the same model if equal."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        rendered = ",".join(f"{name}={self.params[name]}" for name in sorted(self.params))
        return f"{self.kind}({rendered})"


def is_naive(spec_key: str) -> bool:
    return spec_key.startswith("naive(")


def spec_tag(spec: ModelSpec) -> str:
    """The ``spec`` tag of a registry version: kind and parameters as JSON."""
    return json.dumps({"kind": spec.kind, "params": spec.params}, sort_keys=True)


def spec_from_tags(tags: Mapping[str, str]) -> ModelSpec:
    """The specification a version's ``spec`` tag records; naive when it records none."""
    payload = json.loads(tags.get("spec", '{"kind": "naive", "params": {}}'))
    return ModelSpec(payload["kind"], payload.get("params", {}))
