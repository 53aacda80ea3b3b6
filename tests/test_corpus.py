"""The analyzer against the shared real-world corpus (skipped when ../shared/corpus is absent)."""

from __future__ import annotations

import pytest

from tests.corpus_score import CORPUS, report_text, score

pytestmark = pytest.mark.corpus

if not (CORPUS / "expected.json").exists():
    pytest.skip(f"corpus not found at {CORPUS}", allow_module_level=True)


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return score()


def _fail_report(s) -> str:  # type: ignore[no-untyped-def]
    lines = [report_text(s)]
    for m in s.misses[:80]:
        lines.append(f"  {m['sample']}: {m['what']} expected={m.get('expected')} got={m.get('got')}")
    return "\n".join(lines)


def test_no_soft_bounce_is_ever_called_hard(result) -> None:  # type: ignore[no-untyped-def]
    """Calling a soft bounce hard blocks a real person: zero tolerance."""
    assert result.soft_called_hard == 0, _fail_report(result)


def test_non_bounces_never_produce_hard_rows(result) -> None:  # type: ignore[no-untyped-def]
    """Complaints, auto-replies and delivery notices are never hard."""
    assert result.hard_on_nonbounce == 0, _fail_report(result)


@pytest.mark.parametrize(
    ("metric", "target"),
    [("detected", 0.99), ("hard", 0.99), ("reason", 0.95), ("status", 0.95), ("recipient", 0.99)],
)
def test_corpus_metric_meets_target(result, metric: str, target: float) -> None:  # type: ignore[no-untyped-def]
    """Detection, hardness, reason, status and recipient agree with the corpus at the targets."""
    assert result.ratios()[metric] >= target, _fail_report(result)
