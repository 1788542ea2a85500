"""Can a user teach the model a new place? Strokes or polygons on one half, scores on the other.

Protocol (issue 24). **New place**: each labelled scene of ``--oem`` (OpenEarthMap, ~0.5 m,
masks in our class indices, 255 unlabelled) gets simulated brush strokes on its TOP half:
discs of radius 8-16 px centred on random labelled pixels, a share ``--on-errors`` of them
on pixels the parent gets wrong (a user paints where the map is wrong), until ``--fractions``
of the top half is labelled. All scenes' strokes go into ONE ``aerialseg finetune`` run (the
library function the command calls, default settings); the BOTTOM halves, never painted, are
scored before and after. ``--polygons`` labels the top halves instead with squares of 20-40 px
wholly inside one class, written to a GeoPackage in EPSG:3857 (not the images' CRS) and read
through ``--labels polygons.gpkg --class-field class``.

**At home** (``--home``): the bundled model never trained on the images its checkpoint lists
as ``val_images``; two of them (one tile's) are painted the same way, and the scores are on
the other held-out images (the gain) and on one training image per tile (what is forgotten).

Every row is appended to ``--out``/results.jsonl; a figure per case goes beside it.

    python benchmarks/new_place.py --fractions 0.005,0.02,0.05 --home --polygons

Figure: the teach-a-new-place tables (bottom-half accuracy after strokes or polygons; at home),
quoted in docs/results.md and docs/tutorials/new_place.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from aerialseg.classes import IGNORE_INDEX
from aerialseg.config import FinetuneConfig
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference.segmenter import DEFAULT_MODEL, load_segmenter
from aerialseg.io.images import save_image
from aerialseg.metrics import SegmentationMetrics
from aerialseg.training.finetune import finetune

HERE = Path(__file__).resolve().parents[1]
OEM = HERE.parent / "shared/datasets/other-places/labelled/oem"
DUBAI = Path(os.environ.get("AERIALSEG_DATA", HERE.parent / "shared/datasets/dubai-aerial"))


def strokes(truth, pred, region, fraction, on_errors, rng):
    """Disc strokes of radius 8-16 px inside ``region`` (bool) labelled from ``truth`` until
    ``fraction`` of the region is labelled; a share ``on_errors`` centred on a wrong pixel."""
    h, w = truth.shape
    labels = np.full((h, w), IGNORE_INDEX, np.uint8)
    valid = region & (truth != IGNORE_INDEX)
    wrong, anywhere = np.flatnonzero(valid & (pred != truth)), np.flatnonzero(valid)
    yy, xx = np.mgrid[-16:17, -16:17]
    target = fraction * region.sum()
    while np.count_nonzero(labels != IGNORE_INDEX) < target:
        pool = wrong if (rng.random() < on_errors and len(wrong)) else anywhere
        cy, cx = divmod(int(pool[rng.integers(len(pool))]), w)
        r = rng.uniform(8, 16)
        disc = yy**2 + xx**2 <= r * r
        ys, xs = cy + yy[disc], cx + xx[disc]
        inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        ys, xs = ys[inside], xs[inside]
        keep = valid[ys, xs]
        labels[ys[keep], xs[keep]] = truth[ys[keep], xs[keep]]
    return labels


def squares(truth, region, count, rng):
    """``count`` squares of 20-40 px wholly inside one labelled class within ``region``, as
    a user digitises training areas: (class, row0, col0, side) each."""
    h, w = truth.shape
    out, tries = [], 0
    while len(out) < count and tries < 100 * count:
        tries += 1
        side = int(rng.integers(20, 41))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        patch, inside = truth[y : y + side, x : x + side], region[y : y + side, x : x + side]
        if inside.all() and patch[0, 0] != IGNORE_INDEX and (patch == patch[0, 0]).all():
            out.append((int(patch[0, 0]), y, x, side))
    return out


def score(classes, truths, preds, regions) -> dict:
    m = SegmentationMetrics(len(classes), classes.land_cover)
    for t, p, r in zip(truths, preds, regions):
        target = np.where(r, t, IGNORE_INDEX)
        m.update(torch.from_numpy(target).long()[None], torch.from_numpy(p).long()[None])
    r = m.compute()
    return {k: r[k] for k in ("pixel_accuracy", "mean_iou_land_cover", "per_class_iou")}


def read_scene(path: Path):
    import rasterio

    with rasterio.open(path) as src:
        return np.ascontiguousarray(src.read([1, 2, 3]).transpose(1, 2, 0))


def oem_scenes(root: Path):
    """(name, image path, RGB, truth) for each labelled scene."""
    import rasterio

    out = []
    for image in sorted((root / "images").glob("*.tif")):
        with rasterio.open(root / "masks" / image.name) as src:
            truth = src.read(1)
        out.append((image.stem, image, read_scene(image), truth))
    return out


def write_polygons(path: Path, scene_squares, images, names) -> None:
    """The squares as a GeoPackage layer in EPSG:3857 (not the images' CRS), with a
    ``class`` field of class names, written without geopandas."""
    import pyogrio.raw
    import rasterio
    import shapely
    from pyproj import Transformer

    geoms, classes = [], []
    for squares_i, image in zip(scene_squares, images):
        with rasterio.open(image) as src:
            affine, crs = src.transform, src.crs
        to = Transformer.from_crs(crs, "EPSG:3857", always_xy=True).transform
        for c, y, x, side in squares_i:
            corners = ((0, 0), (side, 0), (side, side), (0, side))
            xs, ys = zip(*(affine * (x + dx, y + dy) for dx, dy in corners))
            geoms.append(shapely.Polygon(zip(*to(xs, ys))))
            classes.append(names[c])
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(np.asarray(geoms, dtype=object)),
        field_data=[np.asarray(classes, dtype=object)],
        fields=["class"],
        crs="EPSG:3857",
        geometry_type="Polygon",
    )


def predict(seg, images) -> list[np.ndarray]:
    return [seg.segment(rgb) for rgb in images]


def teach(parent: Path, folder: Path, labels: Path, args, seed: int, vector=None):
    """One fine-tune as ``aerialseg finetune`` runs it (default settings but threads and
    seed): the new segmenter and the run's record."""
    cfg = FinetuneConfig(**{**args.settings, "threads": args.threads, "seed": seed})
    out = folder / "taught.safetensors"
    record = finetune(
        parent, folder / "images", labels, out, cfg, progress=not args.quiet, vector=vector
    )
    return load_segmenter(out), record


def halves(h: int, w: int):
    top = np.zeros((h, w), bool)
    top[: h // 2] = True
    return top, ~top


def case_new_place(args, parent_path, parent, scenes, fraction, seed, polygons=False):
    """Strokes (or squares as polygons) on the top halves, one fine-tune, bottom halves
    scored before and after."""
    rng = np.random.default_rng(seed)
    before = predict(parent, [s[2] for s in scenes])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        (folder / "labels").mkdir()
        for _, image, _, _ in scenes:
            (folder / "images" / image.name).symlink_to(image)
        vector = None
        if polygons:
            from aerialseg.gis.vector_labels import VectorOptions

            boxes = [squares(t, halves(*t.shape)[0], args.squares, rng) for *_, t in scenes]
            labels = folder / "polygons.gpkg"
            write_polygons(labels, boxes, [s[1] for s in scenes], parent.classes.names)
            vector = VectorOptions(class_field="class")
            painted = sum(side * side for b in boxes for *_, side in b)
        else:
            labels = folder / "labels"
            painted = 0
            for (name, _, _, truth), pred in zip(scenes, before):
                lab = strokes(truth, pred, halves(*truth.shape)[0], fraction, args.on_errors, rng)
                painted += int((lab != IGNORE_INDEX).sum())
                save_image(labels / f"{name}.png", lab)
        after_seg, record = teach(parent_path, folder, labels, args, seed, vector)
    after = predict(after_seg, [s[2] for s in scenes])
    rows = []
    for (name, _, _, truth), b, a in zip(scenes, before, after):
        bottom = [halves(*truth.shape)[1]]
        rows.append(
            {
                "scene": name,
                "before": score(parent.classes, [truth], [b], bottom),
                "after": score(parent.classes, [truth], [a], bottom),
            }
        )
    top_pixels = sum(halves(*s[3].shape)[0].sum() for s in scenes)
    return {
        "case": "polygons" if polygons else "strokes",
        "fraction": round(painted / top_pixels, 4),
        "seed": seed,
        "seconds": record["seconds"],
        "steps": record["steps"],
        "scenes": rows,
    }, (before, after)


def case_home(args, parent_path, parent, fraction, seed):
    """The bundled model's two held-out Tile 7 images painted; its 12 other held-out images
    (the gain), one training image per tile (what is forgotten) and the painted images'
    unpainted pixels scored."""
    from aerialseg.models.checkpoint import read_metadata

    held_out = read_metadata(parent_path)["val_images"]
    pairs = {p.id: p for p in find_pairs(args.data)}
    painted = [i for i in held_out if i.startswith("Tile 7/")]
    others = [i for i in held_out if i not in painted]
    trained = [
        sorted(i for i in pairs if i.startswith(f"Tile {t}/") and i not in held_out)[0]
        for t in range(1, 8)
    ]
    load = {i: load_sample(pairs[i], parent.classes) for i in painted + others + trained}
    rng = np.random.default_rng(seed)
    unpainted = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        (folder / "labels").mkdir()
        for i in painted:
            s = load[i]
            name = i.replace("/", "_").replace(" ", "")
            save_image(folder / "images" / f"{name}.png", s.image)
            everywhere = np.ones(s.labels.shape, bool)
            lab = strokes(
                s.labels, parent.segment(s.image), everywhere, fraction, args.on_errors, rng
            )
            unpainted[i] = lab == IGNORE_INDEX
            save_image(folder / "labels" / f"{name}.png", lab)
        after_seg, record = teach(parent_path, folder, folder / "labels", args, seed)
    parts = {}
    for part, ids in (("others", others), ("trained", trained), ("painted", painted)):
        truths = [load[i].labels for i in ids]
        where = [unpainted.get(i, np.ones(t.shape, bool)) for i, t in zip(ids, truths)]
        images = [load[i].image for i in ids]
        parts[part] = {
            "before": score(parent.classes, truths, predict(parent, images), where),
            "after": score(parent.classes, truths, predict(after_seg, images), where),
        }
    return {
        "case": "home",
        "fraction": fraction,
        "seed": seed,
        "seconds": record["seconds"],
        "steps": record["steps"],
        "parts": parts,
    }


def figure(path: Path, scenes, before, after, classes) -> None:
    """Per scene, the bottom half: photo | truth | before | after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def paint(labels):  # the display colours; unlabelled truth (255) black
        return np.where(
            (labels == IGNORE_INDEX)[..., None], 0, classes.paint(labels % len(classes))
        )

    fig, axes = plt.subplots(len(scenes), 4, figsize=(16, 2.4 * len(scenes)), squeeze=False)
    for row, (name, _, rgb, truth), b, a in zip(axes, scenes, before, after):
        h = truth.shape[0] // 2
        for ax, im, title in zip(
            row,
            (rgb[h:], paint(truth[h:]), paint(b[h:]), paint(a[h:])),
            (
                f"{name}: bottom half (never painted)",
                "truth (black: unlabelled)",
                "before",
                "after fine-tuning",
            ),
        ):
            ax.imshow(im)
            ax.set_title(title)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def chart(rows: list[dict], path: Path) -> None:
    """Bottom-half accuracy before and after, per scene, for each new-place row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "scenes" in r]
    if not rows:
        return
    names = [s["scene"] for s in rows[0]["scenes"]]
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(rows), 3.6))
    width = 0.8 / (len(names) * 2)
    for j, name in enumerate(names):
        for k, when in enumerate(("before", "after")):
            xs = np.arange(len(rows)) + (2 * j + k - len(names) + 0.5) * width
            ys = [r["scenes"][j][when]["pixel_accuracy"] for r in rows]
            ax.bar(xs, ys, width, label=f"{name} {when}", alpha=0.45 if when == "before" else 1,
                   color=f"C{j}")  # fmt: skip
    ax.axhline(0.8, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels([f"{r['case']}\n{r['fraction'] * 100:.1f}% s{r['seed']}" for r in rows])
    ax.set_ylabel("bottom-half pixel accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def line(label: str, s: dict) -> str:
    ious = " ".join(f"{v:.2f}" for v in s["per_class_iou"][:5])
    acc, miou = s["pixel_accuracy"], s["mean_iou_land_cover"]
    return f"{label:<8} acc {acc:.3f}  mIoU(5) {miou:.3f}  IoU B/L/R/V/W {ious}"


def report(row: dict) -> None:
    share = f"{row['fraction'] * 100:.1f}%"
    print(f"{row['case']} {share} seed {row['seed']}: {row['steps']} steps, {row['seconds']:.0f} s")
    for r in row.get("scenes", []):
        print(f"  {r['scene']}")
        print("    " + line("before", r["before"]))
        print("    " + line("after", r["after"]))
    for part, r in row.get("parts", {}).items():
        print(f"  {part}")
        print("    " + line("before", r["before"]))
        print("    " + line("after", r["after"]))


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oem", type=Path, default=OEM, help="labelled scenes (images/, masks/)")
    ap.add_argument("--data", type=Path, default=DUBAI, help="the Dubai dataset (--home)")
    ap.add_argument("--parent", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--fractions", default="0.02", help="painted share of each top half")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--on-errors", type=float, default=0.7)
    ap.add_argument("--squares", type=int, default=30, help="polygons per scene (--polygons)")
    ap.add_argument("--polygons", action="store_true", help="also the polygon case")
    ap.add_argument("--home", action="store_true", help="also the Dubai case")
    ap.add_argument("--no-strokes", action="store_true", help="skip the stroke case")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--set",
        default="",
        metavar="KEY=VALUE,...",
        help="fine-tune settings other than the defaults (e.g. lr=1e-4,self_train=0)",
    )
    ap.add_argument("--out", type=Path, default=HERE / "runs/new_place")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    args.settings = dict(kv.split("=") for kv in args.set.split(",") if kv)
    args.settings = {k: _value(v) for k, v in args.settings.items()}
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    parent = load_segmenter(args.parent)
    scenes = oem_scenes(args.oem) if (args.oem / "images").is_dir() else []
    if not scenes:
        print(f"skipped the new-place cases: no scenes in {args.oem}")
    rows = []
    for seed in map(int, args.seeds.split(",")):
        for fraction in map(float, args.fractions.split(",")):
            if scenes and not args.no_strokes:
                row, maps = case_new_place(args, args.parent, parent, scenes, fraction, seed)
                rows.append(row)
                figure(args.out / f"strokes-{fraction}-{seed}.png", scenes, *maps, parent.classes)
            if args.home and (args.data / "Tile 7").is_dir():
                rows.append(case_home(args, args.parent, parent, fraction, seed))
        if scenes and args.polygons:
            row, maps = case_new_place(args, args.parent, parent, scenes, 0, seed, polygons=True)
            rows.append(row)
            figure(args.out / f"polygons-{seed}.png", scenes, *maps, parent.classes)
    with open(args.out / "results.jsonl", "a") as f:
        for row in rows:
            row["settings"] = args.settings  # besides the defaults
            f.write(json.dumps(row) + "\n")
    for row in rows:
        report(row)
    chart(rows, args.out / "new_place.png")


if __name__ == "__main__":
    main()
