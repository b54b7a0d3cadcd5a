"""``qwenkit bench`` (the same workload in-process or against any OpenAI-compatible server, with a
memory-bandwidth roofline) and ``qwenkit doctor`` (environment, hardware and model checks)."""
