"""Code lines of the provider simulators at one or more git revisions.

A code line holds at least one Python token that is not a comment: blank lines, comment lines and
docstrings (a string standing alone as a statement) are not counted, and a statement spread over
several lines counts each of them. The files are the toolkit (``crm_pipelines/simulator/``) and
each provider's simulator modules (``crm_pipelines/providers/*/sim*.py``); the GraphQL schema
files beside Shopify's are not Python and not counted.

Usage: ``python benchmarks/simulator_size.py [REV ...] [--files]`` (default: HEAD); prints each
revision's total, and with ``--files`` each file's count, then every revision's change against the first.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import subprocess
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ("crm_pipelines/simulator/*.py", "crm_pipelines/providers/*/sim*.py")
NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
STATEMENT_START = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.NL, None}


def code_lines(source: str) -> int:
    """Lines holding code in ``source`` (see the module docstring)."""
    lines: set[int] = set()
    before = None  # the type of the last token that was not a comment
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if token.type in NOT_CODE:
            before = token.type
            continue
        if token.type == tokenize.STRING and before in STATEMENT_START:
            before = "docstring"
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
        before = token.type
    return len(lines)


def simulator_files(rev: str) -> list[str]:
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    return sorted(path for path in listed if any(fnmatch.fnmatch(path, pattern) for pattern in PATTERNS))


def sizes(rev: str) -> dict[str, int]:
    return {path: code_lines(subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout)
            for path in simulator_files(rev)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", default=["HEAD"], help="git revisions (default HEAD)")
    parser.add_argument("--files", action="store_true", help="print each file's count too")
    args = parser.parse_args()
    totals = {}
    for rev in args.revs:
        counted = sizes(rev)
        totals[rev] = sum(counted.values())
        if args.files:
            for path, n in counted.items():
                print(f"{n:7,d}  {rev}  {path}")
        print(f"{totals[rev]:7,d}  {rev}  ({len(counted)} files)")
    first = args.revs[0]
    for rev in args.revs[1:]:
        print(f"{rev} against {first}: {totals[rev] - totals[first]:+,d} lines, {(totals[rev] / totals[first] - 1) * 100:+.1f}%")


if __name__ == "__main__":
    main()
