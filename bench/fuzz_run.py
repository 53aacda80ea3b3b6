"""A longer, seeded, time-bounded fuzz run of the analyzer; prints how many inputs it tried.

    .venv/bin/python bench/fuzz_run.py [--seconds 60] [--seed 1] [--save DIR]

Each input is one of: a mutation of a ``fixtures/dsn/*.eml`` message (cuts, byte flips, inserted NULs,
CRs, boundaries and encoded-word starts, duplicated stretches, refolding), a hostile MIME structure
(wrong or empty boundaries, deep nesting, broken base64 / quoted-printable, odd charsets, thousands of
headers, giant lines), or random bytes. Every input is handed to :func:`bouncd.analyze.analyze`, as the
processing loop does. The same seed gives the same inputs in the same order, so ``--seed S`` with the
printed input number reproduces a failure; ``--save DIR`` also writes each failing input to DIR.

Exit status 1 when any input raised or produced a recipient that is not an address.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bouncd.analyze import analyze  # noqa: E402

FIXTURES = [p.read_bytes() for p in sorted((ROOT / "fixtures" / "dsn").glob("*.eml"))]
INSERTS = [b"\x00", b"\r", b"\n\n", b"--", b"=?utf-8?B?", b"=?iso-2022-jp?q?=1B$B", b"boundary=\"\"", b"\xff\xfe",
           b"Content-Transfer-Encoding: base64\n", b"Content-Type: multipart/report; boundary=Z\n", b"Status: 5.",
           b"<@>"]  # fmt: skip
CHARSETS = [b"utf-8", b"utf-7", b"iso-2022-jp", b"x-unknown", b"", b"\x00", b"gb18030", b"utf-16"]


def mutate(rng: random.Random) -> bytes:
    """A fixture with 1-8 random damages."""
    raw = bytearray(rng.choice(FIXTURES))
    for _ in range(rng.randint(1, 8)):
        if not raw:
            break
        at = rng.randrange(len(raw))
        op = rng.randrange(7)
        if op == 0:
            del raw[at:]
        elif op == 1:
            for _ in range(rng.randint(1, 30)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif op == 2:
            raw[at:at] = rng.choice(INSERTS)
        elif op == 3:
            del raw[at : at + rng.randint(1, 4000)]
        elif op == 4:
            raw[at:at] = raw[at : at + rng.randint(1, 3000)] * rng.randint(2, 30)
        elif op == 5:
            raw = bytearray(bytes(raw).replace(b"\n", rng.choice([b"\r\n", b"\n ", b"\r", b"\n\t"]), rng.randint(1, 200)))
        else:
            raw = bytearray(bytes(raw).replace(b"boundary=", rng.choice([b"boundary=X", b"boundary= ", b"x-boundary="]), 1))
    return bytes(raw)


def hostile(rng: random.Random) -> bytes:
    """A message-shaped structure meant to hurt a MIME parser."""
    eol = rng.choice([b"\r\n", b"\n", b"\r"])
    boundary = rng.choice([b"B", b"", b"B B", b"\x00", b"-" * 70, b"==?=", b"\xff"])
    lines = [b"From: MAILER-DAEMON@x.example", b"Subject: Undelivered Mail Returned to Sender"]
    lines += [b"X-H%d: %s" % (i, b"v" * rng.randrange(100)) for i in range(rng.choice([0, 10, 1000, 6000]))]
    lines.append(b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"" + boundary + b"\"")
    lines.append(b"")
    for i in range(rng.choice([0, 1, 5, 50, 300])):
        lines += [b"--" + boundary, b"Content-Type: multipart/mixed; boundary=\"n%d\"" % i, b""]
        boundary = b"n%d" % i
    for _ in range(rng.randint(0, 5)):
        lines += [b"--" + rng.choice([boundary, b"WRONG", boundary + b"--"]),
                  b"Content-Type: " + rng.choice([b"message/delivery-status", b"text/plain; charset=", b"message/rfc822",
                                                  b"text/rfc822-headers"]) + rng.choice(CHARSETS),
                  b"Content-Transfer-Encoding: " + rng.choice([b"base64", b"quoted-printable", b"8bit", b"x-uue"]),
                  b""]  # fmt: skip
        lines.append(rng.choice([b"Final-Recipient: rfc822; u@example.org" + eol + b"Action: failed" + eol + b"Status: 5.1.1",
                                 b"!!not base64==", b"=ZZ=\x00=", b"\x00" * 200, rng.randbytes(rng.randrange(500))]))  # fmt: skip
    if rng.random() < 0.2:
        lines.append(b"y" * rng.choice([10_000, 1_000_000, 5_000_000]))
    if rng.random() < 0.5:
        lines.append(b"--" + boundary + b"--")
    return eol.join(lines)


def one_input(rng: random.Random) -> bytes:
    """The next input: mostly mutated real bounces, some hostile structures, a few random byte strings."""
    pick = rng.random()
    if pick < 0.6:
        return mutate(rng)
    if pick < 0.9:
        return hostile(rng)
    return rng.randbytes(rng.randrange(5000))


def main(argv: list[str] | None = None) -> int:
    """Run until the time is up; print the count, the rate, the slowest input and peak memory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", type=Path, help="write failing inputs here")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    tried = failures = 0
    slowest = (0.0, -1)
    while time.perf_counter() - started < args.seconds:
        raw = one_input(rng)
        t0 = time.perf_counter()
        try:
            report = analyze(raw)
            bad = [r.recipient for r in report.results if r.recipient is not None and "@" not in r.recipient]
            if bad:
                raise AssertionError(f"recipients that are not addresses: {bad[:3]}")
        except Exception:
            failures += 1
            print(f"input {tried} (seed {args.seed}, {len(raw)} bytes) failed:\n{traceback.format_exc()}", file=sys.stderr)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"seed{args.seed}_input{tried}.eml").write_bytes(raw)
        took = time.perf_counter() - t0
        slowest = max(slowest, (took, tried))
        tried += 1
    elapsed = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fuzz_run: seed {args.seed}: {tried} inputs in {elapsed:.1f} s ({tried / elapsed:.0f}/s), "
          f"{failures} failures, slowest {slowest[0] * 1000:.0f} ms (input {slowest[1]}), peak RSS {rss_mb:.0f} MB")  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
