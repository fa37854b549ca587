"""Deep Compression's stages after pruning (Han et al. 2016): weight sharing and Huffman coding."""

from prunebench.compress.huffman import HuffmanCode, decode, encode
from prunebench.compress.quantize import (
    SharedLayer, SharedWeight, layer_kind, linear_kmeans, quantizable_layers, quantize_layer, shared_weights,
)
from prunebench.compress.storage import FP32_BYTES, EncodedLayer, encode_layer, relative_index

__all__ = [
    "FP32_BYTES", "EncodedLayer", "HuffmanCode", "SharedLayer", "SharedWeight", "decode", "encode", "encode_layer",
    "layer_kind", "linear_kmeans", "quantizable_layers", "quantize_layer", "relative_index", "shared_weights",
]
