"""Run the suite against every third-party peer and regenerate the README's interop table.

    python scripts/interop.py            # all peers, quick profile
    python scripts/interop.py --check    # only verify README matches reports/interop.json

Each peer runs with its baseline (``fixtures/peers/<peer>.expected.yaml``);
the summaries go to ``reports/interop.json`` and the table between the
interop markers of ``README.md`` is rewritten from that file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fixtures.peers.interop import replace_block, summarise, table  # noqa: E402
from fixtures.peers.registry import PEERS  # noqa: E402
from tests.suite_runner import run_peer  # noqa: E402

OUT = REPO / "reports" / "interop.json"
README = REPO / "README.md"


def render(rows: list[dict[str, Any]]) -> None:
    README.write_text(replace_block(README.read_text(), table(rows)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare README and the file")
    parser.add_argument("--peer", action="append", help="run only these peers")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    if args.check:
        rows = json.loads(OUT.read_text())["peers"]
        expected = replace_block(README.read_text(), table(rows))
        if expected != README.read_text():
            print("README.md's interop table is not the one reports/interop.json gives")
            return 1
        return 0
    for name, peer in PEERS.items():
        if args.peer and name not in args.peer:
            continue
        problem = peer.missing()
        if problem:
            print(f"{name}: {problem}", file=sys.stderr)
            return 2
        seed = random.randrange(2**32)
        with tempfile.TemporaryDirectory() as tmp:
            run = run_peer(peer, Path(tmp), seed)
        if run.report is None:
            print(run.output[-3000:], file=sys.stderr)
            return 1
        rows.append(summarise(peer, run.report))
        print(f"{name}: exit {run.returncode}; {rows[-1]['findings']}")
    if args.peer and OUT.exists():
        # Only some peers were run: keep the others' rows from the last full run.
        kept = [r for r in json.loads(OUT.read_text())["peers"] if r["peer"] not in args.peer]
        rows = sorted([*kept, *rows], key=lambda r: list(PEERS).index(r["peer"]))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps({"date": dt.date.today().isoformat(), "peers": rows}, indent=2) + "\n"
    )
    render(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
