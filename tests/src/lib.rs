//! Helpers shared by the black-box tests in `tests/tests/`.
