"""Compute kernels of the engine: each Triton kernel has a pure-torch twin with the same
signature, used on the CPU and as the reference in tests. Nothing here imports Triton at
import time; a kernel module imports it when a CUDA tensor first needs it."""
