"""docs/benchmarks.md holds the tables benchmarks/summarize.py makes; the README holds none."""

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _summarize():
    spec = importlib.util.spec_from_file_location("summarize", ROOT / "benchmarks" / "summarize.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_tables_match_results():
    s = _summarize()
    assert s.DOC == ROOT / "docs" / "benchmarks.md"
    text = s.DOC.read_text()
    assert f"{s.BEGIN}\n{s.block()}\n{s.END}" in text, (
        "run `.venv/bin/python benchmarks/summarize.py --write`"
    )


def test_readme_is_a_front_door():
    """Short, no benchmark tables, and every docs/ page it links to exists."""
    s = _summarize()
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert s.BEGIN not in text and s.END not in text
    links = set(re.findall(r"docs/[\w./-]+\.md", text))
    assert {"docs/methods.md", "docs/benchmarks.md", "docs/architecture.md"} <= links
    missing = sorted(link for link in links if not (ROOT / link).is_file())
    assert not missing, f"README links to missing pages: {missing}"


def test_results_name_their_machine():
    for name in ("vs_reference", "gpu", "workflow", "integration", "trajectory"):
        path = ROOT / "benchmarks" / "results" / f"{name}.json"
        data = json.loads(path.read_text())
        machine = data.get("machine") or data.get("python_machine")
        assert machine, f"{path.name} does not describe its machine"


def test_write_tables_replaces_only_the_block(tmp_path):
    s = _summarize()
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# top\n\n{s.BEGIN}\nold table\n{s.END}\n\n## after\n")
    s.write_tables(page)
    text = page.read_text()
    assert text.startswith("# top\n\n") and text.endswith("\n\n## after\n")
    assert "old table" not in text and s.block() in text


def _common():
    spec = importlib.util.spec_from_file_location("_common", ROOT / "benchmarks" / "_common.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_run_watched_kills_a_run_past_the_memory_cap(tmp_path):
    import sys

    c = _common()
    grow = (
        "import time\nx = []\nfor _ in range(40):\n"
        "    x.append(bytearray(50 * 2**20)); time.sleep(0.05)\nprint('survived')"
    )
    res = c.run_watched(
        [sys.executable, "-c", grow],
        cwd=tmp_path,
        env=c.thread_env(1),
        log=tmp_path / "log",
        cap_gb=0.4,
    )
    assert res["status"] == "out_of_memory" and res["killed_at_rss_gb"] > 0.4
    assert "survived" not in res["stdout"]
    ok = c.run_watched(
        [sys.executable, "-c", "print('hi')"],
        cwd=tmp_path,
        env=c.thread_env(1),
        log=tmp_path / "log",
        cap_gb=0.4,
    )
    assert ok["status"] == "ok" and ok["stdout"] == ["hi"] and ok["peak_rss_gb"] < 0.4
    bad = c.run_watched(
        [sys.executable, "-c", "raise SystemExit(3)"],
        cwd=tmp_path,
        env=c.thread_env(1),
        log=tmp_path / "log",
        cap_gb=0.4,
    )
    assert bad["status"] == "failed" and bad["returncode"] == 3
