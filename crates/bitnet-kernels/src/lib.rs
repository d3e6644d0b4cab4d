//! Ternary (BitNet b1.58) kernels: one op trait, one implementation per ISA, chosen at run time
