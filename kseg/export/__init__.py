"""Export, apart from training: SavedModel + TFLite files under the exported-model contract
(``kseg.contract``), verified against the Keras model before the folder is kept."""

from kseg.export.exporter import ExportError, export_run

__all__ = ["export_run", "ExportError"]
