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


# words of the tiny test corpora (tests/test_configs.py) that get a vector; others are OOV
VECTOR_WORDS = ["I", "like", "green", "eggs", ".", "She", "ate", "the", "cake", "!", "Dogs",
                "bark", "loudly", "at", "night", "Paris", "is", "very", "big", "in"]


@pytest.fixture(scope="session")
def tiny_vectors(tmp_path_factory) -> Path:
    """A blank English pipeline with a 20 x 8 random vectors table, saved to disk: usable
    as ``[initialize] vectors`` (``paths.vectors``) of the ``*_vectors_*`` configs."""
    import numpy
    import spacy

    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(0)
    for word in VECTOR_WORDS:
        nlp.vocab.set_vector(word, rng.normal(size=(8,)).astype("float32"))
    path = tmp_path_factory.mktemp("tiny_vectors") / "vectors"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small torch ops on 2 busy cores run several times faster on one thread (for the
    modules of the recurrent layers: ``pytestmark = usefixtures("one_torch_thread")``).
    Without torch, the tests that use it skip."""
    torch = pytest.importorskip("torch", reason="the recurrent extra (torch) is not installed")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_unconfigure(config):
    """Drop the log handlers that still write to pytest's capture of stderr. Ray Data's
    console handler keeps the stream ``sys.stderr`` was when ``ray.data`` was first
    imported, inside a test: pytest's capture, closed after the run. A record logged at
    interpreter exit (Ray's own atexit shutdown) would then print a "--- Logging error ---"
    traceback after pytest's summary line."""
    import logging

    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in list(getattr(logger, "handlers", [])):
            stream = getattr(handler, "stream", None)
            if type(stream).__module__.startswith("_pytest"):
                logger.removeHandler(handler)
