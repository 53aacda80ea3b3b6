"""Every detector and rule in the ordered registries is well-formed."""

from __future__ import annotations

from bouncd.classify import STATUS_RULES, TEXT_RULES
from bouncd.parse import DETECTORS, Detector
from bouncd.records import Reason


def test_every_detector_follows_the_protocol_and_has_a_unique_name() -> None:
    """Detectors are objects behind one Protocol, named uniquely."""
    names = [d.name for d in DETECTORS]
    assert len(names) == len(set(names))
    for d in DETECTORS:
        assert isinstance(d, Detector)


def test_every_rule_names_a_known_reason_and_has_a_unique_id() -> None:
    """Rule ids go into the DNC trail: they must be unique and their reasons in the vocabulary."""
    ids = [r.id for r in TEXT_RULES] + [r.id for r in STATUS_RULES]
    assert len(ids) == len(set(ids))
    vocabulary = {str(r) for r in Reason}
    for r in (*TEXT_RULES, *STATUS_RULES):
        assert r.reason in vocabulary, r
