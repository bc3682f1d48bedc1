"""The variable batch size (SPEC §5): the pure controller, the memory probes and the per-size
executables of the gradient programs."""
