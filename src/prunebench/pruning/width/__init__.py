"""Width pruning of causal language models with physical removal: whole MLP channels and
key/value groups of Llama-layout decoder blocks (:mod:`.layout`), selected per block by a width
strategy (:mod:`.prune`, strategies in :mod:`prunebench.pruning.scores.width`) and removed to
give a smaller dense model (:mod:`.compact`). Docs: docs/llm-structured.md."""
