//! The user encoder's tests: the packed rows against the dense layout, the dropout placement,
//! causality, and the CPU kernels against the candle version and finite differences.

use candle_core::{Device, Tensor};

use super::encoder::*;
use crate::data::batch::PackedRows;
use crate::nn::layers::Ctx;
use crate::nn::{Engine, Kernel, ParamStore};

/// Packed rows equal the dense encoder's outputs at the real positions (evaluation mode).
#[test]
fn packed_rows_match_dense_positions() {
    // ids [[0, 0, 3], [0, 4, 5]]: real flat positions 2, 4, 5; scatter 0,0,1,0,2,3.
    let rows = PackedRows::of(&[0, 0, 3, 0, 4, 5], 2, 3);
    assert_eq!(rows.flat, [2, 4, 5]);
    assert_eq!(rows.positions, [2, 1, 2]);
    assert_eq!(rows.scatter, [0, 0, 1, 0, 2, 3]);
    let mut s = ParamStore::new(5, Device::Cpu);
    let enc = UserEncoder::new(&mut s, &UserEncoderConfig::default(), 3, Engine::Graph).unwrap();
    let ids = [0u32, 0, 3, 0, 4, 5];
    let mask = UserEncoder::attention_mask(&ids, 2, 3, &Device::Cpu).unwrap();
    let e = Tensor::randn(0f32, 1.0, (2, 3, 64), &Device::Cpu).unwrap();
    let dense = enc.forward(&e, &mask, &Ctx::eval()).unwrap();
    let dense = dense.reshape((6, 64)).unwrap();
    let idx = Tensor::new(&[2u32, 4, 5], &Device::Cpu).unwrap();
    let er = e.reshape((6, 64)).unwrap().index_select(&idx, 0).unwrap();
    let packed = enc.forward_rows(&er, &rows, &mask, &Ctx::eval()).unwrap();
    let want = dense.index_select(&idx, 0).unwrap();
    let diff = (packed - want).unwrap().abs().unwrap().max_all().unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
}

/// The authors' dropout placement, checked by what a training forward draws from the
/// context's stream: B = 2 users of L = 3 slots (R = 6 rows), d = 64, 2 heads, 2 blocks:
/// the input (R d = 384), then per block the attention probabilities (B h L L = 36), the
/// attention output (384) and the FFN output (384): 1,992 mask elements. A dropout on the
/// FFN hidden layer (R x 256 = 1,536 per block) would draw 3,072 more. Each 64-bit draw
/// decides two elements and every count is even, so the stream after the forward equals
/// a fresh stream after one 1,992-element mask.
#[test]
fn a_training_forward_draws_exactly_the_authors_dropout_masks() {
    let mut s = ParamStore::new(5, Device::Cpu);
    let enc = UserEncoder::new(&mut s, &UserEncoderConfig::default(), 3, Engine::Graph).unwrap();
    let mask = UserEncoder::attention_mask(&[0u32, 1, 2, 3, 4, 5], 2, 3, &Device::Cpu).unwrap();
    let e = Tensor::randn(0f32, 1.0, (2, 3, 64), &Device::Cpu).unwrap();
    let ctx = Ctx::train(9);
    enc.forward(&e, &mask, &ctx).unwrap();
    let fresh = Ctx::train(9);
    fresh.dropout_mask(384 + 2 * (36 + 384 + 384), 0.1);
    assert_eq!(ctx.dropout_mask(64, 0.5), fresh.dropout_mask(64, 0.5));
}

#[test]
fn mask_is_causal_and_hides_padding() {
    // ids [0, 5, 7]: key 0 is padding; query 1 sees key 1; query 2 sees keys 1, 2.
    let m = UserEncoder::attention_mask(&[0, 5, 7], 1, 3, &Device::Cpu).unwrap();
    let v: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
    let k = MASKED;
    assert_eq!(v, [k, k, k, k, 0.0, k, k, 0.0, 0.0]);
}

#[test]
fn causal_outputs_ignore_the_future_and_parameters_count() {
    let mut s = ParamStore::new(3, Device::Cpu);
    let cfg = UserEncoderConfig {
        dropout: 0.0,
        ..Default::default()
    };
    let enc = UserEncoder::new(&mut s, &cfg, 10, Engine::Graph).unwrap();
    // pos 640 + ln 128 + per block (qkv 12288 + out 4096 + ln 128 + ff1 16640 + ff2 16448
    // + ln 128 = 49728) x 2 = 100,224.
    assert_eq!(s.num_trainable(), 100_224);
    let ids = [0u32, 0, 3, 4, 5, 6, 7, 8, 9, 1];
    let mask = UserEncoder::attention_mask(&ids, 1, 10, &Device::Cpu).unwrap();
    let e1 = Tensor::randn(0f32, 1.0, (1, 10, 64), &Device::Cpu).unwrap();
    // change only the last position's input: earlier outputs must not move.
    let last = Tensor::randn(0f32, 1.0, (1, 1, 64), &Device::Cpu).unwrap();
    let e2 = Tensor::cat(&[e1.narrow(1, 0, 9).unwrap(), last], 1).unwrap();
    let o1 = enc.forward(&e1, &mask, &Ctx::eval()).unwrap();
    let o2 = enc.forward(&e2, &mask, &Ctx::eval()).unwrap();
    let diff = (o1.narrow(1, 2, 7).unwrap() - o2.narrow(1, 2, 7).unwrap()).unwrap();
    assert!(
        diff.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            < 1e-5
    );
    let diff_last = (o1.narrow(1, 9, 1).unwrap() - o2.narrow(1, 9, 1).unwrap()).unwrap();
    assert!(
        diff_last
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 1e-3
    );
}

