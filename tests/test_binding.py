"""IO binding: outputs land in the caller's buffers (or one reused buffer), equal to a plain
``session.run``, and failures are one line naming the model."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from latent_atlas.toolkit.binding import BoundRunner
from latent_atlas.toolkit.errors import AtlasError
from toy_onnx import linear_decoder


@pytest.fixture
def session(tmp_path):
    path = linear_decoder(tmp_path / "d.onnx", np.array([0.05, -0.1]), 0.5)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_run_into_writes_the_callers_arrays(session):
    z = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    (expected,) = session.run(None, {"z": z})
    target = np.zeros((20, 1, 28, 28), np.float32)
    runner = BoundRunner(session, "z")
    runner.run_into(z, {"image": target[5:15]})  # a slice of a larger result array
    np.testing.assert_array_equal(target[5:15], expected)
    assert not target[:5].any() and not target[15:].any()


def test_run_reused_reuses_one_buffer(session):
    rng = np.random.default_rng(1)
    runner = BoundRunner(session, "z")
    first_z, second_z = (rng.normal(size=(8, 2)).astype(np.float32) for _ in range(2))
    first = runner.run_reused(first_z, "image", (1, 28, 28))
    snapshot = np.array(first)
    second = runner.run_reused(second_z[:3], "image", (1, 28, 28))  # a short last batch
    assert isinstance(second, np.ndarray) and second.shape == (3, 1, 28, 28)
    assert np.shares_memory(first, second)  # same memory: valid until the next call
    np.testing.assert_array_equal(snapshot, session.run(None, {"z": first_z})[0])
    np.testing.assert_array_equal(second, session.run(None, {"z": second_z[:3]})[0])


def test_failure_is_one_line_naming_the_model(session):
    runner = BoundRunner(session, "z", where="decoder d.onnx")
    with pytest.raises(AtlasError, match=r"^decoder d.onnx: onnxruntime failed on a batch of 4"):
        runner.run_into(np.zeros((4, 3), np.float32), {"image": np.empty((4, 1, 28, 28), "f4")})
    with pytest.raises(AtlasError, match="not contiguous"):
        runner.run_into(np.zeros((4, 2), np.float32), {"image": np.empty((4, 1, 28, 56))[..., ::2]})
    with pytest.raises(AtlasError, match="device 'tpu'"):
        BoundRunner(session, "z", "tpu")
