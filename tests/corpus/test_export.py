"""``aerialseg export`` (landed after the rest of the corpus) against the bad model files and
an output it cannot write: one line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from .cases import MODEL_KINDS, bad_models
from .conftest import leftovers, refused


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_export_refuses_bad_models(kind, cli, segmenter, classifier, tmp_path):
    make, says = bad_models(segmenter, classifier, "a classification model, not a segmentation")[
        kind
    ]
    (tmp_path / "m").mkdir()
    model = make(tmp_path / "m")
    out = tmp_path / "out"
    out.mkdir()
    r = cli("export", "--model", model, "--out", out / "m.onnx")
    refused(r, str(model), says)
    assert leftovers(out) == [] and not (tmp_path / "m" / "PWNED").exists()


def test_export_into_a_file(cli, segmenter, tmp_path):
    (tmp_path / "taken").write_text("mine")
    r = cli("export", "--model", segmenter, "--out", tmp_path / "taken" / "m.onnx")
    refused(r, "taken", "")
    assert (tmp_path / "taken").read_text() == "mine"
