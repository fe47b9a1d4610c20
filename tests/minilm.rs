//! all-MiniLM-L6-v2, the real encoder `lmscope pull all-minilm-l6-v2`
//! fetches, against transformers (BertModel, fp32, eager attention, CPU)
//! on 10 sentences of ours: token ids, every layer's and head's attention,
//! the last hidden states and the mean-pooled sentence embeddings
//! (tests/fixtures/minilm.json, made by scripts/reference/minilm_fixture.py).

mod common;

use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    model_sha256: String,
    cases: Vec<Case>,
    similarity: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    /// [layer][head][query][key], for some of the sentences
    attention: Option<Vec<Vec<Vec<Vec<f32>>>>>,
    last_hidden: Vec<Vec<f32>>,
    embedding: Vec<f32>,
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn minilm_matches_transformers() {
    let engine = common::minilm();
    let fx: Fixture = serde_json::from_value(common::fixture("minilm.json")).unwrap();
    let weights = std::path::Path::new(&engine.info().path).join("model.safetensors");
    assert_eq!(
        lmscope::store::models::sha256_file(&weights).unwrap(),
        fx.model_sha256,
        "the fixture was made from these weights"
    );
    assert_eq!(fx.cases.len(), 10);
    let (mut attn, mut hidden, mut embed, mut attn_cases) = (0f32, 0f32, 0f32, 0);
    let mut embeddings = Vec::new();
    for case in &fx.cases {
        let e = engine.encode(&case.text, None).unwrap();
        assert_eq!(e.ids, case.ids, "ids of {:?}", case.text);
        let out = engine.forward(&e, true).unwrap();
        let ours: Vec<Vec<f32>> = out.hidden.to_vec2().unwrap();
        for (o, t) in ours.iter().zip(&case.last_hidden) {
            hidden = hidden.max(max_diff(o, t));
        }
        if let Some(theirs) = &case.attention {
            attn_cases += 1;
            for (o, t) in out.attention.iter().zip(theirs) {
                let o: Vec<Vec<Vec<f32>>> = o.to_vec3().unwrap();
                for (oh, th) in o.iter().zip(t) {
                    for (oq, tq) in oh.iter().zip(th) {
                        attn = attn.max(max_diff(oq, tq));
                    }
                }
            }
        }
        let v = engine.embed(&case.text).unwrap();
        embed = embed.max(max_diff(&v, &case.embedding));
        embeddings.push(v);
    }
    let mut sim = 0f32;
    for (i, row) in fx.similarity.iter().enumerate() {
        for (j, &want) in row.iter().enumerate() {
            let got: f32 = embeddings[i]
                .iter()
                .zip(&embeddings[j])
                .map(|(a, b)| a * b)
                .sum();
            sim = sim.max((got - want).abs());
        }
    }
    eprintln!(
        "MiniLM: max |diff| attention {attn:.2e} ({attn_cases} sentences), last hidden {hidden:.2e}, embedding {embed:.2e}, cosine {sim:.2e}"
    );
    assert!(attn_cases >= 5);
    assert!(attn < 1e-4, "attention differs by {attn}");
    assert!(hidden < 1e-4, "last hidden states differ by {hidden}");
    assert!(embed < 1e-5, "embeddings differ by {embed}");
    assert!(sim < 1e-5, "similarities differ by {sim}");
}

#[test]
fn minilm_has_no_mlm_head_and_says_so() {
    let engine = common::minilm();
    assert!(!engine.info().mlm_head);
    let err = engine.fill("a [MASK] b", 5).err().unwrap().to_string();
    assert!(err.contains("no masked-LM head"), "{err}");
    assert!(err.contains("embed"), "says what works: {err}");
}
