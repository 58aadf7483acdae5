#!/usr/bin/env python3
"""check-architecture.py - holds ARCHITECTURE.md, Package.swift and the sources to each
other: the module table in ARCHITECTURE.md lists every module of Sources/ bottom-up with
the modules it uses; Package.swift must declare exactly those dependencies, each module's
sources must import exactly those of the package's modules, none may use a module listed
after it (no module imports one above it), and every library module has a test target
named after it + Tests. Test targets too must import exactly what they declare. Prints
what differs and exits 1; run by `make test`.

    python3 tools/check-architecture.py [--package-json FILE]
"""
import argparse
import json
import os
import re
import subprocess
import sys

BEGIN, END = "<!-- module-graph:begin -->", "<!-- module-graph:end -->"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table():
    text = open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        sys.exit("ARCHITECTURE.md: no module table between %s and %s" % (BEGIN, END))
    rows = []
    for line in text[text.index(BEGIN):text.index(END)].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        uses = [u.strip().strip("`") for u in cells[1].split(",") if u.strip() not in ("", "-")]
        rows.append((name, uses))
    return rows


def package(path):
    data = json.load(open(path)) if path else json.loads(
        subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    targets = {}
    for target in data["targets"]:
        location = target.get("path") or ("Tests/" if target["type"] == "test" else "Sources/") + target["name"]
        deps = [list(d.values())[0][0] for d in target.get("dependencies", []) if "byName" in d or "target" in d]
        targets[target["name"]] = {"type": target["type"], "path": location, "deps": deps}
    return targets


def imports(directory, modules):
    found = set()
    for folder, _, files in os.walk(directory):
        for name in files:
            if name.endswith(".swift"):
                text = open(os.path.join(folder, name), encoding="utf-8").read()
                found |= set(re.findall(r"^(?:@testable |@_exported )?import (\w+)", text, re.M))
    return found & modules


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-json", help="swift package dump-package's output, if already at hand")
    args = parser.parse_args()
    rows = table()
    targets = package(args.package_json)
    modules = {n for n, t in targets.items() if t["path"].startswith("Sources/")}
    problems = []
    listed = [name for name, _ in rows]
    for name in sorted(modules - set(listed)):
        problems.append("%s: in Package.swift, not in ARCHITECTURE.md's table" % name)
    for name in sorted(set(listed) - modules):
        problems.append("%s: in ARCHITECTURE.md's table, not a module of Sources/" % name)
    for position, (name, uses) in enumerate(rows):
        if name not in targets:
            continue
        declared = set(targets[name]["deps"]) & modules
        if set(uses) != declared:
            problems.append("%s: ARCHITECTURE.md says it uses %s; Package.swift declares %s" % (name, sorted(uses), sorted(declared)))
        above = [u for u in uses if u in listed and listed.index(u) > position]
        if above:
            problems.append("%s: uses %s, listed above it (modules depend downward only)" % (name, above))
        if targets[name]["type"] != "system":
            imported = imports(os.path.join(ROOT, targets[name]["path"]), modules)
            if imported != declared:
                problems.append("%s: imports %s; Package.swift declares %s" % (name, sorted(imported), sorted(declared)))
        if targets[name]["type"] == "regular" and name + "Tests" not in targets:
            problems.append("%s: no test target %sTests" % (name, name))
    local = set(targets)
    for name, target in sorted(targets.items()):
        if target["path"].startswith("Tests/") and target["type"] != "system":
            declared = set(target["deps"]) & local
            imported = imports(os.path.join(ROOT, target["path"]), local - {name})
            if imported != declared:
                problems.append("%s: imports %s; Package.swift declares %s" % (name, sorted(imported), sorted(declared)))
    for problem in problems:
        print("check-architecture: " + problem)
    if problems:
        sys.exit(1)
    print("check-architecture: %d modules, ARCHITECTURE.md and Package.swift agree" % len(rows))


if __name__ == "__main__":
    main()
