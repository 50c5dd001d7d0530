"""Data layer: reading images and masks, dataset layouts, splits, the decoded cache, augmentation, synthetic data."""
from egeunet.data.augment import augment_batch
from egeunet.data.cache import CachedSplit, open_cache
from egeunet.data.imageio import read_image, read_mask, write_jpeg_atomic, write_png_atomic
from egeunet.data.layouts import Sample, detect_layout, find_samples, list_layouts
from egeunet.data.splits import load_split, make_split, save_split, select
from egeunet.data.synthetic import generate_sample, write_sample_dataset
from egeunet.data.tensor_ops import mask_targets, minmax_stretch

__all__ = [
    "CachedSplit",
    "Sample",
    "augment_batch",
    "detect_layout",
    "find_samples",
    "generate_sample",
    "list_layouts",
    "load_split",
    "make_split",
    "mask_targets",
    "minmax_stretch",
    "open_cache",
    "read_image",
    "read_mask",
    "save_split",
    "select",
    "write_jpeg_atomic",
    "write_png_atomic",
    "write_sample_dataset",
]
