#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes vfsdax-vmm(1) from the program's own --help text, the one source of both.

Usage: help_to_man.py PROGRAM VERSION OUTPUT

The first paragraph ("Usage: ...") becomes SYNOPSIS, the next DESCRIPTION; a paragraph whose
first line is a heading ("Options:") becomes that section, kept as laid out (the option table
has nested columns); the remaining paragraphs are reflowed text under NOTES.
"""
import subprocess
import sys


def roff(line):
    line = line.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + line if line.startswith((".", "'")) else line


def main():
    program, version, output = sys.argv[1:4]
    text = subprocess.run([program, "--help"], check=True, capture_output=True, text=True).stdout
    paragraphs = [p.splitlines() for p in text.strip("\n").split("\n\n")]
    usage = paragraphs[0][0].split(" ", 2)
    summary = " ".join(paragraphs[1]).split(" (")[0].rstrip(".")
    out = [
        f'.TH VFSDAX\\-VMM 1 "" "vfsdax {version}" "User Commands"',
        ".SH NAME",
        "vfsdax\\-vmm \\- " + roff(summary[0].lower() + summary[1:]),
        ".SH SYNOPSIS",
        ".B vfsdax\\-vmm",
        roff(usage[2] if len(usage) > 2 else ""),
        ".SH DESCRIPTION",
        roff(" ".join(paragraphs[1])),
    ]
    notes = []
    for lines in paragraphs[2:]:
        if lines[0].endswith(":") and lines[0][0].isupper() and " " not in lines[0].strip():
            out += [".SH " + lines[0].rstrip(":").upper(), ".nf"]
            out += [roff(line) for line in lines[1:]]
            out.append(".fi")
        else:
            notes += [".PP", roff(" ".join(line.strip() for line in lines))]
    if notes:
        out += [".SH NOTES"] + notes
    out += [".SH SEE ALSO", "The vfsdax README and docs/ in its source tree."]
    with open(output, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
