//! The logit lens (nostalgebraist 2020): each layer's residual stream read
//! through the model's own final norm and vocabulary projection, so one
//! sees at which depth the eventual prediction forms. Plain vectors in:
//! one row of logits per layer (the embedding first), at one position.

use serde::Serialize;

/// A candidate at one layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LensToken {
    pub token_id: u32,
    pub text: String,
    pub p: f32,
}

/// What one layer's residual stream predicts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LensLayer {
    /// How many blocks the stream has been through (0: the embedding).
    pub layer: usize,
    pub top: Vec<LensToken>,
    /// The final layer's top token: its probability and 1-based rank here.
    pub final_p: f32,
    pub final_rank: usize,
    /// Entropy of this layer's distribution, in nats.
    pub entropy: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LensReport {
    pub position: usize,
    /// The token at `position` (the one whose next token is predicted).
    pub token: String,
    /// The last layer's top token (the model's prediction).
    pub prediction: LensToken,
    pub layers: Vec<LensLayer>,
    /// With every position read: `grid[layer][position]`, each layer's top
    /// token at each position (the layer x position view).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grid: Vec<Vec<LensToken>>,
}

/// Softmax in f64 and its entropy.
fn probs(row: &[f32]) -> (Vec<f64>, f64) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&l| (l as f64 - max).exp()).collect();
    let z: f64 = e.iter().sum();
    let p: Vec<f64> = e.iter().map(|v| v / z).collect();
    let h = -p
        .iter()
        .filter(|&&v| v > 0.0)
        .map(|v| v * v.ln())
        .sum::<f64>();
    (p, h)
}

/// The report from `rows[l]` (vocab logits after l blocks, l = 0 the
/// embedding), the last row being the model's output.
pub fn lens_report(
    rows: &[Vec<f32>],
    position: usize,
    token: String,
    k: usize,
    text: &dyn Fn(u32) -> String,
) -> LensReport {
    let last = probs(rows.last().expect("at least one layer")).0;
    let best = (0..last.len())
        .max_by(|&a, &b| last[a].total_cmp(&last[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    let layers = rows
        .iter()
        .enumerate()
        .map(|(layer, row)| {
            let (p, entropy) = probs(row);
            let mut idx: Vec<usize> = (0..p.len()).collect();
            idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            let final_rank = idx.iter().position(|&i| i == best).unwrap_or(0) + 1;
            LensLayer {
                layer,
                top: idx
                    .iter()
                    .take(k)
                    .map(|&i| LensToken {
                        token_id: i as u32,
                        text: text(i as u32),
                        p: p[i] as f32,
                    })
                    .collect(),
                final_p: p[best] as f32,
                final_rank,
                entropy: entropy as f32,
            }
        })
        .collect();
    LensReport {
        position,
        token,
        prediction: LensToken {
            token_id: best as u32,
            text: text(best as u32),
            p: last[best] as f32,
        },
        layers,
        grid: Vec::new(),
    }
}

/// Each row's top token: one row per position of one layer.
pub fn top_tokens(rows: &[Vec<f32>], text: &dyn Fn(u32) -> String) -> Vec<LensToken> {
    rows.iter()
        .map(|row| {
            let p = probs(row).0;
            let best = (0..p.len())
                .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
                .unwrap_or(0);
            LensToken {
                token_id: best as u32,
                text: text(best as u32),
                p: p[best] as f32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::lens_report;

    #[test]
    fn ranks_the_final_prediction_at_every_layer() {
        let rows = vec![
            vec![3.0, 1.0, 0.0],
            vec![0.0, 1.0, 2.0],
            vec![0.0, 0.5, 4.0],
        ];
        let r = lens_report(&rows, 0, "x".into(), 2, &|t| t.to_string());
        assert_eq!(r.prediction.token_id, 2);
        assert_eq!(r.layers[0].final_rank, 3);
        assert_eq!(r.layers[1].final_rank, 1);
        assert_eq!(r.layers[0].top[0].token_id, 0);
        let sum: f32 = r.layers[2].top.iter().map(|t| t.p).sum();
        assert!(sum < 1.0 && sum > 0.9);
    }
}
