"""torch → ONNX: ``export_model`` for any torch module, and the export of our trained runs."""

from latent_atlas.export.model_export import ExportedModel, export_model

__all__ = ["ExportedModel", "export_model"]
