"""Weight quantization of pruned networks: schemes (`schemes/`), and whole models (`model.py`)."""

from .base import BITS_RANGE, QUANTIZERS, Quantized, Quantizer, QuantSpec, check_bits
from .model import quantize_model, quantized_names

__all__ = ["BITS_RANGE", "QUANTIZERS", "QuantSpec", "Quantized", "Quantizer", "check_bits", "quantize_model",
           "quantized_names"]
