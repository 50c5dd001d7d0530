"""Find image/mask pairs in the dataset layouts this package knows, pairing by id, never by position.

Each layout is one table entry: per official part, the image folder and the mask folder relative to
the dataset root. An id is a file's stem, with a mask suffix such as `_segmentation` removed, so
`ISIC_0000000.jpg` pairs with `ISIC_0000000_segmentation.png`. ISIC 2017 `*_superpixels.png`
files and non-image files (ATTRIBUTION.txt, LICENSE.txt, metadata CSVs) are ignored.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from egeunet.data.imageio import IMAGE_EXTENSIONS, is_image_file
from egeunet.errors import EGEUNetError

MASK_SUFFIXES = ("_segmentation", "_mask")
IGNORED_SUFFIXES = ("_superpixels",)


@dataclass(frozen=True)
class Sample:
    """One image and its mask (None when the dataset has no mask for it)."""

    id: str
    image: Path
    mask: Path | None


@dataclass(frozen=True)
class Layout:
    """A dataset layout: part name -> (image folder, mask folder or None), and the paper's parts."""

    name: str
    parts: dict[str, tuple[str, str | None]]
    paper_parts: tuple[str, ...]


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "isic2017",
            {
                "train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
                "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
                "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
            },
            paper_parts=("train", "val"),
        ),
        Layout(
            "isic2018",
            {
                "train": ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"),
                "val": ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth"),
                "test": ("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth"),
            },
            paper_parts=("train", "val"),
        ),
        Layout(
            "prepared",
            {"train": ("train/images", "train/masks"), "val": ("val/images", "val/masks")},
            paper_parts=("train", "val"),
        ),
        Layout("folder", {"all": (".", None)}, paper_parts=("all",)),
    )
}


def list_layouts() -> list[str]:
    """Names of the known layouts, in detection order."""
    return list(LAYOUTS)


def detect_layout(root: str | os.PathLike) -> Layout:
    """Return the first layout with an image folder under `root`; a plain folder needs images in it."""
    root = Path(root)
    if not root.is_dir():
        raise EGEUNetError(f"{root}: dataset folder not found")
    for layout in LAYOUTS.values():
        if layout.name != "folder" and any((root / img).is_dir() for img, _ in layout.parts.values()):
            return layout
    if any(_image_files(root)):
        return LAYOUTS["folder"]
    raise EGEUNetError(f"{root}: no images and no known dataset layout ({', '.join(LAYOUTS)})")


def find_samples(
    root: str | os.PathLike, parts: Sequence[str] | None = None, layout: str | None = None
) -> list[Sample]:
    """List the samples of `parts` (default: the parts the paper's 7:3 split is drawn from), sorted by id.

    Masks without an image are dropped and named in one warning; images without a mask get
    `mask=None`, which the cache reports as a bad file.
    """
    root = Path(root)
    chosen = _layout(root, layout)
    parts = tuple(parts) if parts is not None else chosen.paper_parts
    unknown = [p for p in parts if p not in chosen.parts]
    if unknown:
        known = ", ".join(chosen.parts)
        raise EGEUNetError(f"{root}: layout {chosen.name} has no part {unknown[0]!r} (parts: {known})")
    samples: dict[str, Sample] = {}
    orphans: list[Path] = []
    unsupported: list[Path] = []
    for part in parts:
        image_dir, mask_dir = (root / d if d else None for d in chosen.parts[part])
        if not image_dir.is_dir():
            continue
        unsupported += unsupported_images(image_dir)
        if mask_dir is not None and mask_dir.is_dir() and mask_dir != image_dir:
            unsupported += unsupported_images(mask_dir)
        images = _by_id(_image_files(image_dir))
        masks = _by_id(_image_files(mask_dir)) if mask_dir is not None and mask_dir.is_dir() else {}
        orphans += [path for key, path in masks.items() if key not in images]
        for key, image in images.items():
            if key in samples:
                raise EGEUNetError(f"{image}: id {key} also in {samples[key].image}")
            samples[key] = Sample(key, image, masks.get(key))
    if not samples:
        folders = ", ".join(chosen.parts[p][0] for p in parts)
        raise EGEUNetError(f"{root}: no images in the {chosen.name} layout (looked in {folders})")
    if unsupported:
        names = ", ".join(p.name for p in sorted(unsupported)[:5])
        more = f" and {len(unsupported) - 5} more" if len(unsupported) > 5 else ""
        warnings.warn(f"{root}: skipped {len(unsupported)} file{'s' * (len(unsupported) != 1)} of unsupported type: "
                      f"{names}{more} (readable: {', '.join(sorted(IMAGE_EXTENSIONS))})", stacklevel=2)
    if orphans:
        names = ", ".join(p.name for p in sorted(orphans)[:5])
        more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
        warnings.warn(f"{root}: {len(orphans)} masks without an image ignored: {names}{more}", stacklevel=2)
    return [samples[key] for key in sorted(samples)]


def sample_id(path: Path) -> str:
    """The id a file pairs by: its stem without a mask suffix (`ISIC_0000000_segmentation` -> `ISIC_0000000`)."""
    stem = path.stem
    for suffix in MASK_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _layout(root: Path, name: str | None) -> Layout:
    """The named layout, or the detected one when `name` is None."""
    if name is None:
        return detect_layout(root)
    if name not in LAYOUTS:
        raise EGEUNetError(f"unknown dataset layout {name!r} (known: {', '.join(LAYOUTS)})")
    if not root.is_dir():
        raise EGEUNetError(f"{root}: dataset folder not found")
    return LAYOUTS[name]


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, without hidden files and ISIC superpixel maps."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and is_image_file(p)
        and not p.name.startswith(".")
        and not p.stem.lower().endswith(IGNORED_SUFFIXES)
    )


def unsupported_images(folder: Path) -> list[Path]:
    """Files in ``folder`` that are images by their extension (``mimetypes``: .webp, .gif, ...) but of a type this
    package does not read, so a skipped image is named rather than silently missing from the count."""
    import mimetypes

    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and not is_image_file(p)
            and (mimetypes.guess_type(p.name)[0] or "").startswith("image/")]


def _by_id(paths: list[Path]) -> dict[str, Path]:
    """Map id -> path; two files with one id in one folder is an error naming both."""
    found: dict[str, Path] = {}
    for path in paths:
        key = sample_id(path)
        if key in found:
            raise EGEUNetError(f"{path}: same id {key} as {found[key].name}; keep one of them")
        found[key] = path
    return found
