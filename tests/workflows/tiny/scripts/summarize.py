"""Check the MPI sum against a serial one and write a one-line summary.

usage: python summarize.py NUMBERS MPI_SUM_JSON OUT
"""

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python summarize.py NUMBERS MPI_SUM_JSON OUT", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        expected = sum(int(line) for line in f if line.strip())
    with open(argv[1]) as f:
        result = json.load(f)
    if result["total"] != expected:
        print(f"summarize: error: MPI total {result['total']} != serial total {expected}", file=sys.stderr)
        return 1
    with open(argv[2], "w") as f:
        f.write(f"total={result['total']} ranks={result['ranks']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
