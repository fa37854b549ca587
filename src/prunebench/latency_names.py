"""The names the latency settings accept: deployment forms and runtimes.

A leaf module of names only, so the spec schema validates ``latency_forms`` and
``latency_runtimes`` without importing the timing code (:mod:`prunebench.models.deploy` builds
the forms, :mod:`prunebench.metrics.latency` runs the runtimes).
"""

EAGER, FOLDED, FOLDED_CHANNELS_LAST = "eager", "bn-folded", "bn-folded-channels-last"
LATENCY_FORMS = (EAGER, FOLDED, FOLDED_CHANNELS_LAST)
TORCH, COMPILE, ONNX = "torch", "torch-compile", "onnxruntime"
LATENCY_RUNTIMES = (TORCH, COMPILE, ONNX)
# Language models' speed (prunebench.metrics.lm_speed): eager, compiled, and the pruned model's
# zeros dropped into sparse CSR Linear weights.
SPARSE_CSR = "torch-sparse-csr"
LM_RUNTIMES = (TORCH, COMPILE, SPARSE_CSR)
LM_PREFILL_SHAPE = r"[1-9][0-9]*x[1-9][0-9]*"  # BATCHxSEQ_LEN
