"""Every private part of a library the service leans on (tickets_service/internals.py) is still
there in the installed versions: an upgrade that moves one fails here, by name, not quietly
in production."""

import importlib

import pytest

from tickets_service.internals import ON_INSTANCES, PRIVATE


def resolve(dotted: str):
    """A module's attribute by its dotted path (the module being the longest importable part)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            target = getattr(target, part)
        return target
    raise ImportError(dotted)


SET_ON_INSTANCES = {f"{owner}.{name}" for owner, names in ON_INSTANCES.items() for name in names}


@pytest.mark.parametrize("name", sorted(set(PRIVATE) - SET_ON_INSTANCES))
def test_each_private_name_still_resolves(name):
    assert resolve(name) is not None


@pytest.mark.parametrize(
    ("owner", "attribute"),
    [(owner, attribute) for owner, names in ON_INSTANCES.items() for attribute in names],
)
def test_each_private_instance_attribute_is_still_set(owner, attribute):
    assert hasattr(resolve(owner)("probe", __name__), attribute)


def test_every_instance_attribute_is_named_among_the_private_parts():
    assert set(PRIVATE) >= SET_ON_INSTANCES
