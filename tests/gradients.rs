//! After one backward pass every trainable parameter has a non-zero gradient (candle's fused
//! LayerNorm/softmax would silently cut some off: docs/STACK.md section 3).

mod common;

use common::assert_every_param_has_gradient;
use iisan::Config;
use iisan::data::synth::{self, SynthConfig};
use iisan::data::{DataOptions, Dataset};
use iisan::train::Trainer;

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let cfg = SynthConfig {
        users: 80,
        items: 50,
        image_size: 16,
        ..Default::default()
    };
    synth::write(&cfg, &dir, false).unwrap();
    let data = Dataset::load(&dir, &DataOptions::default()).unwrap();
    let config = Config::load(None, &[]).unwrap();
    let (plan, model) = common::build_model(config, &data);
    let trainer = Trainer::new(&plan, &data, &model).unwrap();
    let users: Vec<usize> = (0..64).collect();
    let (loss, grads) = trainer
        .gradients(&users, &mut iisan::efficiency::Profile::default())
        .unwrap();
    assert!(loss.is_finite());
    assert_every_param_has_gradient(trainer.params(), &grads, "id");
}
