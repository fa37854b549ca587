"""The names the latency settings accept: deployment forms and runtimes.

A leaf module of names only, so the spec schema validates ``latency_forms`` and
``latency_runtimes`` without importing the timing code (:mod:`prunebench.models.deploy` builds
the forms, :mod:`prunebench.metrics.latency` runs the runtimes).
"""

EAGER, FOLDED, FOLDED_CHANNELS_LAST = "eager", "bn-folded", "bn-folded-channels-last"
LATENCY_FORMS = (EAGER, FOLDED, FOLDED_CHANNELS_LAST)
TORCH, COMPILE, ONNX = "torch", "torch-compile", "onnxruntime"
LATENCY_RUNTIMES = (TORCH, COMPILE, ONNX)
