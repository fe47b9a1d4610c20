//! Drawing primitives that only read their inputs.
pub mod bars;
pub mod heatmap;
