"""The exporters PocketGAN ships, one line each, in the order `--format all` runs them.

Importing a module registers its exporter (`@register_exporter`); `pocketgan.export` imports this list.

Example: python -c "from pocketgan.export import registered_exporters; print(list(registered_exporters()))"
"""

import importlib

EXPORTER_MODULES = (
    "pocketgan.export.onnx_exporter",
    "pocketgan.export.coreml_exporter",
    "pocketgan.export.tflite_exporter",
)

for _module in EXPORTER_MODULES:
    importlib.import_module(_module)
