//! [`ShapeError`]: operands of a kernel call whose lengths do not agree.

/// The operands of a kernel call do not fit together: one of them does not hold the number
/// of elements the others imply.
///
/// [`crate::Kernels`] treats this as a programming error and panics with this message (the
/// engine sizes every buffer from the model's shapes); the operand types
/// ([`crate::TernaryMatmul`] and friends) return it, so callers building operands from
/// untrusted shapes can report it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shape mismatch in {op}: {operand} holds {actual} values, expected {expected} ({rule})")]
pub struct ShapeError {
    /// The op, e.g. `"ternary_matmul"`.
    pub op: &'static str,
    /// The operand that does not fit, e.g. `"activations"`.
    pub operand: &'static str,
    /// What its length must be, e.g. `"n * cols"`.
    pub rule: &'static str,
    /// The length the other operands imply.
    pub expected: usize,
    /// Its length.
    pub actual: usize,
}

/// `Ok` when `actual == expected`, else the error for `operand`.
pub(crate) fn check_len(
    op: &'static str,
    operand: &'static str,
    rule: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), ShapeError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ShapeError {
            op,
            operand,
            rule,
            expected,
            actual,
        })
    }
}

/// `a * b`, or a shape error (a product that overflows cannot match any slice length).
pub(crate) fn product(
    op: &'static str,
    operand: &'static str,
    rule: &'static str,
    a: usize,
    b: usize,
    actual: usize,
) -> Result<usize, ShapeError> {
    a.checked_mul(b).ok_or(ShapeError {
        op,
        operand,
        rule,
        expected: usize::MAX,
        actual,
    })
}
