"""Planning: expand a config into jobs, run them through an executor, report progress.

One job is one run of :mod:`prunebench.experiment`; this package imports it, never the reverse.
"""
