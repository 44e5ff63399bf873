"""No pickle in model files: a trained pipeline of every architecture, saved with
``to_disk`` / ``to_bytes``, loads with unpickling disabled and predicts the same."""
import pickle
from pathlib import Path

import pytest
import spacy
import srsly

torch = pytest.importorskip("torch", reason="the recurrent extra (torch) is not installed")
from thinc.api import PyTorchWrapper_v2

from spacy_seqlab.layers.torch_wrapper import deserialize_state, serialize_state

from .tiny_pipelines import PIPELINES, assert_same_predictions, predictions, train


def refuse(*args, **kwargs):
    raise AssertionError("unpickling attempted")


class RefusingUnpickler:
    def __init__(self, *args, **kwargs):
        refuse()


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every way in to an unpickler raises: pickle's, torch's and srsly's."""
    for module, name in [(pickle, "loads"), (pickle, "load"), (torch, "load"),
                         (torch.serialization, "load"), (srsly, "pickle_loads")]:
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", list(PIPELINES))
def test_saved_pipeline_loads_without_unpickling_and_predicts_the_same(name, tmp_path, request):
    factory, config = PIPELINES[name]
    nlp = train(factory, config)
    expected = predictions(nlp)
    assert any(expected)  # something to compare: tokens tagged / entities found
    nlp.to_disk(tmp_path)
    data = nlp.to_bytes()
    request.getfixturevalue("no_unpickling")
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe(factory, config=config)
    from_bytes.from_bytes(data)
    for reloaded in (spacy.load(tmp_path), from_bytes):
        assert_same_predictions(predictions(reloaded), expected, rtol=1e-5)


def test_the_guard_catches_thincs_default_torch_serialization(tmp_path, no_unpickling):
    """thinc's own PyTorchWrapper stores a torch pickle: loading it trips the guard."""
    model = PyTorchWrapper_v2(torch.nn.Linear(3, 2))
    data = model.to_bytes()
    with pytest.raises(AssertionError, match="unpickling attempted"):
        PyTorchWrapper_v2(torch.nn.Linear(3, 2)).from_bytes(data)


def test_state_round_trips_as_named_arrays():
    source = torch.nn.LSTM(3, 4, bidirectional=True)
    data = serialize_state(source)
    assert set(srsly.msgpack_loads(data)) == set(source.state_dict())
    target = deserialize_state(torch.nn.LSTM(3, 4, bidirectional=True), data, torch.device("cpu"))
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value)


def test_a_torch_pickle_state_is_refused_with_a_clear_error(tmp_path):
    path = Path(tmp_path) / "state.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ValueError, match="not msgpack-encoded named arrays.*retrain"):
        deserialize_state(torch.nn.Linear(3, 2), path.read_bytes(), torch.device("cpu"))
