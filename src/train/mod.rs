//! Training: nets on candle's autograd, their data, optimiser and
//! checkpoints. Sits above the engine (it reads folders the way the
//! engine does) and the store (atomic writes), below the interfaces.

pub mod base;
pub mod checkpoint;
pub mod data;
pub mod instruct;
pub mod lora;
pub mod nets;
pub mod ops;
pub mod optim;
pub mod params;
pub mod probe;
pub mod run;
pub mod settings;
pub mod tokenizer;
