"""The README and docs/: every relative link resolves to a file (and heading) of the repository,
and the README stays a short guide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 25_000
PICTURE_MAX_BYTES = 200_000

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub gives a page: lowercase, punctuation dropped, spaces to
    hyphens, a repeated anchor numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    result = set()
    for title in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, mailto:, ...


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or root not in [resolved, *resolved.parents]:
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_link_check_finds_a_broken_file_and_heading(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title: one\n\n[ok](#title-one) [gone](missing.md) [bad](#nope)\n"
                    "```sh\n[in code](ignored.md)\n```\n", encoding="utf-8")
    assert broken_links(page, root=tmp_path) == ["missing.md: no such file",
                                                 "#nope: no such heading"]


def test_readme_is_a_short_guide_that_links_every_docs_page():
    readme = ROOT / "README.md"
    assert readme.stat().st_size < README_MAX_BYTES
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(readme)}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert unlinked == []


def test_pictures_in_the_docs_are_small():
    for page in PAGES:
        for target in relative_links(page):
            path = (page.parent / target.partition("#")[0]).resolve()
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".webp") and path.exists():
                assert path.stat().st_size < PICTURE_MAX_BYTES, path
