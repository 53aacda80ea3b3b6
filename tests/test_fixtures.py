"""Every fixture in fixtures/dsn analyses to what its expectation file says (see fixtures/dsn/README.md).

Cases are the ``*.eml`` files with their ``*.json`` beside them, plus the large malformed inputs
that ``fixtures/dsn/make_malformed.py`` builds in memory rather than storing.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bouncd.analyze import analyze
from bouncd.records import Kind, RecipientResult, Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dsn"
CHECKED_KEYS = ("recipient", "hard", "reason", "status", "reply_code", "action")


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_malformed", FIXTURES / "make_malformed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cases() -> dict[str, tuple[Callable[[], bytes], dict[str, Any]]]:
    """Case id -> (raw bytes loader, expectation)."""
    cases: dict[str, tuple[Callable[[], bytes], dict[str, Any]]] = {}
    for eml in sorted(FIXTURES.glob("*.eml")):
        expect_file = eml.with_suffix(".json")
        expect = json.loads(expect_file.read_text()) if expect_file.exists() else {}
        cases[eml.stem] = (eml.read_bytes, expect)
    generator = _load_generator()
    for name in generator.LARGE:
        cases[name] = (functools.partial(generator.build, name), dict(generator.EXPECT))
    return cases


CASES = _cases()
IDS = sorted(CASES)


@cache
def _report(case_id: str) -> Report:
    load, _ = CASES[case_id]
    return analyze(load())


def _describe(report: Report) -> str:
    rows = "\n".join(
        f"    {r.recipient} hard={r.hard} reason={r.reason} status={r.status} reply_code={r.reply_code} "
        f"action={r.action} rule={r.rule} evidence={r.evidence[:60]!r}"
        for r in report.results
    )
    return f"got kind={report.kind} detector={report.detector} error={report.error!r}\n{rows}"


Pairs = list[tuple[dict[str, Any], RecipientResult | None]]


def _pair(expected: list[dict[str, Any]], got: tuple[RecipientResult, ...]) -> Pairs:
    """Expected rows with the result for the same recipient; rows without a recipient take the rest in order."""
    left = list(got)
    pairs: Pairs = []
    for exp in sorted(expected, key=lambda e: "recipient" not in e):
        if "recipient" in exp:
            hit = next((g for g in left if g.recipient == exp["recipient"]), None)
        else:
            hit = left[0] if left else None
        if hit is not None:
            left.remove(hit)
        pairs.append((exp, hit))
    return pairs


def test_every_fixture_has_an_expectation_file() -> None:
    """No fixture is silently skipped for want of its .json, and every expectation names a kind."""
    assert len(CASES) >= 45
    missing = [case_id for case_id, (_, expect) in CASES.items() if "kind" not in expect]
    assert not missing, f"fixtures without an expectation (or without 'kind'): {missing}"


@pytest.mark.parametrize("case_id", IDS)
def test_fixture_matches_its_expectation(case_id: str) -> None:
    """The kind, the error, the number of rows and each asserted field agree with the expectation file."""
    _, expect = CASES[case_id]
    report = _report(case_id)
    detail = _describe(report)
    assert str(report.kind) == expect["kind"], detail
    if expect.get("error"):
        assert report.error, f"expected an error text\n{detail}"
    if "results" not in expect:
        return
    assert len(report.results) == len(expect["results"]), detail
    for exp, got in _pair(expect["results"], report.results):
        assert got is not None, f"no result for {exp}\n{detail}"
        for key in CHECKED_KEYS:
            if key in exp:
                assert getattr(got, key) == exp[key], f"{key}: expected {exp[key]!r}, got {getattr(got, key)!r}\n{detail}"


@pytest.mark.parametrize("case_id", IDS)
def test_fixture_is_safe_whatever_its_expectation(case_id: str) -> None:
    """No fixture raises; non-bounces and delay notices are never hard; a temporary code is hard only as user unknown."""
    report = _report(case_id)
    if report.kind != Kind.BOUNCE:
        assert not any(r.hard for r in report.results), _describe(report)
    for r in report.results:
        assert not (r.action == "delayed" and r.hard), f"{r.recipient}: a delay notice was called hard\n{_describe(report)}"
        temporary = (r.status or "").startswith("4") or (r.reply_code or "").startswith("4")
        if temporary and r.hard:
            # 450 4.1.1 "user unknown" in a final report is a dead address (the status class lies).
            assert r.reason == "userunknown", f"{r.recipient}: a temporary failure was called hard\n{_describe(report)}"
