#!/usr/bin/env python3
"""gen_unicode_tables.py - writes the codepoint tables engine/src/tokenizer/unicode_data.c.

Not run by the build: its output is committed. The tables classify codepoints the way llama.cpp's
unicode-data.cpp does (one general-category flag per codepoint: N, L, Z, M, P, S, C, with
unassigned codepoints flagged "undefined"; plus the Unicode White_Space property) and give the
simple lowercase mapping (what llama.cpp's unicode_tolower() uses).

Usage:
    python3 tools/gen_unicode_tables.py > engine/src/tokenizer/unicode_data.c
        uses Python's unicodedata module (its Unicode version) and the White_Space list below;
    python3 tools/gen_unicode_tables.py --ucd-dir /usr/share/unicode > engine/src/tokenizer/unicode_data.c
        reads UnicodeData.txt and PropList.txt of a Unicode Character Database instead
        (Debian package unicode-data), to pick a newer Unicode version than Python's;
    add --add-unicode-15.1 to a 15.0 database to get Unicode 15.1, the version of llama.cpp's
    table (15.1 only added the 627 codepoints listed in UNICODE_15_1_ADDITIONS).

The committed unicode_data.c was made with --ucd-dir /usr/share/unicode --add-unicode-15.1 from
Debian's unicode-data 15.0.0, and matches llama.cpp's unicode-data.cpp codepoint for codepoint
(categories, whitespace and lowercase).
"""
import argparse
import re
import sys
import unicodedata

MAX_CODEPOINTS = 0x110000

# Flag bits: keep in sync with engine/src/tokenizer/unicode.h.
FLAG_UNDEFINED = 0x0001
FLAG_NUMBER = 0x0002
FLAG_LETTER = 0x0004
FLAG_SEPARATOR = 0x0008
FLAG_MARK = 0x0010
FLAG_PUNCTUATION = 0x0020
FLAG_SYMBOL = 0x0040
FLAG_CONTROL = 0x0080
FLAG_WHITESPACE = 0x0100

CATEGORY_FLAG = {
    "Cn": FLAG_UNDEFINED,
    "Cc": FLAG_CONTROL, "Cf": FLAG_CONTROL, "Co": FLAG_CONTROL, "Cs": FLAG_CONTROL,
    "Ll": FLAG_LETTER, "Lm": FLAG_LETTER, "Lo": FLAG_LETTER, "Lt": FLAG_LETTER, "Lu": FLAG_LETTER,
    "Mc": FLAG_MARK, "Me": FLAG_MARK, "Mn": FLAG_MARK,
    "Nd": FLAG_NUMBER, "Nl": FLAG_NUMBER, "No": FLAG_NUMBER,
    "Pc": FLAG_PUNCTUATION, "Pd": FLAG_PUNCTUATION, "Pe": FLAG_PUNCTUATION,
    "Pf": FLAG_PUNCTUATION, "Pi": FLAG_PUNCTUATION, "Po": FLAG_PUNCTUATION,
    "Ps": FLAG_PUNCTUATION,
    "Sc": FLAG_SYMBOL, "Sk": FLAG_SYMBOL, "Sm": FLAG_SYMBOL, "So": FLAG_SYMBOL,
    "Zl": FLAG_SEPARATOR, "Zp": FLAG_SEPARATOR, "Zs": FLAG_SEPARATOR,
}

# PropList.txt White_Space (unchanged since Unicode 6.3, which dropped U+180E). This is what the
# `regex` module's \s matches and what llama.cpp's unicode_set_whitespace holds; note that it does
# NOT include U+001C..U+001F, which Python's str.isspace() accepts.
WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + \
    list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]


# Everything Unicode 15.1 assigned on top of 15.0: CJK Unified Ideographs Extension I, four
# ideographic description characters and one CJK stroke (none has a case mapping).
UNICODE_15_1_ADDITIONS = [(0x2EBF0, 0x2EE5D, "Lo"), (0x2FFC, 0x2FFF, "So"), (0x31EF, 0x31EF, "So")]


def from_python():
    cats = [unicodedata.category(chr(c)) for c in range(MAX_CODEPOINTS)]
    lower = {}
    for c in range(MAX_CODEPOINTS):
        low = ord(chr(c).lower()[0])
        if low != c:
            lower[c] = low
    return cats, lower, list(WHITE_SPACE), "Python %s unicodedata, Unicode %s" % (
        sys.version.split()[0], unicodedata.unidata_version)


