"""Shared fixtures. No test may reach a model hub: transformers run offline."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_transformer(tmp_path_factory) -> Path:
    """Directory of a tiny random-weight cased BERT (see tests/tiny_transformer.py)."""
    pytest.importorskip("spacy_transformers", reason="the transformers extra is not installed")
    from .tiny_transformer import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
