//! Where a net's parameters come from and where they go: a candle-nn
//! `VarBuilder` backend that hands out trainable `Var`s under their Hugging
//! Face names, either read from a checkpoint or freshly initialised the
//! way transformers initialises them (normal(0, 0.02) for weights, the
//! layer's constant for norms and biases) from a generator seeded by the
//! run's seed and the tensor's name, so the same seed gives the same model
//! whatever order the layers are built in.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, var_builder::SimpleBackend};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The standard deviation transformers' `_init_weights` uses
/// (`initializer_range`).
pub const INIT_STD: f32 = 0.02;

/// A net's trainable tensors, by checkpoint name.
#[derive(Clone, Default)]
pub struct Params {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    vars: BTreeMap<String, Var>,
    /// Tensors read from a checkpoint, taken as the net asks for them.
    loaded: HashMap<String, Tensor>,
    seed: u64,
    /// Whether the values come from a checkpoint (so a missing one is news).
    from_checkpoint: bool,
    /// Names the net asked for that the checkpoint did not have.
    fresh: Vec<String>,
    /// Which names train (all when None); the others are held as
    /// constants, so no gradient is computed for them.
    trainable: Option<fn(&str) -> bool>,
    frozen: BTreeMap<String, Tensor>,
}

impl Params {
    /// Fresh parameters drawn from `seed`.
    pub fn seeded(seed: u64) -> Self {
        let p = Self::default();
        p.inner.lock().unwrap().seed = seed;
        p
    }

    /// Parameters read from a `model.safetensors` (any float type, kept
    /// as f32); what the file lacks is initialised from `seed`.
    pub fn from_safetensors(path: &Path, seed: u64) -> Result<Self> {
        let loaded = candle_core::safetensors::load(path, &Device::Cpu)?
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Self::from_tensors(loaded, seed))
    }

    pub fn from_tensors(loaded: HashMap<String, Tensor>, seed: u64) -> Self {
        let p = Self::seeded(seed);
        let mut inner = p.inner.lock().unwrap();
        inner.loaded = loaded;
        inner.from_checkpoint = true;
        drop(inner);
        p
    }

    /// Only the names `trainable` accepts will train (LoRA trains its
    /// adapters alone).
    pub fn train_only(self, trainable: fn(&str) -> bool) -> Self {
        self.inner.lock().unwrap().trainable = Some(trainable);
        self
    }

    /// A `VarBuilder` that builds a net on these parameters.
    pub fn builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    /// Every trainable tensor, in name order (frozen ones are not).
    pub fn vars(&self) -> Vec<(String, Var)> {
        let inner = self.inner.lock().unwrap();
        inner
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The names the net needed and the checkpoint did not have.
    pub fn fresh(&self) -> Vec<String> {
        self.inner.lock().unwrap().fresh.clone()
    }

    /// How many numbers the net trains.
    pub fn count(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// How many numbers the net holds fixed.
    pub fn frozen_count(&self) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.frozen.values().map(Tensor::elem_count).sum()
    }

    /// The current values, trained and frozen, by name (what a checkpoint
    /// saves).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut all: HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        let inner = self.inner.lock().unwrap();
        all.extend(inner.frozen.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// Overwrites every parameter with the tensor of the same name.
    pub fn assign(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.vars() {
            let Some(t) = values.get(&name) else {
                candle_core::bail!("the checkpoint has no `{name}`")
            };
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}

/// A generator for one tensor: the run's seed and the tensor's name.
fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    ChaCha8Rng::seed_from_u64(seed ^ h.finish())
}

fn init(shape: &Shape, hint: Init, seed: u64, name: &str) -> Result<Tensor> {
    match hint {
        Init::Const(c) => Tensor::full(c as f32, shape, &Device::Cpu),
        // Linear layers ask for Kaiming; transformers draws every weight
        // from normal(0, initializer_range), and so do we (a net asks for
        // another deviation by name, as GPT-2's residual projections do).
        hint => {
            let std = match hint {
                Init::Randn { stdev, .. } => stdev as f32,
                _ => INIT_STD,
            };
            let normal = Normal::new(0.0f32, std).map_err(candle_core::Error::wrap)?;
            let mut rng = rng_for(seed, name);
            let v: Vec<f32> = (0..shape.elem_count())
                .map(|_| normal.sample(&mut rng))
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu)
        }
    }
}

impl SimpleBackend for Params {
    fn get(&self, s: Shape, name: &str, h: Init, _: DType, _: &Device) -> Result<Tensor> {
        let mut inner = self.inner.lock().unwrap();
        if let Some(v) = inner.vars.get(name) {
            return Ok(v.as_tensor().clone());
        }
        if let Some(t) = inner.frozen.get(name) {
            return Ok(t.clone());
        }
        let value = match inner.loaded.remove(name) {
            Some(t) if t.shape() == &s => t,
            Some(t) => candle_core::bail!(
                "`{name}` in the checkpoint is {:?}; this configuration needs {:?}",
                t.dims(),
                s.dims()
            ),
            None => {
                if inner.from_checkpoint {
                    inner.fresh.push(name.to_string());
                }
                init(&s, h, inner.seed, name)?
            }
        };
        if inner.trainable.is_some_and(|trains| !trains(name)) {
            inner.frozen.insert(name.to_string(), value.clone());
            return Ok(value);
        }
        let var = Var::from_tensor(&value)?;
        let t = var.as_tensor().clone();
        inner.vars.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        let inner = self.inner.lock().unwrap();
        match (inner.vars.get(name), inner.frozen.get(name)) {
            (Some(v), _) => Ok(v.as_tensor().clone()),
            (None, Some(t)) => Ok(t.clone()),
            (None, None) => candle_core::bail!("no parameter `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.vars.contains_key(name)
            || inner.frozen.contains_key(name)
            || inner.loaded.contains_key(name)
    }
}
