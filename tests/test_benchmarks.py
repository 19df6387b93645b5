"""The README's benchmark tables are the ones benchmarks/summarize.py makes from the results."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _summarize():
    spec = importlib.util.spec_from_file_location("summarize", ROOT / "benchmarks" / "summarize.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_tables_match_results():
    s = _summarize()
    text = (ROOT / "README.md").read_text()
    assert f"{s.BEGIN}\n{s.block()}\n{s.END}" in text, (
        "run `.venv/bin/python benchmarks/summarize.py --write`"
    )


def test_results_name_their_machine():
    for name in ("vs_reference", "gpu", "workflow", "integration", "trajectory"):
        path = ROOT / "benchmarks" / "results" / f"{name}.json"
        data = json.loads(path.read_text())
        machine = data.get("machine") or data.get("python_machine")
        assert machine, f"{path.name} does not describe its machine"


def test_write_readme_replaces_only_the_block(tmp_path):
    s = _summarize()
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\n{s.BEGIN}\nold table\n{s.END}\n\n## after\n")
    s.write_readme(readme)
    text = readme.read_text()
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
