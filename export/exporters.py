"""The exporters PocketGAN ships, one line each, in the order `--format all` runs them.

Importing a module registers its exporter (`@register_exporter`), so the order of the lines is the
registry's order; `pocketgan.export` imports this list.

Example: python -c "from pocketgan.export import registered_exporters; print(list(registered_exporters()))"
"""

# isort: off
from pocketgan.export import onnx_exporter  # noqa: F401
from pocketgan.export import coreml_exporter  # noqa: F401
from pocketgan.export import tflite_exporter  # noqa: F401
from pocketgan.export import executorch_exporter  # noqa: F401
# isort: on
