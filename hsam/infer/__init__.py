"""Volume inference: device choice, batched slices, post-processing, outputs."""
