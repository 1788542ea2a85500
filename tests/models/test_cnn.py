import pytest
import torch

from aerialseg.data.imageset import class_table
from aerialseg.errors import AerialSegError
from aerialseg.models import create_model, list_models
from aerialseg.models.checkpoint import load_checkpoint, save_checkpoint


def test_islr_cnn_matches_the_lab():
    m = create_model("cnn-islr", num_classes=100)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    pools = [x for x in m.modules() if isinstance(x, torch.nn.MaxPool2d)]
    assert len(pools) == 4
    assert [x.p for x in m.modules() if isinstance(x, torch.nn.Dropout)] == [0.5]
    dense = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(1024, 512), (512, 100)]
    # the parameter count ISLR2 prints for its Keras model summary
    assert sum(p.numel() for p in m.parameters()) == 964_516
    assert m(torch.rand(3, 3, 32, 32) * 255).shape == (3, 100)


def test_seed_variant_and_options():
    m = create_model("cnn-seed", num_classes=5)
    assert len([x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]) == 3
    assert [x.p for x in m.modules() if isinstance(x, torch.nn.Dropout)] == [0.65]
    m = create_model("cnn-islr", num_classes=4, input_size=64, base_filters=8, dropout=0.3)
    assert m.config["base_filters"] == 8 and m.config["dropout"] == 0.3
    assert m(torch.rand(2, 3, 64, 64)).shape == (2, 4)
    p = m.predict(torch.rand(2, 3, 64, 64))
    assert not p.requires_grad and torch.allclose(p.sum(1), torch.ones(2))


def test_bad_input_size_is_a_clear_error():
    with pytest.raises(AerialSegError, match="multiple of 2\\*\\*blocks=16"):
        create_model("cnn-islr", input_size=40)


def test_registry_keeps_tasks_apart():
    assert "cnn-islr" not in list_models()  # what train/segment accept
    assert list_models("classification") == ["cnn-islr", "cnn-seed"]
    with pytest.raises(AerialSegError) as e:
        create_model("vgg")
    assert "cnn-islr" in str(e.value) and "unet" in str(e.value)


def test_classifier_checkpoint_round_trip_and_task_check(tmp_path):
    m = create_model("cnn-seed", num_classes=3, base_filters=4, dense=16).eval()
    path = save_checkpoint(
        tmp_path / "c.safetensors", m, class_table(["a", "b", "c"]), task="classification"
    )
    with pytest.raises(AerialSegError, match="classification model"):
        load_checkpoint(path)  # the segmentation tools must refuse it clearly
    back, classes, meta = load_checkpoint(path, task="classification")
    x = torch.rand(2, 3, 32, 32) * 255
    assert torch.equal(back(x), m(x))
    assert classes.names == ("a", "b", "c") and meta["task"] == "classification"
