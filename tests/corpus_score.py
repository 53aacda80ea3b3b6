"""Score the analyzer against ../shared/corpus (used by tests/test_corpus.py and runnable by hand).

    python tests/corpus_score.py [--misses] [--family lhost-exim]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bouncd.analyze import analyze  # noqa: E402
from bouncd.records import RecipientResult  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"


@dataclass
class Score:
    samples: int = 0
    bounce_samples: int = 0
    detected: int = 0
    rows: int = 0
    hard_ok: int = 0
    soft_called_hard: int = 0
    hard_on_nonbounce: int = 0
    reason_ok: int = 0
    status_rows: int = 0
    status_ok: int = 0
    rcpt_rows: int = 0
    rcpt_ok: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)

    def ratios(self) -> dict[str, float]:
        def r(a: int, b: int) -> float:
            return a / b if b else 1.0

        return {
            "detected": r(self.detected, self.bounce_samples),
            "hard": r(self.hard_ok, self.rows),
            "reason": r(self.reason_ok, self.rows),
            "status": r(self.status_ok, self.status_rows),
            "recipient": r(self.rcpt_ok, self.rcpt_rows),
        }


def pair_rows(expected: list[dict[str, Any]], got: list[RecipientResult]) -> list[tuple[dict[str, Any], RecipientResult | None]]:
    """Pair expected rows with results: by recipient first, then in order."""
    left = list(got)
    pairs: list[tuple[dict[str, Any], RecipientResult | None]] = []
    pending = []
    for exp in expected:
        rc = exp.get("recipient")
        hit = next((g for g in left if rc and g.recipient == rc), None)
        if hit is not None:
            left.remove(hit)
            pairs.append((exp, hit))
        else:
            pending.append(exp)
    for exp in pending:
        # prefer a result with the same reason, then any
        hit = next((g for g in left if g.reason == exp["reason"]), None) or (left[0] if left else None)
        if hit is not None:
            left.remove(hit)
        pairs.append((exp, hit))
    return pairs


def score(corpus: Path = CORPUS, family: str | None = None) -> Score:
    entries = json.loads((corpus / "expected.json").read_text())
    s = Score()
    for entry in entries:
        if family and entry["family"] != family:
            continue
        raw = (corpus / "eml" / entry["sample"]).read_bytes()
        report = analyze(raw)
        s.samples += 1
        is_bounce = entry["kind"] == "bounce"
        if is_bounce:
            s.bounce_samples += 1
            if str(report.kind) == "bounce" and report.results:
                s.detected += 1
            else:
                s.misses.append({"sample": entry["sample"], "what": "not detected", "kind": str(report.kind),
                                 "detector": report.detector, "error": report.error})
        else:
            s.hard_on_nonbounce += sum(1 for r in report.results if r.hard)
        for exp, got in pair_rows(entry["expected"], list(report.results)):
            s.rows += 1
            hard = bool(got and got.hard)
            if hard == exp["hard"]:
                s.hard_ok += 1
            if hard and not exp["hard"]:
                s.soft_called_hard += 1
            reason = got.reason if got else None
            if reason == exp["reason"]:
                s.reason_ok += 1
            st = exp.get("status")
            status_scored = bool(st) and ".9" not in st[1:4] and not st.split(".")[-1].startswith("9")
            if st and not st.startswith(("5.0.9", "4.0.9")) and status_scored:
                s.status_rows += 1
                if got and got.status == st:
                    s.status_ok += 1
            else:
                status_scored = False
            rc = exp.get("recipient")
            if rc:
                s.rcpt_rows += 1
                if got and got.recipient == rc:
                    s.rcpt_ok += 1
            wrong = []
            if hard != exp["hard"]:
                wrong.append("hard")
            if reason != exp["reason"]:
                wrong.append("reason")
            if status_scored and (not got or got.status != st):
                wrong.append("status")
            if rc and (not got or got.recipient != rc):
                wrong.append("recipient")
            if wrong:
                s.misses.append({
                    "sample": entry["sample"], "what": ",".join(wrong),
                    "expected": exp,
                    "got": None if got is None else {
                        "recipient": got.recipient, "reason": got.reason, "hard": got.hard,
                        "status": got.status, "reply_code": got.reply_code, "rule": got.rule,
                        "diagnostic": got.diagnostic[:300], "detector": report.detector,
                    },
                })
    return s


def report_text(s: Score) -> str:
    lines = [f"samples={s.samples} bounce_samples={s.bounce_samples} rows={s.rows}"]
    for k, v in s.ratios().items():
        lines.append(f"  {k:10s} {v:7.2%}")
    lines.append(f"  soft rows called hard: {s.soft_called_hard}; hard rows on non-bounces: {s.hard_on_nonbounce}")
    by_family: Counter[str] = Counter()
    for m in s.misses:
        by_family[m["sample"].rsplit("-", 1)[0]] += 1
    lines.append("misses by family: " + ", ".join(f"{k}={v}" for k, v in by_family.most_common()))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", action="store_true")
    ap.add_argument("--family")
    ap.add_argument("--what", help="only misses whose kinds include this (hard, reason, status, recipient)")
    args = ap.parse_args()
    s = score(family=args.family)
    if args.misses:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in s.misses:
            if args.what and args.what not in m["what"]:
                continue
            grouped[m["sample"]].append(m)
        for _sample, ms in sorted(grouped.items()):
            for m in ms:
                print(json.dumps(m, ensure_ascii=False))
    print(report_text(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
