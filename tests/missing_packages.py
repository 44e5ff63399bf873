"""Run Python in a fresh interpreter as if some packages were not installed: importing
them fails and their entry points are hidden from spaCy's registries."""
import importlib.util
from typing import Sequence

import pytest


def without_packages(packages: Sequence[str]) -> str:
    """Source to run first in a ``python -c`` subprocess: every import of a package in
    ``packages`` (or of its submodules) raises ImportError, and the entry points that
    those packages provide are gone."""
    return f"""
import sys
BLOCKED = {tuple(packages)!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
import catalogue, importlib.metadata
catalogue.AVAILABLE_ENTRY_POINTS = importlib.metadata.EntryPoints(
    ep for dist in importlib.metadata.distributions() for ep in dist.entry_points
    if ep.value.split(":")[0].split(".")[0] not in BLOCKED)
"""


# the registered names of the layers that run on torch
TORCH_LAYERS = ("spacy_seqlab.RNNEncoder.v1", "spacy_seqlab.CharBiLSTM.v1")


def skip_without_torch(config_text: str) -> None:
    """Skip the calling test if ``config_text`` builds a torch layer and torch is missing."""
    if importlib.util.find_spec("torch") is None:
        for name in TORCH_LAYERS:
            if name in config_text:
                pytest.skip(f"the recurrent extra (torch) is not installed: the config builds {name}")
