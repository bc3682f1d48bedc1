"""Process-level machinery: CLI plumbing, checkpoints, data parallelism and multi-host start-up,
signals, metrics files, the compilation cache and timer, XLA flags and the host allocator."""
