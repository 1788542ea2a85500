"""Drawing a result: the image is scaled to the view keeping its shape."""

from __future__ import annotations

from aerialseg.app.views import fit


def test_fit_keeps_the_shape():
    assert fit((1024, 768), (512, 512)) == (512, 384)
    assert fit((100, 400), (600, 200)) == (50, 200)
