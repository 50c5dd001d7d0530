"""egeunet: EGE-UNet skin-lesion segmentation from training to a phone."""
from egeunet.checkpoint import load_model, save_checkpoint
from egeunet.errors import EGEUNetError
from egeunet.model import VARIANTS, EGEUNet, EGEUNetConfig, variant_config
from egeunet.preprocess import preprocess

__version__ = "0.1.0"
__all__ = [
    "EGEUNet", "EGEUNetConfig", "VARIANTS", "variant_config", "load_model", "save_checkpoint",
    "preprocess", "EGEUNetError", "__version__",
]
