"""Export and quantization to ONNX, Core ML and TFLite, with parity validation."""
