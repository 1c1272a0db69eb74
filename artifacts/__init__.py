"""The shipped trained models (package data): ``artifacts/<dataset>/<model>/`` with single-file
ONNX models, a ``card.json`` per model and a ``manifest.json`` per dataset folder."""
