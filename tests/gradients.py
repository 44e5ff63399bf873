"""Central finite differences for the gradient checks."""
from typing import Callable

import numpy


def numeric_gradient(param: numpy.ndarray, loss: Callable[[], float], eps: float) -> numpy.ndarray:
    """d loss / d param, entry by entry: ``param`` is moved in place by +-``eps`` (and put
    back) while ``loss()`` reads it. Output: float64, ``param``'s shape."""
    numeric = numpy.zeros(param.shape, dtype="float64")
    for index in numpy.ndindex(*param.shape):
        old = param[index]
        param[index] = old + eps
        up = loss()
        param[index] = old - eps
        down = loss()
        param[index] = old
        numeric[index] = (up - down) / (2 * eps)
    return numeric
