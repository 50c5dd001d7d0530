"""Exporters: the deploy form, one module per format (ONNX, TFLite, CoreML), validation and the manifest.

``export_all(model_path, out, formats, precisions, ...)`` is what ``egeunet export`` runs; ``FORMATS``
maps each format name to its exporter (``export``, ``validate``, ``describe``). Heavy converter
libraries are imported only inside the functions that use them.
"""
from egeunet.export.api import ExportFailed, export_all, summary_table
from egeunet.export.base import FORMATS, Exporter, get_format, list_formats
from egeunet.export.deploy import DeployEGEUNet, deploy_form
from egeunet.export.spec import PRECISIONS, ExportSpec, FormatConfig, Gates, Variant

list_formats()  # import the format modules so FORMATS is complete

__all__ = [
    "export_all", "ExportFailed", "summary_table", "FORMATS", "Exporter", "get_format", "list_formats",
    "deploy_form", "DeployEGEUNet", "PRECISIONS", "ExportSpec", "FormatConfig", "Gates", "Variant",
]
