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
    assert f"{s.BEGIN}\n{s.block()}\n{s.END}" in text, "run `.venv/bin/python benchmarks/summarize.py --write`"


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
