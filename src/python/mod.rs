//! Embedded CPython (in progress).
