"""The notebook acceptance of issue 34: displaying a dataset, a network, a progress bar and an
evaluation result runs headless with no warning printed, every displayed repr under 1,000
characters."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def test_display_notebook_prints_no_warning_and_short_reprs(shared_dir, monkeypatch):
    monkeypatch.setenv("GRAPH_NTK_DATA", str(shared_dir / "datasets"))
    nb = nbformat.read(ROOT / "examples" / "display.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "examples")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Warning" not in streams and "warn" not in streams.lower(), streams[-500:]
    shown = [o for o in outputs if o.output_type in ("execute_result", "display_data")]
    # the job's one bar (text, or the widget where ipywidgets is installed)
    bars = streams + "".join(o["data"].get("text/plain", "") for o in shown)
    assert "gram" in bars, bars[-500:]
    assert len(shown) >= 6
    for o in shown:
        for mime, text in o["data"].items():
            assert len(text) < 1000, (mime, text[:200])
    assert any("text/markdown" in o["data"] or "text/html" in o["data"] for o in shown)
