//! Positional encoding made visible. For learned positions (GPT-2): how
//! alike the position embeddings are, position by position (cosine
//! similarity), and on average at each distance. For rotary models: each
//! frequency pair's rotation (how fast it turns, where the prompt's last position
//! has turned it), and how a head's query . key falls off with distance.
//!
//! The falloff uses the head's own vectors: its queries and keys over the
//! prompt, rotated back to position 0 and averaged, then scored
//! (R(d) q) . k / sqrt(head_dim) for each distance d, which isolates what
//! the rotation alone does to that head. Beside it, RoFormer's
//! content-free bound (Su et al. 2021, section 3.4.3): the mean over
//! pairs j of |sum_{i<=j} e^{i d theta_i}|, the decay any head inherits.

use crate::engine::model::RopeStyle;
use crate::engine::model::Rotary;

/// One frequency pair of a head's dimensions.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Pair {
    pub index: usize,
    /// The dimensions it rotates together.
    pub dims: [usize; 2],
    /// Radians a token.
    pub theta: f32,
    /// Tokens for a full turn.
    pub wavelength: f32,
    /// The rotation at the last position, in degrees (0 to 360).
    pub angle_at_last: f32,
    /// Its share of the head's mean |q| |k| (how much of the score it can
    /// carry).
    pub share: f32,
}

/// Query . key against distance for one head.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Falloff {
    /// Distances 0, 1, ..
    pub score: Vec<f32>,
    /// RoFormer's content-free bound, scaled to score(0)'s magnitude.
    pub bound: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RotaryReport {
    pub layer: usize,
    pub head: usize,
    pub base: f32,
    pub style: RopeStyle,
    pub head_dim: usize,
    /// Positions the vectors came from (0..positions).
    pub positions: usize,
    pub pairs: Vec<Pair>,
    pub falloff: Falloff,
}

/// The dimension pairs of `style` in a head of `d`.
fn pairs(style: RopeStyle, d: usize) -> impl Iterator<Item = [usize; 2]> {
    (0..d / 2).map(move |i| match style {
        RopeStyle::Adjacent => [2 * i, 2 * i + 1],
        RopeStyle::Halves => [i, i + d / 2],
    })
}

/// `x` (one head's row) turned by `sign` x each pair's angle.
fn rotate(x: &mut [f32], rot: &Rotary, angles: &[f32], sign: f32) {
    for (p, &a) in pairs(rot.style, rot.head_dim).zip(angles) {
        let (s, c) = (sign * a).sin_cos();
        let (x0, x1) = (x[p[0]], x[p[1]]);
        x[p[0]] = x0 * c - x1 * s;
        x[p[1]] = x0 * s + x1 * c;
    }
}

/// The mean of `rows` (rows of d at positions 0..), each rotated back to
/// position 0.
fn mean_unrotated(rows: &[f32], first: usize, rot: &Rotary) -> Vec<f32> {
    let d = rot.head_dim;
    let mut mean = vec![0f32; d];
    let n = rows.len() / d;
    for (i, row) in rows.chunks_exact(d).enumerate() {
        let mut r = row.to_vec();
        rotate(&mut r, rot, &rot.angles(first + i), -1.0);
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n as f32;
        }
    }
    mean
}

/// The report for one head: `q` its query rows at positions
/// first_query.., `k` its key rows at positions 0.. (both rows of
/// head_dim, as the model rotated them), scored up to `max_distance`.
pub fn rotary_report(
    rot: Rotary,
    layer: usize,
    head: usize,
    q: &[f32],
    first_query: usize,
    k: &[f32],
    max_distance: usize,
) -> RotaryReport {
    let d = rot.head_dim;
    let positions = k.len() / d;
    let (qm, km) = (
        mean_unrotated(q, first_query, &rot),
        mean_unrotated(k, 0, &rot),
    );
    let thetas = rot.angles(1);
    let last = rot.angles(positions.saturating_sub(1));
    let mass: Vec<f32> = pairs(rot.style, d)
        .map(|p| qm[p[0]].hypot(qm[p[1]]) * km[p[0]].hypot(km[p[1]]))
        .collect();
    let total: f32 = mass.iter().sum::<f32>().max(f32::MIN_POSITIVE);
    let pairs_out = pairs(rot.style, d)
        .enumerate()
        .map(|(i, dims)| Pair {
            index: i,
            dims,
            theta: thetas[i],
            wavelength: std::f32::consts::TAU / thetas[i],
            angle_at_last: last[i].rem_euclid(std::f32::consts::TAU).to_degrees(),
            share: mass[i] / total,
        })
        .collect();
    let scale = 1.0 / (d as f32).sqrt();
    let score: Vec<f32> = (0..=max_distance)
        .map(|dist| {
            let mut r = qm.clone();
            rotate(&mut r, &rot, &rot.angles(dist), 1.0);
            r.iter().zip(&km).map(|(a, b)| a * b).sum::<f32>() * scale
        })
        .collect();
    let bound_raw: Vec<f32> = (0..=max_distance)
        .map(|dist| {
            let (mut re, mut im, mut sum) = (0f64, 0f64, 0f64);
            for &t in &thetas {
                let a = dist as f64 * t as f64;
                re += a.cos();
                im += a.sin();
                sum += re.hypot(im);
            }
            (sum / thetas.len() as f64) as f32
        })
        .collect();
    let unit = score[0].abs() / bound_raw[0].max(f32::MIN_POSITIVE);
    RotaryReport {
        layer,
        head,
        base: rot.base,
        style: rot.style,
        head_dim: d,
        positions,
        pairs: pairs_out,
        falloff: Falloff {
            bound: bound_raw.iter().map(|b| b * unit).collect(),
            score,
        },
    }
}

