"""Prints each failed or erroring test of a pytest JUnit XML report with the first lines of its
error (conformance/run, after the summary). Standard library only."""

import sys
import xml.etree.ElementTree as ET

LINES, WIDTH = 24, 300


def main(path: str) -> None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"{path}: unreadable JUnit report ({e})")
        return
    failed = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            for node in case.findall(kind):
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                text = (node.get("message") or "") + "\n" + (node.text or "")
                failed.append((kind, name, text))
    if not failed:
        return
    print(f"\n==== {len(failed)} failing test(s) in {path} ====")
    seen = set()
    for kind, name, text in failed:
        print(f"-- {kind.upper()} {name}")
        if text in seen:  # a module fixture's error, repeated for each of its tests
            print("   (the same error as above)")
            continue
        seen.add(text)
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        # the message's first lines, then the lines pytest marks with "E "
        head = lines[:12]
        shown = head + [ln for ln in lines[12:] if ln.lstrip().startswith("E ")][: LINES - len(head)]
        for ln in shown[:LINES]:
            print("   " + (ln if len(ln) <= WIDTH else ln[:WIDTH] + " …"))


if __name__ == "__main__":
    for p in sys.argv[1:]:
        main(p)
