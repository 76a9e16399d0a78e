//! The SAN paths' kernel checked against finite differences (see paths.rs).

use super::*;
use crate::nn::kernel::{check_against_differences, split};

/// The chain's backward against finite differences (the check every kernel runs): two
/// blocks (D = 3, r = 2) over two items, gated, as an intra path (from zeros and from a
/// start state) and as the inter path; θ = each block's W_down, b_down, W_up, b_up, then
/// the gate values.
#[test]
fn the_backward_matches_finite_differences() {
    let (k, d, r, n) = (2, 3, 2, 2);
    let per = r * d + r + d * r + d;
    let theta: Vec<f32> = (0..k * per + k)
        .map(|i| ((i * 29 % 19) as f32 - 9.0) / 7.0)
        .collect();
    let u: Vec<f32> = (0..k * n * d)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
        .collect();
    let v: Vec<f32> = (0..k * n * d)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) / 5.0)
        .collect();
    let h0: Vec<f32> = (0..n * d).map(|i| i as f32 / 3.0 - 1.0).collect();
    let sources = [
        Sources::Intra {
            states: &u,
            init: None,
        },
        Sources::Intra {
            states: &u,
            init: Some(&h0),
        },
        Sources::Inter(&u, &v),
    ];
    let blocks = |t: &[f32]| -> Vec<BlockWeights> {
        (0..k)
            .map(|b| {
                let p = split(&t[b * per..(b + 1) * per], &[r * d, r, d * r, d]);
                BlockWeights {
                    wd: p[0].to_vec(),
                    bd: p[1].to_vec(),
                    wu: p[2].to_vec(),
                    bu: p[3].to_vec(),
                }
            })
            .collect()
    };
    for src in sources {
        let input = SanInput {
            src,
            n,
            want_inputs: false,
        };
        let run = |t: &[f32], c: Option<&[f32]>| -> (Vec<f32>, Vec<f32>) {
            let bw = blocks(t);
            let kern = SanPathKernel {
                blocks: &bw,
                gates: Some(&t[k * per..]),
                dim: d,
                bottleneck: r,
            };
            let saved = kern.forward(input);
            let out = saved.output().to_vec();
            let Some(c) = c else { return (out, Vec::new()) };
            let g = kern.backward(input, saved, c);
            let mut flat: Vec<f32> = g
                .blocks
                .iter()
                .flat_map(|b| [&b.wd, &b.bd, &b.wu, &b.bu].into_iter().flatten().copied())
                .collect();
            flat.extend(g.gates.iter().map(|&v| v as f32));
            (out, flat)
        };
        check_against_differences(
            &theta,
            |t| run(t, None).0,
            |t, c| run(t, Some(c)).1,
            (1e-3, 2e-2, 1),
        );
    }
}

/// One block with zero weights (so `SANB` is the identity), D = 2, r = 1, one item, g = 0.5;
/// u = [2, 6]. From zeros: x = g u = [1, 3], and for d_out = [1, 2] the gate's gradient is
/// dot(d_out, u - 0) = 2 + 12 = 14. From the start state h_0 = [4, 0] (`remove_first`):
/// x = 0.5 [2, 6] + 0.5 [4, 0] = [3, 3], gradient dot(d_out, u - h_0) = -2 + 12 = 10.
/// The bias b_up's gradient is d_out either way.
#[test]
fn an_intra_path_starts_from_its_start_state_in_both_passes() {
    let blocks = [BlockWeights {
        wd: vec![0.0; 2],
        bd: vec![0.0],
        wu: vec![0.0; 2],
        bu: vec![0.0; 2],
    }];
    let k = SanPathKernel {
        blocks: &blocks,
        gates: Some(&[0.5]),
        dim: 2,
        bottleneck: 1,
    };
    let u = [2f32, 6.0];
    for (init, out, dg) in [
        (None, [1f32, 3.0], 14.0),
        (Some(&[4f32, 0.0][..]), [3.0, 3.0], 10.0),
    ] {
        let input = SanInput {
            src: Sources::Intra { states: &u, init },
            n: 1,
            want_inputs: false,
        };
        let saved = k.forward(input);
        assert_eq!(saved.output(), out);
        let g = k.backward(input, saved, &[1.0, 2.0]);
        assert_eq!(g.gates, [dg]);
        assert_eq!(g.blocks[0].bu, [1.0, 2.0]);
    }
}
