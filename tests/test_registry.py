"""Every name the package declares through entry points resolves to what spaCy and
thinc expect, from the installed metadata (what `spacy package` users get)."""
from importlib import metadata

import pytest
from spacy.util import registry

GROUPS = {
    "spacy_factories": registry.factories,
    "spacy_architectures": registry.architectures,
    "spacy_scorers": registry.scorers,
    "spacy_callbacks": registry.callbacks,
    "spacy_readers": registry.readers,
    "thinc_layers": registry.layers,
    "thinc_schedules": registry.schedules,
    "thinc_optimizers": registry.optimizers,
}
ENTRY_POINTS = [
    (group, ep)
    for group in GROUPS
    for ep in metadata.distribution("spacy-seqlab").entry_points
    if ep.group == group
]


def test_every_group_declares_names():
    assert {group for group, _ in ENTRY_POINTS} == set(GROUPS)


@pytest.mark.parametrize("group,ep", ENTRY_POINTS, ids=lambda x: getattr(x, "name", x))
def test_entry_point_resolves(group, ep):
    target = ep.load()
    assert callable(target)
    if group != "spacy_factories":
        assert GROUPS[group].get(ep.name) is target
    else:
        assert ep.name in registry.factories
