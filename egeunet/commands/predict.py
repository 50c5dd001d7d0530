"""`egeunet predict MODEL IMAGE... --out DIR`: a 0/255 mask and an overlay per image, at the image's own size."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path


HELP = "segment images: STEM_mask.png (0/255) and STEM_overlay.png at each image's own resolution"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, inputs, output folder, threshold and runtime options."""
    from egeunet.commands import checks

    parser.add_argument("model", metavar="MODEL", help="checkpoint (.pt/.pth) or exported model (.onnx, .tflite, ...)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the masks and overlays")
    parser.add_argument("--threshold", type=float, default=0.5, help="foreground probability threshold (default 0.5)")
    parser.add_argument("--runtimes", metavar="RUNTIME", help="runtime to use instead of the one the file extension "
                        "implies (one name, any case: the option is a comma list on every command)")
    checks.add_alias(parser, "--runtime", "--runtimes", deprecated=False)
    parser.add_argument("--device", default="cpu", help="device for runtimes that have one (cpu, cuda, mps)")
    parser.add_argument("--threads", type=int, help="CPU threads of the runtime")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted in one warning)")


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given and folders expanded to their image files (sorted); one-line errors for the rest."""
    from egeunet.data.imageio import IMAGE_EXTENSIONS, is_image_file
    from egeunet.data.layouts import unsupported_images
    from egeunet.errors import EGEUNetError

    files: list[Path] = []
    unsupported: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith("."))
            unsupported += unsupported_images(path)
            if not found:
                raise EGEUNetError(f"{path}: folder has no images"
                                   + (f" of a supported type ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                                      if unsupported else ""))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise EGEUNetError(f"{path}: no such file or folder")
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems and stems[path.stem] != path:
            raise EGEUNetError(f"{path}: same name as {stems[path.stem]}; their outputs would overwrite each other")
        stems[path.stem] = path
    if unsupported:
        names = ", ".join(p.name for p in sorted(unsupported)[:5]) + (" ..." if len(unsupported) > 5 else "")
        warnings.warn(f"skipped {len(unsupported)} file{'s' * (len(unsupported) != 1)} of unsupported type: {names} "
                      f"(readable: {', '.join(sorted(IMAGE_EXTENSIONS))})", stacklevel=1)
    return files


def run(args: argparse.Namespace) -> int:
    """Predict every input and write its mask and overlay atomically; exit 1 when no image could be read."""
    from egeunet.atomic import check_name
    from egeunet.runtime.runners import open_runner
    from egeunet.commands import checks
    from egeunet.data.imageio import read_image, write_png_atomic
    from egeunet.errors import EGEUNetError
    from egeunet.postprocess import mask_at_size, overlay
    from egeunet.progress import progress

    if not 0.0 <= args.threshold <= 1.0:
        raise EGEUNetError(f"--threshold must be in [0, 1], got {args.threshold}")
    checks.positive("--threads", args.threads)
    checks.output_dir("--out", args.out)
    files = expand_inputs(args.images)
    out = Path(args.out)
    for path in files:  # the longer of the two output names, checked before any work
        check_name(out / f"{path.stem}_overlay.png", fix=f"rename the input {path}")
    runner = open_runner(args.model, runtime=checks.one_runtime(args.runtimes), threads=args.threads,
                         device=args.device)
    skipped: list[str] = []
    for path in progress(files, desc="predicting", unit="img", disable=len(files) < 2):
        try:
            image = read_image(path)
        except EGEUNetError as exc:
            if not args.skip_bad:
                raise
            skipped.append(str(exc))
            continue
        mask = mask_at_size(runner.predict_image(image), *image.shape[:2], args.threshold)
        write_png_atomic(out / f"{path.stem}_mask.png", mask)
        write_png_atomic(out / f"{path.stem}_overlay.png", overlay(image, mask))
    if len(skipped) == len(files):
        raise EGEUNetError(f"none of the {len(files)} images could be read (--skip-bad); first: {skipped[0]}")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} of {len(files)} images; first: {skipped[0]}", stacklevel=1)
    print(f"wrote the mask and overlay of {len(files) - len(skipped)} of {len(files)} images to {out}"
          + (f" ({len(skipped)} skipped)" if skipped else ""))
    return 0
