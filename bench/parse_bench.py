"""Parse-and-classify throughput: messages per second over a directory, in one process, best of a few runs.

    .venv/bin/python bench/parse_bench.py [DIR] [--runs N] [--no-sisimai]

DIR defaults to ``../shared/corpus/eml`` beside the repository when present, else ``fixtures/dsn``.
Each run reads every file from disk and calls :func:`bouncd.analyze.analyze` on it, as the
processing loop does. Peak memory is the process's maximum RSS (``resource.getrusage``).

When Perl's Sisimai is installed (Debian: ``libsisimai-perl``) the same files are timed through
``Sisimai->rise`` (v5) or ``Sisimai->make`` (v4) in one Perl process, best of the same number of
runs, and the ratio is printed; the target is bouncd >= 3x Sisimai on the same machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bouncd.analyze import analyze  # noqa: E402

TARGET_RATIO = 3.0

# Times Sisimai over a directory inside Perl so process start-up and module loading are not counted,
# matching the Python side, which imports bouncd before timing. Prints JSON on the last line.
SISIMAI_SCRIPT = r"""
use strict; use warnings; use Time::HiRes qw(time); use Sisimai;
my ($dir, $runs) = @ARGV;
my $method = Sisimai->can('rise') ? 'rise' : 'make';
my ($best, $rows);
for (1 .. $runs) {
    my $t0 = time;
    my $v = Sisimai->$method($dir, delivered => 1) || [];
    my $e = time - $t0;
    $rows = scalar @$v;
    $best = $e if !defined $best || $e < $best;
}
printf "{\"seconds\": %.6f, \"rows\": %d, \"version\": \"%s\", \"method\": \"%s\"}\n", $best, $rows, $Sisimai::VERSION, $method;
"""


@dataclass(frozen=True, slots=True)
class Result:
    """One tool's best run over the directory."""

    tool: str
    messages: int
    seconds: float
    peak_rss_mb: float
    detail: str = ""

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds else float("inf")


def default_directory() -> Path:
    """The shared corpus when it is there, else the repository's own fixtures."""
    corpus = ROOT.parent / "shared" / "corpus" / "eml"
    return corpus if corpus.is_dir() else ROOT / "fixtures" / "dsn"


def message_files(directory: Path) -> list[Path]:
    """Every ``*.eml`` directly inside ``directory``, sorted."""
    return sorted(p for p in directory.glob("*.eml") if p.is_file())


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Maximum resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def bench_bouncd(files: list[Path], runs: int) -> Result:
    """Best-of-``runs`` wall time to read and analyze every file once."""
    analyze(files[0].read_bytes())  # warm caches and lazy imports outside the timing
    best = float("inf")
    kinds: dict[str, int] = {}
    for _ in range(runs):
        gc.collect()
        kinds = {}
        t0 = time.perf_counter()
        for path in files:
            report = analyze(path.read_bytes())
            kinds[report.kind] = kinds.get(report.kind, 0) + 1
        best = min(best, time.perf_counter() - t0)
    detail = ", ".join(f"{k}={n}" for k, n in sorted(kinds.items()))
    return Result("bouncd", len(files), best, peak_rss_mb(), detail)


def sisimai_available() -> str | None:
    """Why Sisimai cannot be measured, or None when ``perl -MSisimai`` works."""
    if shutil.which("perl") is None:
        return "perl not found"
    probe = subprocess.run(["perl", "-MSisimai", "-e", "1"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return "perl -MSisimai failed (apt-get install libsisimai-perl): " + probe.stderr.strip().splitlines()[0]
    return None


def bench_sisimai(directory: Path, messages: int, runs: int) -> Result:
    """Best-of-``runs`` time for Sisimai over the same directory, in one Perl process."""
    proc = subprocess.run(["perl", "-e", SISIMAI_SCRIPT, str(directory), str(runs)], capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    detail = f"Sisimai {out['version']} ->{out['method']}, {out['rows']} result rows"
    return Result("sisimai", messages, float(out["seconds"]), peak_rss_mb(resource.RUSAGE_CHILDREN), detail)


def print_result(r: Result) -> None:
    """One line per tool."""
    print(
        f"{r.tool:8s} {r.messages:6d} msgs  {r.seconds:8.3f} s  {r.rate:9.0f} msgs/s  "
        f"peak RSS {r.peak_rss_mb:7.1f} MiB  ({r.detail})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when the directory holds no messages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", nargs="?", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument("--no-sisimai", action="store_true", help="skip the Sisimai comparison")
    args = parser.parse_args(argv)
    directory: Path = (args.directory or default_directory()).resolve()
    files = message_files(directory)
    if not files:
        print(f"no *.eml files in {directory}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in files)
    print(f"directory {directory}: {len(files)} messages, {total / 1024 / 1024:.1f} MiB; best of {args.runs} runs")
    mine = bench_bouncd(files, args.runs)
    print_result(mine)
    if args.no_sisimai:
        return 0
    why_not = sisimai_available()
    if why_not:
        print(f"sisimai  skipped: {why_not}")
        return 0
    theirs = bench_sisimai(directory, len(files), args.runs)
    print_result(theirs)
    ratio = mine.rate / theirs.rate
    verdict = "meets" if ratio >= TARGET_RATIO else "below"
    print(f"ratio    bouncd/sisimai = {ratio:.2f}x ({verdict} the {TARGET_RATIO:.0f}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
