//! Burn backend extension running bitnet-kernels' ternary ops on burn-ndarray tensors
