#!/usr/bin/python3
"""md2man: the project's Markdown docs as man pages, so the two never drift apart.

usage: md2man.py NAME SECTION "one-line description" DOC.md [--extra EXTRA.md] > NAME.SECTION

Handles what docs/*.md use: headings, paragraphs, bullet lists, tables (one tagged paragraph per
row: the first cell as the tag, the others joined), fenced and indented code blocks, inline code,
bold, italics and links (their text; relative links name the document). The first "# Title"
becomes the DESCRIPTION; "## X" become sections, "### X" subsections."""
import re
import sys


GLYPHS = {"—": "\\(em", "–": "\\(en", "×": "\\(mu", "≤": "\\(<=", "≥": "\\(>=", "→": "\\(->",
          "←": "\\(<-", "µ": "\\(mc", "’": "'", "“": "\\(lq", "”": "\\(rq", "…": "...",
          "≈": "\\(~~", "±": "\\(+-", "⇄": "\\(<>", "•": "\\(bu"}


def esc(s):
    """Escape roff specials in running text."""
    s = s.replace("\\", "\\e")
    s = re.sub(r"^([.'])", r"\\&\1", s)
    s = s.replace("-", "\\-")
    for k, v in GLYPHS.items():
        s = s.replace(k, v)
    return s


def inline(s):
    s = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", lambda m: m.group(1), s)  # links: their text
    parts = re.split(r"(`[^`]*`)", s)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) >= 2:
            out.append("\\fB" + esc(p[1:-1]) + "\\fR")
        else:
            p = esc(p)
            p = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", p)
            p = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\\fI\1\\fR", p)
            out.append(p)
    line = "".join(out)
    return "\\&" + line if line.startswith((".", "'")) else line


def cells(row):
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|"):
        row = row[:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)]


def convert(lines, out):
    i, para = 0, []

    def flush():
        if para:
            out.append(".PP")
            out.append(inline(" ".join(para)))
            para.clear()

    title_seen = False
    while i < len(lines):
        line = lines[i].rstrip("\n")
        if line.startswith("```"):
            flush()
            out.append(".PP\n.nf\n.RS 4")
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                out.append(esc(lines[i].rstrip("\n")))
                i += 1
            out.append(".RE\n.fi")
        elif line.startswith("    ") and not para and line.strip():
            out.append(".PP\n.nf\n.RS 4")
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                if not lines[i].strip() and (i + 1 >= len(lines) or not lines[i + 1].startswith("    ")):
                    break
                out.append(esc(lines[i].rstrip("\n")[4:]))
                i += 1
            out.append(".RE\n.fi")
            continue
        elif line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            text = line.lstrip("#").strip()
            if level == 1 and not title_seen:
                title_seen = True
                out.append(".SH DESCRIPTION")
            elif level <= 2:
                out.append(".SH " + inline(text.upper()))
            else:
                out.append(".SS " + inline(text))
        elif line.startswith("|"):
            flush()
            header = cells(line)
            i += 1
            if i < len(lines) and re.match(r"^\|[\s:|-]+\|?\s*$", lines[i]):
                i += 1
            while i < len(lines) and lines[i].startswith("|"):
                row = cells(lines[i])
                out.append(".TP")
                out.append(inline(row[0]))
                rest = []
                for h, c in list(zip(header, row))[1:]:
                    if not c or c in ("—", "-"):
                        continue
                    # a "default" column reads as such; a description column as itself
                    rest.append("%s: %s" % (h.capitalize(), c)
                                if h.lower() in ("default", "type", "unit") else c)
                out.append(inline(". ".join(rest)))
                i += 1
            continue
        elif re.match(r"^\s*[-*] ", line):
            flush()
            item = [re.sub(r"^\s*[-*] ", "", line)]
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() \
                    and not re.match(r"^\s*[-*] ", lines[i]):
                item.append(lines[i].strip())
                i += 1
            out.append(".IP \\(bu 2")
            out.append(inline(" ".join(item)))
            continue
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
        i += 1
    flush()


def main():
    args = sys.argv[1:]
    if len(args) < 4:
        sys.exit(__doc__)
    name, section, desc, doc = args[:4]
    out = ['.\\" Generated from %s by packaging/md2man.py; edit the Markdown, not this file.' % doc,
           '.TH %s %s "" "certmq" "certmq"' % (name.upper(), section),
           ".SH NAME", "%s \\- %s" % (esc(name), esc(desc))]
    for path in [doc] + ([args[5]] if len(args) > 5 and args[4] == "--extra" else []):
        with open(path, encoding="utf-8") as f:
            convert(f.readlines(), out)
    sys.stdout.write("\n".join(out) + "\n")


main()
