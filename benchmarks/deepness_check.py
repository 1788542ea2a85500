"""The Deepness QGIS plugin loads and runs ``aerialseg export --target deepness``, with its own
code: does it get our classes, resolution and tile size, and the labels ``segment`` gives?

    pip install --no-deps --target /tmp/deepness-site "onnxruntime==1.17.0" \\
        "opencv-python-headless==4.9.0.80" flatbuffers "protobuf<5" coloredlogs \\
        humanfriendly packaging sympy mpmath
    .venv/bin/python benchmarks/deepness_check.py --site /tmp/deepness-site \\
        --deepness /path/to/qgis-plugin-deepness.git   # a clone, or a bare git dir

Stage 1 (this Python, aerialseg's): export the bundled model for Deepness, cut a tile of the
model's tile size from a Dubai image and write the whole image as a GeoTIFF at the model's
1 m/px (UTM 40N, so Deepness resamples nothing), and run ``aerialseg segment`` on both.

Stage 2 (Debian's python3 with python3-qgis, the onnxruntime and OpenCV versions Deepness
pins from ``--site``, and Deepness's source extracted from its git history into a temporary
folder, never into this repository): Deepness's ``Segmentor`` loads the model and reads its
metadata as the dock widget does; ``Segmentor.process`` (its /255, standardization, NHWC to
NCHW) and ``MapProcessorSegmentation._process_tile`` (its threshold and argmax) label the
tile; ``MapProcessorSegmentation`` segments the GeoTIFF as a QGIS layer, with the parameters
the metadata sets (tiles, overlap, resolution), as its own tests run it.

Deepness's labels are then compared with ``segment``'s. On the tile only the runtime and the
preprocessing differ; on the layer, also the tiling (Deepness crops each tile's overlap and
does not blend, ``segment`` runs one pass over an image this small), so less agreement there
is expected near tile seams.

Figure: the Deepness agreement figures (tile labels = PyTorch's, share equal to segment's on a
whole image), quoted in docs/results.md (QGIS and Deepness).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "Tile 1/images/image_part_001.jpg"
MARGIN = 64  # px: what Deepness crops off a 512 tile at 25 % overlap
MIRROR = "/work/.mirror/PUTvision+qgis-plugin-deepness/repo"


def aerialseg(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-m", "aerialseg", *args], check=True, env=env)


def prepare(folder: Path, image: Path) -> None:
    """Stage 1: the model, the tile, the GeoTIFF and ``segment``'s labels of both."""
    import numpy as np
    import rasterio
    from affine import Affine
    from PIL import Image

    model = folder / "aerialseg_deepness.onnx"
    aerialseg("export", "--target", "deepness", "--out", str(model), "--overwrite")
    photo = np.asarray(Image.open(image).convert("RGB"))
    h, w = photo.shape[:2]
    t = 512  # the export's default tile size
    top, left = (h - t) // 2, (w - t) // 2
    Image.fromarray(photo[top : top + t, left : left + t]).save(folder / "tile.png")
    profile = dict(driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32640")
    transform = Affine(1.0, 0, 326_400, 0, -1.0, 2_787_900)  # 1 m/px: the model's resolution
    with rasterio.open(folder / "layer.tif", "w", transform=transform, **profile) as dst:
        dst.write(photo.transpose(2, 0, 1))
    for name in ("tile.png", "layer.tif"):
        aerialseg("segment", str(folder / name), "--out", str(folder / "segment"), "--overwrite")


def extract(git_dir: str, into: Path) -> Path:
    """Deepness's ``src/deepness`` at HEAD of ``git_dir``, unpacked under ``into``."""
    data = subprocess.run(
        ["git", "--git-dir", git_dir, "archive", "HEAD", "src/deepness"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    head = ["git", "--git-dir", git_dir, "log", "-1", "--format=%h %cs"]
    print("Deepness", subprocess.run(head, capture_output=True, text=True).stdout.strip())
    return into / "src"


def run_deepness(folder: Path, site: str, src: Path, qgis_python: str) -> dict:
    """Stage 2 in QGIS's Python; returns what it found (``deepness.json``)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([site, str(src)]),
        "QT_QPA_PLATFORM": "offscreen",
    }
    cmd = [qgis_python, __file__, "--stage2", str(folder)]
    subprocess.run(cmd, check=True, env=env)
    return json.loads((folder / "deepness.json").read_text())


def stage2(folder: Path) -> None:
    """Inside QGIS's Python: Deepness's loader, tile processing and map processor."""
    from types import SimpleNamespace
    from unittest.mock import MagicMock

    import numpy as np
    import onnxruntime
    from deepness.common.channels_mapping import ChannelsMapping, ImageChannelStandaloneBand
    from deepness.common.processing_overlap import ProcessingOverlap, ProcessingOverlapOptions
    from deepness.common.processing_parameters.map_processing_parameters import (
        ProcessedAreaType,
    )
    from deepness.common.processing_parameters.segmentation_parameters import (
        SegmentationParameters,
    )
    from deepness.processing.map_processor.map_processor_segmentation import (
        MapProcessorSegmentation,
    )
    from deepness.processing.models.model_base import ModelBase
    from deepness.processing.models.model_types import ModelDefinition, ModelType
    from PIL import Image
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    app = QgsApplication([], False)
    app.initQgis()
    path = str(folder / "aerialseg_deepness.onnx")
    # as the dock widget loads a model: the type from its metadata picks the class
    model_type = ModelType(ModelBase.get_model_type_from_metadata(path))
    model = ModelDefinition.get_definition_for_type(model_type).model_class(path)
    found = {
        "onnxruntime": onnxruntime.__version__,
        "model_type": model_type.value,
        "class_names": model.outputs_names,
        "input_shape": model.get_input_shape(),
        "batch_size": model.get_model_batch_size(),
        "output_channels": model.get_number_of_output_channels(),
        "outputs_are_sigmoid": model.outputs_are_sigmoid,
        "resolution_cm": model.get_metadata_resolution(),
        "tile_size": model.get_metadata_tile_size(),
        "tiles_overlap": model.get_metadata_tiles_overlap(),
        "seg_thresh": model.get_metadata_segmentation_threshold(),
        "seg_small_segment": model.get_metadata_segmentation_small_segment(),
    }
    params = SegmentationParameters(
        resolution_cm_per_px=found["resolution_cm"],
        tile_size_px=model.get_input_size_in_pixels()[0],
        batch_size=1,
        local_cache=False,
        processed_area_type=ProcessedAreaType.ENTIRE_LAYER,
        mask_layer_id=None,
        input_layer_id="",
        input_channels_mapping=rgb_mapping(ChannelsMapping, ImageChannelStandaloneBand),
        postprocessing_dilate_erode_size=found["seg_small_segment"],
        processing_overlap=ProcessingOverlap(
            ProcessingOverlapOptions.OVERLAP_IN_PERCENT, percentage=found["tiles_overlap"]
        ),
        pixel_classification__probability_threshold=found["seg_thresh"],
        model=model,
    )
    tile = np.asarray(Image.open(folder / "tile.png").convert("RGB"))[None]
    probs = model.process(tile)[0]
    found["tile_probability_sum"] = [float(probs.sum(1).min()), float(probs.sum(1).max())]
    owner = SimpleNamespace(model=model, segmentation_parameters=params)
    labels = MapProcessorSegmentation._process_tile(owner, tile)[0, 0] - 1  # its MADD1: +1
    np.save(folder / "deepness_tile.npy", labels.astype(np.uint8))

    rlayer = QgsRasterLayer(str(folder / "layer.tif"), "dubai")
    QgsProject.instance().addMapLayer(rlayer)
    params.input_layer_id = rlayer.id()
    processor = MapProcessorSegmentation(
        rlayer=rlayer, vlayer_mask=None, map_canvas=MagicMock(), params=params
    )
    processor.run()
    result = processor.get_result_img()
    np.save(folder / "deepness_layer.npy", result[0].astype(np.int16) - 1)  # -1: outside
    (folder / "deepness.json").write_text(json.dumps(found, indent=1))
    app.exitQgis()


def rgb_mapping(ChannelsMapping, ImageChannelStandaloneBand):  # noqa: N803 - Deepness's classes
    """Bands 1-3 to the model's 3 inputs, as Deepness's channel widget maps an RGB layer."""
    mapping = ChannelsMapping()
    bands = [ImageChannelStandaloneBand(band_number=i + 1, name=n) for i, n in enumerate("rgb")]
    mapping.set_image_channels(bands)
    mapping.set_number_of_model_inputs_same_as_image_channels()
    return mapping


def agreement(a, b) -> tuple[float, tuple]:
    """Share of equal labels over the pixels both cover (Deepness's result may differ from
    the image by a pixel where its extent is rounded to the tile grid)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:h, :w], b[:h, :w]
    inside = b >= 0
    return float((a[inside] == b[inside]).mean()), (h, w)


def forward(png: Path):
    """Labels of one plain fp32 forward pass of the bundled model (what the export is)."""
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT / "src"))
    from aerialseg.inference.segmenter import DEFAULT_MODEL
    from aerialseg.models.checkpoint import load_checkpoint
    from aerialseg.models.export import inference_copy

    rgb = torch.from_numpy(np.asarray(Image.open(png).convert("RGB")).copy())
    net = inference_copy(load_checkpoint(DEFAULT_MODEL)[0])
    with torch.inference_mode():
        return net(rgb.permute(2, 0, 1)[None].float()).argmax(1)[0].numpy()


