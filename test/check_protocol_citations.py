#!/usr/bin/env python3
"""Every citation of docs/protocol.md names a section that has a heading there.

  check_protocol_citations.py <source root>

protocol.md's headings carry the section numbers ("## 5. GroupEncryption",
"### 5.5 Decrypting (receiver)"). A citation is:
- "protocol.md" followed by a section number or a list of them, with or without
  "section(s)" or a comment leader between (also across a line break):
  "protocol.md section 5.5", "protocol.md 12.2's", "protocol.md\\n// sections 8 to 10",
  "protocol.md 1.3, 6.2";
- a bare "section 9.4" / "sections 5.5, 6.6" (the project's sources, comments and
  vector headers cite protocol.md so), except in a doc with numbered headings of
  its own (docs/tutorial.md), and unless another document is named just before it
  ("RFC 4648 section 4");
- the "section" field of a keyExchangeTrace vector ("9.4 9.8"; "random" is none).
For a range ("sections 8.3 to 10") both ends are checked.

Looked through: README.md, docs/*.md, and the sources and comments under include/,
lib/, tools/, test/, python/ and proto/ (not node_modules). Prints each broken
citation as file:line and exits 1 when there is one.
"""
import os
import re
import sys

NUM = r"\d+(?:\.\d+)*"
# Between "protocol.md" and the number: punctuation, white space, a comment
# leader at a line start, "section(s)" or "§".
GAP = r"(?:[\s,:(]|//|#(?!\d)|\*|--)*"
WS = r"(?:\s|//|#(?!\d)|\*)*"
LIST = rf"{NUM}(?:{WS}(?:,|and|to|or|/|-|–){WS}(?:sections?\s+)?{NUM})*"
CITED = re.compile(rf"protocol\.md(?:'s)?{GAP}(?:(?:sections?|§)\s*)?({LIST})", re.IGNORECASE)
# "section 16 of docs/protocol.md"
CITED_AFTER = re.compile(rf"\bsections?\s+({LIST}){WS}of{WS}(?:the\s+)?(?:docs/)?protocol\.md", re.IGNORECASE)
BARE = re.compile(rf"(?:\bsections?\s+|§\s*)({LIST})", re.IGNORECASE)
OTHER_DOC = re.compile(r"(?:\bRFC\s*\d+|[\w.-]+\.md(?<!protocol\.md)|\bspec\w*)[,:]?\s*$", re.IGNORECASE)
HEADING = re.compile(rf"^#{{1,6}}\s+({NUM})\.?\s", re.MULTILINE)
EXTENSIONS = {".md", ".h", ".hpp", ".cpp", ".cc", ".c", ".ts", ".mjs", ".js", ".py", ".json", ".proto", ".build", ".sh", ".txt"}
SKIP_DIRS = {"node_modules", ".git", "build", "subprojects"}


def numbers(listed):
    """The section numbers of a list such as "8.3 to 10" or "1.3, 6.2"."""
    return re.findall(NUM, listed)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def files(root):
    yield os.path.join(root, "README.md")
    docs = os.path.join(root, "docs")
    for name in sorted(os.listdir(docs)):
        if name.endswith(".md"):
            yield os.path.join(docs, name)
    for top in ("include", "lib", "tools", "test", "python", "proto"):
        for d, dirs, names in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not os.path.islink(os.path.join(d, x)))
            for name in sorted(names):
                # (This file's own examples are not citations.)
                if os.path.splitext(name)[1] in EXTENSIONS and os.path.join(d, name) != os.path.join(root, "test", "check_protocol_citations.py"):
                    yield os.path.join(d, name)


def citations(path, text, root):
    """(line, number, quoted text) for every protocol.md section the file cites."""
    rel = os.path.relpath(path, root)
    is_doc = rel == "README.md" or (rel.startswith("docs" + os.sep) and rel.endswith(".md"))
    is_vector = rel.startswith(os.path.join("test", "vectors") + os.sep) and rel.endswith(".json")
    # Bare "section N" everywhere but in a doc that numbers its own sections.
    bare = rel == os.path.join("docs", "protocol.md") or not (is_doc and HEADING.search(text))
    seen = set()
    for m in list(CITED.finditer(text)) + list(CITED_AFTER.finditer(text)):
        seen.add(m.start(1))
        for n in numbers(m.group(1)):
            yield line_of(text, m.start()), n, m.group(0)
    if bare:
        for m in BARE.finditer(text):
            if m.start(1) in seen or OTHER_DOC.search(text[max(0, m.start() - 40):m.start()]):
                continue
            for n in numbers(m.group(1)):
                yield line_of(text, m.start()), n, m.group(0)
    if is_vector:
        for m in re.finditer(r'"section":\s*"([^"]*)"', text):
            value = m.group(1)
            if value == "random":
                continue
            found = re.findall(rf"(?<![\w.]){NUM}(?![\w.])", value)
            if not found:
                yield line_of(text, m.start()), "(none)", m.group(0)
            for n in found:
                yield line_of(text, m.start()), n, m.group(0)


def check(root):
    """(number of citations, the broken ones)."""
    with open(os.path.join(root, "docs", "protocol.md"), encoding="utf-8") as f:
        headings = set(HEADING.findall(f.read()))
    if not headings:
        return 0, ["docs/protocol.md: no numbered headings found"]
    broken = []
    total = 0
    for path in files(root):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for line, n, quoted in citations(path, text, root):
            total += 1
            if n not in headings:
                quoted = " ".join(quoted.split())
                broken.append(f"{os.path.relpath(path, root)}:{line}: cites protocol.md section {n}, "
                              f"which has no heading there ({quoted!r})")
    return total, broken


# A small tree whose broken citations are known: the checker must find exactly these.
SELF_TEST = {
    "docs/protocol.md": "# P\n\n## 1. One\n\n### 1.1 A\n\n### 5.5 B\n\nAs section 1.1 and section 2.\n",
    "README.md": "See protocol.md section 5.5, protocol.md 5.6's rule and RFC 4648 section 4.\n",
    "docs/other.md": "Bare: section 1.1, sections 1 to 3. Named: protocol.md\nsections 5.5, 7.\n",
    "docs/numbered.md": "## 3. Its own\n\nsection 3 here is its own; protocol.md section 3 is not.\n",
    "lib/a.cpp": "// see docs/protocol.md\n// sections 1 to\n// 8.2; section 9 of docs/protocol.md\nint x;\n",
    "test/vectors/v.json": '{"header": ["(protocol.md section 1) and section 4"], "t": [{"section": "5.5 6.1"}, {"section": "random"}]}\n',
}
SELF_TEST_BROKEN = {
    ("docs/protocol.md", "2"), ("README.md", "5.6"), ("docs/other.md", "3"), ("docs/other.md", "7"),
    ("docs/numbered.md", "3"), ("lib/a.cpp", "8.2"), ("lib/a.cpp", "9"), ("test/vectors/v.json", "4"),
    ("test/vectors/v.json", "6.1"),
}


def self_test():
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        for rel, text in SELF_TEST.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)
        _, broken = check(root)
    got = {(b.split(":")[0], re.search(r"section (\S+),", b).group(1)) for b in broken}
    if got != SELF_TEST_BROKEN or len(broken) != len(SELF_TEST_BROKEN):
        print("self-test: the checker found", sorted(got), "expected", sorted(SELF_TEST_BROKEN))
        return False
    return True


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    if not self_test():
        return 1
    total, broken = check(root)
    for b in broken:
        print(b)
    if total == 0:
        print("no citations found: the patterns no longer match anything")
        return 1
    print(f"{total} citations of protocol.md, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
