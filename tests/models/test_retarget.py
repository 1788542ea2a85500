"""retarget: a head per class of the user's legend, known rows copied, new rows learnable."""

import pytest
import torch

from aerialseg.classes import DUBAI, ClassTable, check_known, match_names
from aerialseg.errors import AerialSegError
from aerialseg.models import create_model
from aerialseg.models.checkpoint import load_checkpoint, save_checkpoint
from aerialseg.models.retarget import retarget

NEW = ClassTable(
    names=("Tree", "Grass", "Crop", "road", "Building", "Water"),  # "road": any case matches
    colors=((0, 100, 0), (0, 200, 0), (200, 200, 0), (1, 1, 1), (2, 2, 2), (0, 0, 255)),
)
ARCHS = [("unet", {"base_filters": 4}), ("unet-effl0", {"decoder": [16, 8]})]


def _model(arch, kwargs):
    torch.manual_seed(0)
    model = create_model(arch, **kwargs).eval()
    with torch.no_grad():  # a trained-looking head: biases differ per class
        model.head.bias.copy_(torch.linspace(-3, 2, len(DUBAI)))
    return model


@pytest.mark.parametrize("arch, kwargs", ARCHS)
def test_known_classes_keep_their_logits_exactly(arch, kwargs):
    parent = _model(arch, kwargs)
    child = retarget(parent, DUBAI, NEW)
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        before, after = parent(x), child(x)
    assert after.shape[1] == len(NEW) == child.num_classes
    for i, j in enumerate(match_names(NEW, DUBAI)):
        if j is not None:
            assert torch.equal(child.head.weight[i], parent.head.weight[j])  # copied exactly
            assert torch.equal(child.head.bias[i], parent.head.bias[j])
            # the logits too (to float rounding: a conv of other width sums in another order)
            assert torch.allclose(after[:, i], before[:, j], atol=1e-5), NEW.names[i]
    assert parent.head.out_channels == len(DUBAI)  # the parent is left as it was


@pytest.mark.parametrize("arch, kwargs", ARCHS)
def test_new_classes_start_at_the_mean_logit(arch, kwargs):
    parent = _model(arch, kwargs)
    child = retarget(parent, DUBAI, NEW)
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        mean, new = parent(x).mean(1), child(x)[:, :3]  # Tree, Grass, Crop
    for k in range(3):
        assert torch.allclose(new[:, k], mean, atol=0.05 * float(mean.abs().max()) + 1e-3)
    assert not torch.equal(child.head.weight[0], child.head.weight[1])  # seeded noise
    again = retarget(parent, DUBAI, NEW)
    assert torch.equal(again.head.weight, child.head.weight)  # ... the same every time


def test_the_checkpoint_round_trips_with_the_new_table(tmp_path):
    child = retarget(_model("unet", {"base_filters": 4}), DUBAI, NEW)
    path = save_checkpoint(tmp_path / "child.safetensors", child, NEW)
    model, classes, _ = load_checkpoint(path)
    assert classes == NEW and model.num_classes == len(NEW)
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        assert torch.equal(model(x), child(x))


def test_a_selection_drops_and_reorders_outputs():
    parent = _model("unet", {"base_filters": 4})
    table = ClassTable(("Water", "Building"), ((0, 0, 255), (255, 0, 0)))
    child = retarget(parent, DUBAI, table)
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        before, after = parent(x), child(x)
    assert torch.allclose(after[:, 0], before[:, 4], atol=1e-5)
    assert torch.allclose(after[:, 1], before[:, 0], atol=1e-5)


def test_check_known_refuses_unknown_names_in_one_line():
    with pytest.raises(AerialSegError) as e:
        check_known(NEW, DUBAI, "legend.yaml")
    msg = str(e.value)
    assert msg.startswith("legend.yaml: classes Tree, Grass, Crop are not in the model")
    assert "aerialseg finetune --classes legend.yaml" in msg and "\n" not in msg


def test_check_known_lets_background_classes_go_but_not_land_cover():
    recoloured = ClassTable(DUBAI.names[:5], tuple((i, i, i) for i in range(5)))
    check_known(recoloured, DUBAI, "t.yaml")  # Unlabeled (background) left out: fine
    no_land = ClassTable(
        ("Building", "Road", "Vegetation", "Water"), tuple((i, i, i) for i in range(4))
    )
    with pytest.raises(AerialSegError, match="leaves out the model's class Land;"):
        check_known(no_land, DUBAI, "t.yaml")


def test_names_that_differ_only_in_case_are_refused():
    with pytest.raises(AerialSegError, match="differ only in case"):
        match_names(ClassTable(("Road", "road"), ((1, 1, 1), (2, 2, 2))), DUBAI)


def test_a_model_without_a_1x1_head_is_refused():
    model = _model("unet", {"base_filters": 4})
    model.head = torch.nn.Conv2d(4, len(DUBAI), 3)
    with pytest.raises(AerialSegError, match="no 1x1 class head"):
        retarget(model, DUBAI, NEW)
