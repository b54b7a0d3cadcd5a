"""``qwenkit eval``: quality (HumanEval in a sandbox, GSM8K) next to the speed and size of the same run."""
