"""The model in this process: checkpoints, loading, the step loop, the sampler, batching,
scoring, the lens, out-of-memory handling, quantization and kernels."""
