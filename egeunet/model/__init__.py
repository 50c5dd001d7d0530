"""EGE-UNet network definition: blocks (GHPA, GAB), the network, its options and Table 2 variants."""
from egeunet.model.config import VARIANTS, EGEUNetConfig, variant_config
from egeunet.model.gab import GAB
from egeunet.model.ghpa import GHPA
from egeunet.model.layers import LayerNorm2d
from egeunet.model.network import SIZE_MULTIPLE, EGEUNet, check_input_size

__all__ = [
    "EGEUNet", "EGEUNetConfig", "GHPA", "GAB", "LayerNorm2d", "VARIANTS", "variant_config",
    "SIZE_MULTIPLE", "check_input_size",
]
