import numpy as np
import pytest
import torch

from aerialseg.classes import DUBAI
from aerialseg.errors import AerialSegError
from aerialseg.inference.segmenter import Segmenter
from aerialseg.inference.tiling import Tiling, count_windows, spline_window
from aerialseg.models import SegmentationModel, create_model


class PixelModel(SegmentationModel):
    """Per-pixel (1x1) classifier: equivariant to every flip, rotation and crop, so any
    tiling or TTA must reproduce its single-pass output exactly."""

    name = "pixel"

    def __init__(self, num_classes=6, constant=False):
        super().__init__(num_classes)
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, num_classes, 1)
        self.constant = constant

    def forward(self, x):
        if self.constant:
            return (
                torch.arange(self.num_classes, dtype=x.dtype)
                .view(1, -1, 1, 1)
                .expand(x.shape[0], -1, *x.shape[2:])
                * 0.5
            )
        return self.conv(self.normalize(x))


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ramp", [0, 8, 32])
def test_spline_windows_of_neighbours_sum_to_one(ramp):
    size, stride = 128, 128 - ramp
    total = np.zeros(size + 5 * stride)
    for i in range(6):
        total[i * stride : i * stride + size] += spline_window(size, ramp)
    inner = total[size : 5 * stride]  # where windows overlap on both sides
    assert np.allclose(inner, 1.0)
    assert np.all(np.diff(spline_window(size, ramp)[:ramp]) > 0)  # smooth rise


def test_constant_logits_give_a_seam_free_constant_output():
    seg = Segmenter(
        PixelModel(constant=True),
        DUBAI,
        precision="fp32",
        tiling=Tiling(window=64, overlap=0.5, batch_size=1),
    )
    probs = seg.predict_proba(rgb(150, 231))
    assert count_windows(150, 231, seg.tiling) > 6
    expected = torch.softmax(torch.arange(6) * 0.5, 0).numpy()
    assert np.allclose(probs, expected, atol=1e-6)


@pytest.mark.parametrize("window", [64, 96, 1024])
def test_tiled_prediction_of_a_per_pixel_model_is_exact(window):
    image = rgb(131, 203, 1)
    single = Segmenter(
        PixelModel(), DUBAI, precision="fp32", tiling=Tiling(window=2048)
    ).predict_proba(image)
    tiled = Segmenter(
        PixelModel(),
        DUBAI,
        precision="fp32",
        tiling=Tiling(window=window, overlap=0.25, batch_size=2),
    ).predict_proba(image)
    assert np.allclose(single, tiled, atol=1e-5)


def test_tta_of_an_equivariant_model_is_exact():
    seg = Segmenter(PixelModel(), DUBAI, precision="fp32", tiling=Tiling(window=64))
    image = rgb(70, 90, 2)
    assert np.allclose(seg.predict_proba(image, tta=True), seg.predict_proba(image), atol=1e-5)


