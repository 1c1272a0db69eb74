"""The example notebook (examples/notebook.ipynb) runs on a real Jupyter kernel (nbclient +
ipykernel) and its outputs hold an inline mosaic."""

from __future__ import annotations

import base64

import pytest
from conftest import REPO

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.real_data
def test_the_example_notebook_runs_and_shows_a_mosaic(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "examples" / "notebook.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    grid_cell = next(c for c in nb.cells if c.source.startswith("grid = la.decode_grid"))
    (shown,) = [o for o in grid_cell.outputs if o.output_type == "execute_result"]
    assert base64.b64decode(shown.data["image/png"]).startswith(PNG)
    assert 'src="data:image/png;base64,' in shown.data["text/html"]
    assert "21 × 21, each 1×28×28" in shown.data["text/html"]
    last = nb.cells[-1].outputs[0].data["text/plain"]
    assert 0.5 < float(last) < 1.0  # the shipped VAE's k-NN accuracy, 0.711