def compare(folder: Path, found: dict) -> None:
    import numpy as np
    import rasterio
    from PIL import Image

    print(json.dumps(found, indent=1))
    ours_tile = np.asarray(Image.open(folder / "segment" / "tile_labels.png"))
    deep_tile = np.load(folder / "deepness_tile.npy")
    share, shape = agreement(forward(folder / "tile.png"), deep_tile)
    print(f"tile {shape[1]}x{shape[0]} (Segmentor.process + _process_tile): labels equal to "
          f"the PyTorch model's on the same tile (fp32) on {share:.3%} of pixels")  # fmt: skip
    share, _ = agreement(ours_tile, deep_tile)
    m = MARGIN
    inner, _ = agreement(ours_tile[m:-m, m:-m], deep_tile[m:-m, m:-m])
    print(f"  to `aerialseg segment`'s on {share:.3%} ({inner:.3%} beyond {m} px of the tile's "
          "edges: segment adds reflected context around an image, Deepness does not)")  # fmt: skip
    with rasterio.open(folder / "segment" / "layer_labels.tif") as src:
        ours_layer = src.read(1)
    deep = np.load(folder / "deepness_layer.npy")
    share, shape = agreement(ours_layer, deep)
    print(f"layer {shape[1]}x{shape[0]} (MapProcessorSegmentation; ours {ours_layer.shape[::-1]}, "
          f"Deepness {deep.shape[::-1]}): labels equal on {share:.3%} of pixels")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deepness", default=MIRROR, help="Deepness's git dir (default: %(default)s)")
    p.add_argument("--site", help="folder with Deepness's pinned onnxruntime and OpenCV")
    p.add_argument("--qgis-python", default="/usr/bin/python3", help="a Python with qgis")
    p.add_argument("--image", help=f"a photo (default: $AERIALSEG_DATA/{IMAGE})")
    p.add_argument("--out", default="runs/deepness_check", help="work folder")
    p.add_argument("--stage2", metavar="FOLDER", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage2:
        return stage2(Path(args.stage2))
    if not args.site:
        p.error("--site: a folder holding onnxruntime<=1.17 and opencv (see the docstring)")
    data = Path(os.environ.get("AERIALSEG_DATA", ROOT / "../shared/datasets/dubai-aerial"))
    folder = Path(args.out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    prepare(folder, Path(args.image) if args.image else data / IMAGE)
    with tempfile.TemporaryDirectory() as tmp:
        found = run_deepness(folder, args.site, extract(args.deepness, Path(tmp)), args.qgis_python)
    compare(folder, found)


if __name__ == "__main__":
    main()
