//! Bias checks computed from the model's own probabilities.
//!
//! - [`suite`]: probe suites (TOML) of sentence frames x paired terms;
//! - [`probe`] + [`divergence`]: counterfactual next-token probes (JS, KL
//!   both ways, top-k overlap, teacher-forced attribute log-probs) with
//!   per-category bootstrap intervals;
//! - [`pairs`]: minimal pairs from a CrowS-Pairs-format CSV, scored in
//!   lm-evaluation-harness's way (`lmeval`), per-token mean, or on shared
//!   tokens, with Wilson intervals, exact binomial tests and Holm's
//!   adjustment ([`stats`]);
//! - [`quick`]: swap terms in the current prompt and compare the two
//!   next-token lists;
//! - [`run`]: the only part that calls the engine (plain vectors in and out);
//! - [`masked`]: the same checks for masked language models, by
//!   pseudo-log-likelihood (CrowS-Pairs' own metric) and mask filling.

pub mod divergence;
pub mod masked;
pub mod pairs;
pub mod probe;
pub mod quick;
pub mod run;
pub mod stats;
pub mod suite;
pub mod task;
