"""kseg.report.tables.write_section: a rerun of a benchmark replaces its table where it stands."""

import platform
import re

from kseg.report.tables import machine, publish, write_section

DOC = """# Benchmarks

Intro.

## Training speed

### Training on crops

_2026-01-01, old machine_

crop table

### Input pipeline vs training step

_2026-01-01, old machine_

old pipeline table

```bash
# a comment, not a heading
python benchmarks/bench_pipeline.py
```

### After

after body

## Test-time augmentation

tta body
"""


def headings(text):
    """The markdown headings of ``text``, fenced code left out."""
    return re.findall(r"^#+ .*$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), re.M)


def test_a_section_under_a_group_is_replaced_in_place_at_its_level(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    before = headings(DOC)
    write_section(doc, "Input pipeline vs training step", "new pipeline table")
    text = doc.read_text()
    assert headings(text) == before  # nothing appended, no level changed, order kept
    assert "old pipeline table" not in text and "a comment, not a heading" not in text
    assert "new pipeline table" in text and machine() in text
    assert text.index("### Input pipeline") < text.index("new pipeline table") < text.index("### After")
    for kept in ("crop table", "after body", "tta body", "Intro."):
        assert kept in text


def test_a_rerun_replaces_again(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    write_section(doc, "Input pipeline vs training step", "first rerun")
    write_section(doc, "Input pipeline vs training step", "second rerun")
    text = doc.read_text()
    assert text.count("Input pipeline vs training step") == 1
    assert "first rerun" not in text and "second rerun" in text
    assert "\n\n\n" not in text


def test_duplicates_left_by_an_appending_rerun_are_folded_into_the_first(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC + "\n## Input pipeline vs training step\n\nappended table\n")
    write_section(doc, "Input pipeline vs training step", "current table")
    text = doc.read_text()
    assert headings(text) == headings(DOC)
    assert "appended table" not in text and "old pipeline table" not in text
    assert text.index("current table") < text.index("### After")


def test_a_heading_inside_a_code_fence_is_not_a_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Doc\n\n```bash\n# Setup\necho hi\n```\n\n## Other\n\nbody\n")
    write_section(doc, "Setup", "setup table")
    text = doc.read_text()
    assert "# Setup\necho hi" in text  # the code block is untouched
    assert text.rstrip().endswith("setup table") and "## Setup" in text


def test_new_or_not_replaced_sections_are_appended(tmp_path):
    doc = tmp_path / "sub" / "benchmarks.md"
    write_section(doc, "First", "one")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n") and "## First\n" in text
    write_section(doc, "First", "two", replace=False)
    assert doc.read_text().count("## First\n") == 2


def test_publish_prints_and_replaces(tmp_path, capsys):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    publish("published table", doc, "Training on crops")
    assert "published table" in capsys.readouterr().out
    text = doc.read_text()
    assert headings(text) == headings(DOC) and "crop table" not in text


def test_the_stamp_names_the_cpu():
    from kseg.report.tables import cpu_name

    name = cpu_name()
    assert name and name in machine() and platform.machine() in machine()
    try:
        with open("/proc/cpuinfo") as f:
            listed = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        listed = []
    if listed:
        assert name == listed[0]