/// How alike learned position embeddings are.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LearnedReport {
    /// Always "learned" (the rotary report has `style` instead).
    pub kind: &'static str,
    /// Positions compared (0..positions).
    pub positions: usize,
    pub d_model: usize,
    /// Cosine similarity of positions i and j: rows of `positions`.
    pub similarity: Vec<Vec<f32>>,
    /// Mean similarity of the pairs at each distance 0..positions.
    pub by_distance: Vec<f32>,
    /// Each position embedding's length.
    pub norms: Vec<f32>,
}

/// The report over `table`'s rows (position embeddings of `d`).
pub fn learned_report(table: &[f32], d: usize) -> LearnedReport {
    let rows: Vec<&[f32]> = table.chunks_exact(d.max(1)).collect();
    let n = rows.len();
    let norms: Vec<f32> = rows
        .iter()
        .map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt() as f32)
        .collect();
    let cos = |i: usize, j: usize| -> f32 {
        let dot: f64 = rows[i]
            .iter()
            .zip(rows[j])
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let denom = norms[i] as f64 * norms[j] as f64;
        if denom > 0.0 {
            (dot / denom) as f32
        } else {
            0.0
        }
    };
    let similarity: Vec<Vec<f32>> = (0..n)
        .map(|i| (0..n).map(|j| cos(i, j)).collect())
        .collect();
    let by_distance = (0..n)
        .map(|dist| {
            let sum: f64 = (dist..n).map(|i| similarity[i][i - dist] as f64).sum();
            (sum / (n - dist) as f64) as f32
        })
        .collect();
    LearnedReport {
        kind: "learned",
        positions: n,
        d_model: d,
        similarity,
        by_distance,
        norms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot(style: RopeStyle) -> Rotary {
        Rotary {
            base: 10_000.0,
            style,
            head_dim: 8,
        }
    }

    #[test]
    fn vectors_rotated_by_their_position_come_back_and_score_by_distance() {
        for style in [RopeStyle::Adjacent, RopeStyle::Halves] {
            let r = rot(style);
            let (qv, kv) = (
                [0.3f32, -1.0, 0.5, 0.2, 1.1, 0.0, -0.4, 0.9],
                [1.0f32, 0.2, -0.3, 0.8, 0.1, 0.5, 0.7, -0.6],
            );
            // The same content at every position, rotated as a model would.
            let at = |v: &[f32; 8], p: usize| {
                let mut x = v.to_vec();
                rotate(&mut x, &r, &r.angles(p), 1.0);
                x
            };
            let q: Vec<f32> = (3..6).flat_map(|p| at(&qv, p)).collect();
            let k: Vec<f32> = (0..6).flat_map(|p| at(&kv, p)).collect();
            let rep = rotary_report(r, 0, 0, &q, 3, &k, 5);
            assert_eq!(rep.positions, 6);
            // score(d) is then exactly the model's q . k at distance d.
            for d in 0..=5 {
                let (qi, kj) = (at(&qv, 5), at(&kv, 5 - d));
                let want: f32 = qi.iter().zip(&kj).map(|(a, b)| a * b).sum::<f32>() / 8f32.sqrt();
                assert!(
                    (rep.falloff.score[d] - want).abs() < 1e-5,
                    "{style:?} d={d}"
                );
            }
            let share: f32 = rep.pairs.iter().map(|p| p.share).sum();
            assert!((share - 1.0).abs() < 1e-5);
            assert!((rep.pairs[0].wavelength - std::f32::consts::TAU).abs() < 1e-4);
            assert!((rep.falloff.bound[0] - rep.falloff.score[0].abs()).abs() < 1e-5);
        }
    }

    #[test]
    fn the_content_free_bound_decays_with_distance() {
        let r = Rotary {
            base: 10_000.0,
            style: RopeStyle::Adjacent,
            head_dim: 64,
        };
        let k = vec![1f32; 64 * 2];
        let rep = rotary_report(r, 0, 0, &k[..64], 0, &k, 200);
        let b = &rep.falloff.bound;
        assert!(
            b[0] > b[10] && b[10] > b[200],
            "{} {} {}",
            b[0],
            b[10],
            b[200]
        );
    }

    #[test]
    fn learned_similarity_is_one_on_the_diagonal_and_symmetric() {
        // Three positions: e0, e0 + e1, -e0.
        let table = [1.0, 0.0, 1.0, 1.0, -1.0, 0.0];
        let r = learned_report(&table, 2);
        assert_eq!(r.positions, 3);
        for i in 0..3 {
            assert!((r.similarity[i][i] - 1.0).abs() < 1e-6);
            for j in 0..3 {
                assert_eq!(r.similarity[i][j], r.similarity[j][i]);
            }
        }
        assert!((r.similarity[0][2] + 1.0).abs() < 1e-6);
        assert!((r.similarity[0][1] - 0.5f32.sqrt()).abs() < 1e-6);
        // Distance 1: (0,1) and (1,2); distance 2: (0,2).
        let d1 = (0.5f32.sqrt() - 0.5f32.sqrt()) / 2.0;
        assert!((r.by_distance[1] - d1).abs() < 1e-6);
        assert!((r.by_distance[2] + 1.0).abs() < 1e-6);
        assert!((r.norms[1] - 2f32.sqrt()).abs() < 1e-6);
    }
}
