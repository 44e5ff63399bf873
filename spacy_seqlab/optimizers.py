"""SGD with momentum, the optimizer of Ma & Hovy (2016) and Lample et al. (2016); thinc's
``SGD.v1`` has none."""
from typing import Dict, Tuple, Union

from thinc.api import Optimizer
from thinc.backends import get_array_ops
from thinc.types import FloatsXd
from spacy.util import registry

KeyT = Tuple[int, str]


@registry.optimizers("spacy_seqlab.SGDMomentum.v1")
def make_sgd_momentum(
    learn_rate: Union[float, list] = 0.015,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    L2: float = 0.0,
    grad_clip: float = 5.0,
    use_averages: bool = False,
) -> Optimizer:
    """``v = momentum * v + g; w -= learn_rate * v`` per parameter (``nesterov``:
    ``w -= learn_rate * (g + momentum * v)``), after thinc's per-parameter gradient clipping
    to norm ``grad_clip`` and its L2 term ``L2 * w`` added to the gradient. ``learn_rate``
    takes a schedule (e.g. ``decaying.v1``, the papers' ``lr / (1 + decay * t)``)."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"SGDMomentum momentum must be in [0, 1), got {momentum}")
    return SGDMomentum(learn_rate, momentum=momentum, nesterov=nesterov, L2=L2,
                       grad_clip=grad_clip, use_averages=use_averages)


class SGDMomentum(Optimizer):
    """thinc's ``Optimizer`` (schedules, clipping, L2, averages) with a velocity per
    parameter key for its plain SGD step."""

    def __init__(self, learn_rate, *, momentum: float, nesterov: bool, L2: float,
                 grad_clip: float, use_averages: bool) -> None:
        super().__init__(learn_rate, L2=L2, L2_is_weight_decay=False, grad_clip=grad_clip,
                         use_averages=use_averages, beta1=0.0, beta2=0.0)
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity: Dict[KeyT, FloatsXd] = {}

    def __call__(self, key: KeyT, weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0):
        if len(gradient) < 1:
            return weights, gradient
        ops = get_array_ops(weights)
        self.nr_update[key] += 1
        if self.L2 != 0:
            gradient += self.L2 * weights
        if self.grad_clip:
            gradient = ops.clip_gradient(gradient, self.grad_clip)
        velocity = self.velocity.get(key)
        if velocity is None:
            velocity = self.velocity[key] = ops.alloc(weights.shape, dtype=weights.dtype)
        velocity *= self.momentum
        velocity += gradient
        step = gradient + self.momentum * velocity if self.nesterov else velocity
        weights -= lr_scale * self.learn_rate * step
        gradient *= 0
        if self.averages is not None:
            if key not in self.averages:
                self.averages[key] = ops.alloc(weights.shape, dtype="float32")
            ops.update_averages(self.averages[key], weights, self.nr_update[key])
        return weights, gradient