/// The evaluation-mode forward equals the tensor encoder's `forward_rows`, and the
/// gradient of `sum(c * out)` with respect to the inputs matches central finite differences
/// of the kernel's own forward (f64 accumulation of the probe loss).
/// A 2-block encoder of width 8 (2 heads, FFN 12, no dropout, 4 positions) on the kernel
/// engine, its weights drawn from `seed`.
fn small_kernel_encoder(seed: u64) -> UserEncoder {
    let cfg = UserEncoderConfig {
        dim: 8,
        heads: 2,
        ffn: 12,
        dropout: 0.0,
        ..Default::default()
    };
    let mut store = ParamStore::new(seed, Device::Cpu);
    UserEncoder::new(&mut store, &cfg, 4, Engine::Kernels).unwrap()
}

#[test]
fn forward_matches_tensor_encoder_and_input_gradient_matches_differences() {
    let enc = small_kernel_encoder(11);
    let ids = [0u32, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9];
    let rows = PackedRows::of(&ids, 3, 4);
    let r = rows.count();
    let e: Vec<f32> = (0..r * 8)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
        .collect();
    let k = UserKernel::read(&enc).unwrap();
    let ctx = Ctx::eval();
    let run = k.forward_rows(&e, &rows, &ctx);
    let mask = UserEncoder::attention_mask(&ids, 3, 4, &Device::Cpu).unwrap();
    let et = Tensor::from_vec(e.clone(), (r, 8), &Device::Cpu).unwrap();
    let want: Vec<f32> = enc
        .forward_rows(&et, &rows, &mask, &Ctx::eval())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for (a, b) in run.output().iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let c: Vec<f32> = (0..r * 8)
        .map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0)
        .collect();
    let input = UserInput {
        e: &e,
        rows: &rows,
        ctx: &ctx,
    };
    let de = k.backward(input, run, &c).d_input;
    let probe = |e: &[f32]| -> f64 {
        let o = k.forward(UserInput {
            e,
            rows: &rows,
            ctx: &ctx,
        });
        o.output()
            .iter()
            .zip(&c)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    for i in (0..r * 8).step_by(5) {
        let (mut ep, mut em) = (e.clone(), e.clone());
        ep[i] += 1e-2;
        em[i] -= 1e-2;
        let fd = (probe(&ep) - probe(&em)) / 2e-2;
        assert!(
            (fd - de[i] as f64).abs() < 2e-2 * (1.0 + fd.abs()),
            "input {i}: {fd} vs {}",
            de[i]
        );
    }
}

/// The user kernel's backward against finite differences (the check every kernel runs), in
/// evaluation mode: θ = every weight (`UserParams` order), then the packed input rows; every
/// 7th value is perturbed.
#[test]
fn the_kernel_backward_matches_finite_differences_for_weights_and_inputs() {
    let enc = small_kernel_encoder(13);
    let ids = [0u32, 2, 3, 4, 0, 0, 5, 6];
    let rows = PackedRows::of(&ids, 2, 4);
    let base = UserKernel::read(&enc).unwrap();
    let mut theta: Vec<f32> = base.w.clone().into_vec().concat();
    let n_weights = theta.len();
    theta.extend((0..rows.count() * 8).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0));
    let ctx = Ctx::eval();
    let kernel_of = |t: &[f32]| {
        let mut at = 0;
        let w = base.w.map(|v| {
            let s = t[at..at + v.len()].to_vec();
            at += v.len();
            s
        });
        let mut k = UserKernel::read(&enc).unwrap();
        k.w = w;
        k
    };
    let run = |t: &[f32], c: Option<&[f32]>| -> (Vec<f32>, Vec<f32>) {
        let k = kernel_of(t);
        let input = UserInput {
            e: &t[n_weights..],
            rows: &rows,
            ctx: &ctx,
        };
        let saved = k.forward(input);
        let out = saved.output().to_vec();
        let Some(c) = c else { return (out, Vec::new()) };
        let g = k.backward(input, saved, c);
        let mut flat = g.params.into_vec().concat();
        flat.extend(g.d_input);
        (out, flat)
    };
    crate::nn::kernel::check_against_differences(
        &theta,
        |t| run(t, None).0,
        |t, c| run(t, Some(c)).1,
        (2e-3, 3e-2, 7),
    );
}
