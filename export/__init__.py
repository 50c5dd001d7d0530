"""Exporters: the deploy form, one module per format (ONNX, TFLite, CoreML), validation and the manifest.

``export_all(model_path, out, spec=ExportSpec(...), formats=..., ...)`` is what ``egeunet export`` runs; ``FORMATS``
maps each format name to its exporter class (``recipes``, ``export``, ``validate``, ``describe``); quantization is
data (``Recipe``). Heavy converter libraries are imported only inside the functions that use them. This package
never imports ``egeunet.benchmark`` (nor the reverse): both stand on ``egeunet.runtime`` and ``egeunet.accuracy``.
"""
from egeunet.lazy import lazy_attributes

_PUBLIC = {
    "ExportFailed": "egeunet.export.api",
    "export_all": "egeunet.export.api",
    "summary_table": "egeunet.export.api",
    "FORMATS": "egeunet.export.base",
    "Exporter": "egeunet.export.base",
    "get_format": "egeunet.export.base",
    "list_formats": "egeunet.export.base",
    "DeployEGEUNet": "egeunet.model.deploy",
    "deploy_form": "egeunet.model.deploy",
    "PRECISIONS": "egeunet.export.spec",
    "ExportSpec": "egeunet.export.spec",
    "FormatConfig": "egeunet.export.spec",
    "default_gates": "egeunet.export.spec",
    "Recipe": "egeunet.export.recipes",
    "rank_layers": "egeunet.export.sensitivity",
    "keep_float_until": "egeunet.export.sensitivity",
}
_lazy_getattr, __dir__ = lazy_attributes(_PUBLIC)


def __getattr__(name: str) -> object:
    """Public names on first use; ``FORMATS`` only after every format module has registered itself."""
    if name == "FORMATS":
        _lazy_getattr("list_formats")()
    return _lazy_getattr(name)


__all__ = [
    "export_all", "ExportFailed", "summary_table", "FORMATS", "Exporter", "get_format", "list_formats",
    "deploy_form", "DeployEGEUNet", "PRECISIONS", "ExportSpec", "FormatConfig", "default_gates", "Recipe",
    "rank_layers", "keep_float_until",
]
