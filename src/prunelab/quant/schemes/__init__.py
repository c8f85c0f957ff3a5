"""Quantization schemes, one per file; each registers itself in QUANTIZERS."""
