"""The README is the front door: short, every figure in it also in
docs/results.md (where its command is), every relative link alive, and no
document cited from outside the repository."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and link targets."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_readme_is_short():
    assert len(README.splitlines()) < 350


def test_every_readme_figure_is_in_the_results_document():
    text = _prose(README)
    numbers = set(re.findall(r"(?<![\w.])\d+\.\d+(?:x|%)?(?![\w.]*\d)", text))
    numbers |= set(re.findall(r"\d+\.\d+ ± \d+\.\d+", text))
    numbers |= set(re.findall(r"p = \d+\.\d+", text))
    assert len(numbers) > 20  # the table of numbers to cite is there
    missing = [
        n
        for n in sorted(numbers)
        if not re.search(r"(?<![\d.])" + re.escape(n) + r"(?![\d])", RESULTS)
    ]
    assert not missing, f"in the README but not in docs/results.md: {missing}"


def test_relative_links_point_at_files():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (doc.parent / target).exists(), (doc.name, target)


def test_no_document_outside_the_repository_is_cited():
    outside = re.compile(r"PROTOCOL\.md|ANCHORS\.md|STYLE\.md|HOUSE\.md")
    paths = [
        p
        for p in ROOT.rglob("*")
        if p.suffix in (".py", ".md", ".sh", ".toml")
        and ".git" not in p.parts
        and "runs" not in p.parts
    ]
    cited = [
        str(p.relative_to(ROOT))
        for p in paths
        if p.name != "test_docs.py"
        and outside.search(p.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not cited, cited