def from_ucd(ucd_dir):
    cats = ["Cn"] * MAX_CODEPOINTS
    lower = {}
    range_first = None
    with open(ucd_dir + "/UnicodeData.txt", encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            cp = int(fields[0], 16)
            name, cat = fields[1], fields[2]
            if name.endswith(", First>"):
                range_first = cp
                continue
            if name.endswith(", Last>"):
                for c in range(range_first, cp + 1):
                    cats[c] = cat
                range_first = None
                continue
            cats[cp] = cat
            if fields[13]:
                lower[cp] = int(fields[13], 16)
    white = []
    with open(ucd_dir + "/PropList.txt", encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            cps, prop = [x.strip() for x in line.split(";")]
            if prop != "White_Space":
                continue
            if ".." in cps:
                a, b = [int(x, 16) for x in cps.split("..")]
            else:
                a = b = int(cps, 16)
            white.extend(range(a, b + 1))
    version = "?"
    try:
        with open(ucd_dir + "/ReadMe.txt", encoding="utf-8") as f:
            found = re.search(r"Unicode(\d+\.\d+\.\d+)", f.read())
            if found:
                version = found.group(1)
    except OSError:
        pass
    return cats, lower, sorted(white), "UnicodeData.txt + PropList.txt of Unicode %s" % version


def lower_ranges(lower):
    """Group the lowercase map into runs (first, last, stride, delta): every stride-th codepoint
    of [first, last] maps to itself + delta. Runs never overlap: a run only continues to the next
    mapped codepoint, so nothing mapped lies between its members."""
    runs = []
    for c in sorted(lower):
        delta = lower[c] - c
        if runs:
            first, last, stride, d = runs[-1]
            if d == delta and ((stride == 0 and c - last in (1, 2)) or c - last == stride):
                runs[-1] = (first, c, c - last, d)
                continue
        runs.append((c, c, 0, delta))
    return [(a, b, s if s else 1, d) for a, b, s, d in runs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ucd-dir", help="directory with UnicodeData.txt and PropList.txt")
    ap.add_argument("--add-unicode-15.1", dest="add_15_1", action="store_true",
                    help="assign the codepoints Unicode 15.1 added (use with a 15.0 database)")
    args = ap.parse_args()

    cats, lower, white, source = from_ucd(args.ucd_dir) if args.ucd_dir else from_python()
    if args.add_15_1:
        for first, last, cat in UNICODE_15_1_ADDITIONS:
            for c in range(first, last + 1):
                if cats[c] != "Cn":
                    sys.exit("U+%04X is already assigned: the database is not Unicode 15.0" % c)
                cats[c] = cat
        source += " plus the Unicode 15.1 additions"

    flags = [CATEGORY_FLAG[c] for c in cats]
    for c in white:
        flags[c] |= FLAG_WHITESPACE

    ranges = []
    for c in range(MAX_CODEPOINTS):
        if not ranges or ranges[-1][1] != flags[c]:
            ranges.append((c, flags[c]))
    low = lower_ranges(lower)

    # The contractions of the llama3 pre-tokenizer compare unicode_tolower(c) with ASCII letters;
    # record which non-ASCII codepoints lower-case into ASCII (U+0130 -> i, U+212A -> k).
    to_ascii = sorted(c for c, l in lower.items() if c >= 0x80 and l < 0x80)

    out = sys.stdout
    out.write("/* unicode_data.c - GENERATED by tools/gen_unicode_tables.py; do not edit.\n")
    out.write(" *\n")
    out.write(" * Source: %s.\n" % source)
    out.write(" * Regenerate: python3 tools/gen_unicode_tables.py --ucd-dir /usr/share/unicode \\\n")
    out.write(" *                 --add-unicode-15.1 > engine/src/tokenizer/unicode_data.c\n")
    out.write(" * Tables for unicode.c: per-codepoint category/whitespace flags as sorted ranges and\n")
    out.write(" * the simple lowercase mapping as strided runs. Non-ASCII codepoints lowering to ASCII:\n")
    out.write(" * %s.\n" % (", ".join("U+%04X" % c for c in to_ascii) or "none"))
    out.write(" */\n")
    out.write('#include "unicode_data.h"\n\n')
    out.write("/* (first codepoint << 11) | flags; a range runs to the next entry's first - 1. */\n")
    out.write("const uint32_t unicode_flag_ranges[] = {\n")
    for i in range(0, len(ranges), 6):
        row = ranges[i:i + 6]
        out.write("    " + " ".join("0x%08Xu," % ((c << 11) | f) for c, f in row) + "\n")
    out.write("};\n")
    out.write("const size_t unicode_flag_ranges_count = sizeof unicode_flag_ranges / "
              "sizeof unicode_flag_ranges[0];\n\n")
    out.write("const unicode_case_run unicode_lower_runs[] = {\n")
    for a, b, s, d in low:
        out.write("    {0x%05X, 0x%05X, %d, %d},\n" % (a, b, s, d))
    out.write("};\n")
    out.write("const size_t unicode_lower_runs_count = sizeof unicode_lower_runs / "
              "sizeof unicode_lower_runs[0];\n")
    print("ranges %d, lower runs %d (%d mappings), source %s" % (len(ranges), len(low), len(lower),
                                                                source), file=sys.stderr)


if __name__ == "__main__":
    main()
