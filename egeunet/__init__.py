"""egeunet: EGE-UNet skin-lesion segmentation from training to a phone.

Public names are imported on first use (see ``egeunet.lazy``), so light users such as the
ONNX/TFLite runners never load torch.
"""
from egeunet.errors import EGEUNetError
from egeunet.lazy import lazy_attributes
from egeunet.preprocess import preprocess  # eager: light (numpy, OpenCV), and it shares its module's name

__version__ = "0.1.0"
_PUBLIC = {
    "EGEUNet": "egeunet.model", "EGEUNetConfig": "egeunet.model", "VARIANTS": "egeunet.model",
    "variant_config": "egeunet.model", "load_model": "egeunet.checkpoint", "save_checkpoint": "egeunet.checkpoint",
}
__getattr__, __dir__ = lazy_attributes(_PUBLIC)
__all__ = [*_PUBLIC, "preprocess", "EGEUNetError", "__version__"]