def test_tta_averages_the_eight_transforms_of_a_non_equivariant_model():
    class LeftRight(PixelModel):  # class 0 on the left half, class 1 on the right half
        def forward(self, x):
            n, _, h, w = x.shape
            out = torch.zeros(n, self.num_classes, h, w)
            out[:, 0, :, : w // 2] = 10
            out[:, 1, :, w // 2 :] = 10
            return out

    seg = Segmenter(LeftRight(), DUBAI, precision="fp32", tiling=Tiling(window=2048))
    plain, tta = seg.predict_proba(rgb(64, 64)), seg.predict_proba(rgb(64, 64), tta=True)
    assert plain[:, :32, 0].min() > 0.99
    assert 0.2 < tta[:, :32, 0].mean() < 0.8  # the rotations moved class 0 around


@pytest.mark.parametrize("hw", [(257, 1031), (31, 17), (1, 1)])
def test_outputs_keep_the_input_size(hw):
    seg = Segmenter(create_model("unet", base_filters=4), DUBAI, tiling=Tiling(window=128))
    labels = seg.segment(rgb(*hw))
    assert labels.shape == hw and labels.dtype == np.uint8
    assert seg.predict_proba(rgb(*hw)).shape == (*hw, 6)


def test_bands_stream_in_order_and_match_whole_image_prediction():
    model = create_model("unet", base_filters=4).eval()
    seg = Segmenter(model, DUBAI, precision="fp32", tiling=Tiling(window=64, batch_size=1))
    image = rgb(200, 150, 3)
    whole = seg.predict_proba(image)
    y = 0
    for start, band in seg.bands(image):
        assert start == y and band.shape[1:] == (150, 6)
        assert np.array_equal(band, whole[start : start + len(band)])
        y += len(band)
    assert y == 200
    assert np.array_equal(seg.segment(image), whole.argmax(-1))


def test_preprocess_is_what_the_model_is_fed():
    seg = Segmenter(PixelModel(), DUBAI, precision="fp32")
    image = rgb(20, 30)
    x = seg.preprocess(image)
    assert x.shape == (1, 3, 20, 30) and x.dtype == torch.float32
    direct = seg.model(x).softmax(1)[0].permute(1, 2, 0).detach().numpy()
    assert np.allclose(direct, seg.predict_proba(image), atol=1e-5)


def test_bad_arrays_and_tiling_are_refused():
    seg = Segmenter(PixelModel(), DUBAI)
    with pytest.raises(AerialSegError, match="H, W, 3"):
        seg.segment(np.zeros((4, 4), np.uint8))
    with pytest.raises(AerialSegError, match="uint8"):
        seg.segment(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(AerialSegError, match="window"):
        Tiling(window=100)


def test_a_pil_image_is_named_not_refused_for_its_own_shape():
    from PIL import Image

    with pytest.raises(AerialSegError) as e:
        Segmenter(PixelModel(), DUBAI).segment(Image.fromarray(rgb(5, 7)))
    assert "got a PIL.Image.Image" in str(e.value) and "(5, 7, 3)" not in str(e.value)


def test_bundled_model_loads_offline_and_describes_itself():
    from aerialseg.inference.segmenter import DEFAULT_MODEL, load_model

    assert DEFAULT_MODEL.is_file(), "the bundled model must ship with the package"
    assert DEFAULT_MODEL.stat().st_size < 10 * 2**20
    seg = load_model()
    assert seg.classes == DUBAI and seg.name == "default"
    assert seg.meta["split"] == "image" and len(seg.meta["val_images"]) >= 10
    labels = seg.segment(rgb(40, 50))
    assert labels.shape == (40, 50) and labels.max() < 6


def test_bundled_model_on_its_held_out_real_images(real_data):
    """The shipped model must still score what its README table says on images it never saw
    (two of them here, to keep the default test run short)."""
    from aerialseg.data.segmentation import find_pairs, load_sample
    from aerialseg.inference.evaluate import evaluate
    from aerialseg.inference.segmenter import load_model

    seg = load_model()
    held = set(seg.meta["val_images"])
    samples = [load_sample(p, DUBAI) for p in find_pairs(real_data) if p.id in held][:2]
    assert len(samples) == 2
    result = evaluate(seg, samples)
    assert result["pixel_accuracy"] > 0.75, result


def test_scales_average_the_maps_of_resampled_images():
    tiling = Tiling(window=64, overlap=0.25, batch_size=2)
    image = rgb(90, 130, seed=4)
    one = {s: Segmenter(PixelModel(), DUBAI, None, "fp32", tiling, scales=(s,)) for s in (0.5, 1)}
    both = Segmenter(PixelModel(), DUBAI, None, "fp32", tiling, scales=(0.5, 1.0))
    p_half, p_one, p_both = (x.predict_proba(image) for x in (one[0.5], one[1], both))
    assert p_half.shape == p_both.shape == (90, 130, 6)
    assert np.allclose(p_half.sum(-1), 1, atol=1e-5)
    assert not np.allclose(p_half, p_one, atol=1e-3)  # the half-size view differs...
    assert np.allclose(p_both, (p_half + p_one) / 2, atol=1e-5)  # ...and scales average
    assert both.count_windows(90, 130) == count_windows(45, 65, tiling) + count_windows(
        90, 130, tiling
    )
    done = []
    list(both.bands(image, on_window=done.append))
    assert sum(done) == both.count_windows(90, 130)
    with pytest.raises(AerialSegError, match="positive"):
        Segmenter(PixelModel(), DUBAI, scales=(0.0,))


def test_each_flip_rotation_is_undone_exactly():
    from aerialseg.inference.segmenter import _dihedral_t, _undo_dihedral_t

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # H != W
    seen = set()
    for k in range(8):
        y = _dihedral_t(x, k)
        seen.add(y.flatten().tolist().__str__())
        assert torch.equal(_undo_dihedral_t(y, k), x), k
    assert len(seen) == 8  # eight different transforms
