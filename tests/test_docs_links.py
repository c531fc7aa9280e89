"""README and docs/*.md: every relative link resolves, and README stays short.

No network: links with a scheme (http:, https:, mailto:) are skipped. A
relative link must point to an existing file or folder; when it carries an
anchor into a Markdown file (`file.md#section`, or `#section` in the same
file), a heading with that GitHub anchor must exist there. Links inside code
(fenced blocks and inline backticks) are not links and are ignored.
"""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
PAGES = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
MAX_README_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _without_code(text):
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _links(text):
    prose = _without_code(text)
    return LINK.findall(prose) + REFERENCE.findall(prose)


def _slug(heading):
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to '-'."""
    heading = re.sub(r"<[^>]+>", "", heading.strip().lower())
    heading = heading.replace("`", "")
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    heading = re.sub(r"[^\w\- ]", "", heading)
    return heading.replace(" ", "-")


def _anchors(path):
    anchors, seen = set(), {}
    for line in FENCE.sub("", _read(path)).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _cases():
    for page in PAGES:
        for target in _links(_read(page)):
            yield os.path.relpath(page, ROOT), target


def test_pages_exist_and_have_links():
    names = {os.path.basename(p) for p in PAGES[1:]}
    expected = {
        "loss.md", "live_values.md", "callbacks.md", "caching.md", "methods.md",
        "several_teachers.md", "text.md", "distribution.md", "reliability.md",
        "bad_input.md", "performance.md", "migrating.md", "evaluation.md", "examples.md",
    }
    assert expected <= names, f"missing guides: {sorted(expected - names)}"
    assert len(list(_cases())) > 20


@pytest.mark.parametrize("page,target", sorted(set(_cases())))
def test_relative_link_resolves(page, target):
    if SCHEME.match(target):
        pytest.skip("not a relative link")
    path, _, anchor = target.partition("#")
    source = os.path.join(ROOT, page)
    resolved = os.path.normpath(os.path.join(os.path.dirname(source), path)) if path else source
    assert os.path.exists(resolved), f"{page}: link to {target!r}, but {os.path.relpath(resolved, ROOT)} does not exist"
    if anchor and resolved.endswith(".md"):
        assert anchor in _anchors(resolved), (
            f"{page}: link to {target!r}, but {os.path.relpath(resolved, ROOT)} has no heading "
            f"with that anchor; it has {sorted(_anchors(resolved))}"
        )


def test_readme_is_at_most_250_lines():
    lines = _read(README).count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; keep it to {MAX_README_LINES}"
