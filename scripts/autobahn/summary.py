#!/usr/bin/env python3
"""Condenses an Autobahn fuzzingclient report (index.json) into a Markdown table: per case group,
how many cases ended OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED or FAILED (the worse of a
case's behaviour and its closing behaviour), then every case that was not plain OK."""
import json
import sys
from collections import Counter, OrderedDict

RANK = ["OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "WRONG CODE", "FAILED"]
COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
GROUPS = OrderedDict([
    ("1", "Framing (text and binary, 0 B to 64 KiB)"),
    ("2", "Pings and pongs"),
    ("3", "Reserved bits"),
    ("4", "Opcodes"),
    ("5", "Fragmentation"),
    ("6", "UTF-8 handling"),
    ("7", "Close handling"),
    ("9", "Limits and performance (to 16 MiB, to 1 M fragments)"),
    ("10", "Misc (auto-fragmentation)"),
    ("12", "permessage-deflate"),
    ("13", "permessage-deflate"),
])


def key(case):
    return [int(p) for p in case.split(".")]


def verdict(result):
    worst = max(result["behavior"], result["behaviorClose"], key=lambda b: RANK.index(b) if b in RANK else len(RANK))
    return "FAILED" if worst == "WRONG CODE" else worst


def main(path, out):
    with open(path) as f:
        index = json.load(f)
    (agent, cases), = index.items()
    counts = OrderedDict()
    notable = []
    durations = Counter()
    for case in sorted(cases, key=key):
        result = cases[case]
        group = case.split(".")[0]
        v = verdict(result)
        counts.setdefault(group, Counter())[v] += 1
        durations[group] += result.get("duration", 0)
        if v != "OK":
            notable.append((case, result["behavior"], result["behaviorClose"]))
    lines = [
        "| group | cases | " + " | ".join(COLUMNS) + " | time (ms) |",
        "| --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " | ---: |",
    ]
    total = Counter()
    for group, c in counts.items():
        total.update(c)
        name = GROUPS.get(group, "")
        lines.append("| %s %s | %d | %s | %d |" % (
            group, name, sum(c.values()), " | ".join(str(c[col]) for col in COLUMNS), durations[group]))
    lines.append("| **all** | **%d** | %s | %d |" % (
        sum(total.values()), " | ".join("**%d**" % total[col] for col in COLUMNS), sum(durations.values())))
    lines.append("")
    if notable:
        lines.append("Cases not plain OK (behaviour / closing behaviour):")
        lines.append("")
        for case, behavior, close in notable:
            lines.append("- %s: %s / %s" % (case, behavior, close))
    else:
        lines.append("Every case OK, its closing behaviour too.")
    text = "\n".join(lines) + "\n"
    with open(out, "w") as f:
        f.write(
            "# Autobahn WebSocket test suite: summary\n\n"
            "The fuzzing client of autobahntestsuite 0.8.2 against `examples/ws_echo.rs` (agent "
            "`%s`), cases 1-7 and 9-10 (12-13 test permessage-deflate, which stompede does not "
            "offer), written by `scripts/autobahn.sh` from its report. A case counts as its worse "
            "of behaviour and closing behaviour.\n\n" % agent + text)
    sys.stdout.write(text)
    return 1 if total["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
