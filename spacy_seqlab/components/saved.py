"""What a saved spacy_seqlab component carries next to its weights, and the checks
made when it is loaded.

The header (``seqlab`` in the component's directory or bytes) names the component
type that wrote the weights and holds the sha256 of the weight bytes, so that a
directory written by another component type, or weights with flipped or missing
bytes, are refused at load with a ``LoadError`` naming what was expected and what
was found, rather than failing at the first ``nlp(...)`` or loading silently.
"""
import hashlib
from typing import Any, Dict

import srsly

HEADER = "seqlab"
HEADER_VERSION = 1


class LoadError(ValueError):
    """A saved component does not fit the component loading it."""


def make_header(component: str, weights: bytes) -> Dict[str, Any]:
    """The header saved with ``weights`` by a component of type ``component``."""
    return {
        "version": HEADER_VERSION,
        "component": component,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }


def parse_header(data: Any) -> Any:
    """The header from its saved JSON text (None if it does not parse)."""
    try:
        return srsly.json_loads(data)
    except (ValueError, TypeError):
        return None


def check_header(name: str, component: str, header: Any, where: str) -> Dict[str, Any]:
    """``header`` if a ``component`` may load what it describes, else LoadError."""
    if not isinstance(header, dict) or "component" not in header or "weights_sha256" not in header:
        raise LoadError(
            f"[{name}] could not load {where}: it has no valid spacy_seqlab header "
            f"({HEADER!r}), so it was not saved by a spacy_seqlab {component} (or the "
            f"header is corrupted); found {header!r:.200}"
        )
    if header["component"] != component:
        raise LoadError(
            f"[{name}] could not load {where}: it was saved by a {header['component']!r} "
            f"component, but this component is a {component!r}"
        )
    return header


def check_weights(name: str, header: Dict[str, Any], weights: bytes, where: str) -> None:
    """LoadError unless the sha256 of ``weights`` is the one in ``header``."""
    found = hashlib.sha256(weights).hexdigest()
    if found != header["weights_sha256"]:
        raise LoadError(
            f"[{name}] could not load {where}: the weights are corrupted or were replaced "
            f"(sha256 {found[:16]}..., {len(weights)} bytes; expected the saved sha256 "
            f"{header['weights_sha256'][:16]}...)"
        )
