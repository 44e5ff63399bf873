"""PyTorch behind thinc, optional and without pickle.

torch comes with the ``recurrent`` extra. Builders of torch layers call
:func:`require_torch` first, so a config naming one fails when it is resolved, with the
extra named, not at a bare ``import torch`` deep inside. :func:`PyTorchArrays` wraps a
torch module as thinc's ``PyTorchWrapper`` does, but serializes its ``state_dict`` as
named numpy arrays in msgpack (thinc's own format) instead of ``torch.save``'s pickle.
"""
import importlib
from types import ModuleType
from typing import Any, Callable

import numpy
import srsly
from thinc.api import Model, PyTorchWrapper_v3

from ..extras import require_extra


def require_torch(what: str) -> ModuleType:
    """The torch module, or an ImportError saying that ``what`` needs the recurrent
    extra, with its ``pip install`` line."""
    require_extra("recurrent", what)
    return importlib.import_module("torch")


def PyTorchArrays(
    module: Any, convert_inputs: Callable, convert_outputs: Callable
) -> Model:
    """thinc's ``PyTorchWrapper`` around ``module`` (a ``torch.nn.Module``), serialized
    through :func:`serialize_state` / :func:`deserialize_state`."""
    return PyTorchWrapper_v3(
        module,
        convert_inputs=convert_inputs,
        convert_outputs=convert_outputs,
        serialize_model=serialize_state,
        deserialize_model=deserialize_state,
    )


def serialize_state(module: Any) -> bytes:
    """``module.state_dict()`` as msgpack of ``{name: numpy array}``."""
    state = module.state_dict()
    return srsly.msgpack_dumps({name: t.detach().cpu().numpy() for name, t in state.items()})


def deserialize_state(module: Any, data: bytes, device: Any) -> Any:
    """Load what :func:`serialize_state` wrote into ``module``, on ``device``."""
    torch = require_torch("Loading a recurrent layer")
    try:
        state = srsly.msgpack_loads(data)
    except ValueError:
        state = None
    if not isinstance(state, dict) or not all(isinstance(a, numpy.ndarray) for a in state.values()):
        raise ValueError(
            f"The weights of torch module {type(module).__name__} are not msgpack-encoded "
            "named arrays. Files written with torch.save (spacy-seqlab before recurrent "
            "weights moved to msgpack) are refused, since reading them would unpickle: "
            "retrain the pipeline."
        )
    # msgpack arrays are read-only views of the message: copy them for torch.
    module.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in state.items()})
    return module.to(device)
