"""What the GPU probes in benchmarks/ (capture_cost, capture_failure, compile_beside, fx_traces, temporal_conv_forms)
share: an argument parser whose `--out` and other options are checked before any work, each bad value in one line,
and findings logged and written as JSON."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from t2v import preflight

log = logging.getLogger("probes")


def parser(doc: str) -> argparse.ArgumentParser:
    """The probe's parser, described by its docstring's first paragraph, with `--out`."""
    made = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    made.add_argument("--out", type=Path, help="write the findings here as JSON")
    return made


def parse(made: argparse.ArgumentParser,
          problems: Callable[[argparse.Namespace], Iterable[str | None]] = lambda args: ()) -> argparse.Namespace:
    """The arguments, once `--out` can be written and `problems(args)` names none (else one line and exit 2)."""
    args = made.parse_args()
    found = [None if args.out is None else preflight.output_file("--out", args.out), *problems(args)]
    for problem in filter(None, found):
        made.error(problem)  # findings written after minutes of work would be lost to a bad --out
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args


def report(found: dict[str, Any], out: Path | None, raw: dict[str, Any] | None = None) -> None:
    """Log `found`; write it, with `raw` beside it, to `out` as JSON."""
    log.info("findings:\n%s", json.dumps(found, indent=2))
    if out is not None:
        out.write_text(json.dumps({**found, **(raw or {})}, indent=2) + "\n")
