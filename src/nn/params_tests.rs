//! The parameter store's tests (see params.rs): initialisers, checkpoints, scopes and the
//! mixed-precision masters and copies.

use super::*;

#[test]
fn xavier_std_and_determinism() {
    // [256, 256]: std = sqrt(2 / 512) = 0.0625; the sample std of 65536 draws is within 2%.
    let mut a = ParamStore::new(1, Device::Cpu);
    let w = a
        .add("w", &[256, 256], Init::XavierNormal, GROUP_DEFAULT)
        .unwrap();
    let v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let var = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64;
    assert!(
        (var.sqrt() - 0.0625).abs() < 0.0625 * 0.02,
        "{}",
        var.sqrt()
    );
    let mut b = ParamStore::new(1, Device::Cpu);
    let w2 = b
        .add("w", &[256, 256], Init::XavierNormal, GROUP_DEFAULT)
        .unwrap();
    assert_eq!(v, w2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert!(a.add("w", &[1], Init::Zeros, GROUP_DEFAULT).is_err());
}

#[test]
fn save_load_roundtrip_and_shape_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ParamStore::new(1, Device::Cpu);
    a.linear("l", 3, 2, true, Init::XavierNormal, GROUP_DEFAULT)
        .unwrap();
    assert_eq!(a.num_trainable(), 3 * 2 + 2);
    let path = dir.path().join("c.safetensors");
    a.save(&path, None).unwrap();
    let mut b = ParamStore::new(2, Device::Cpu);
    b.linear("l", 3, 2, true, Init::XavierNormal, GROUP_DEFAULT)
        .unwrap();
    b.load(&path).unwrap();
    let get = |s: &ParamStore| {
        s.params()[0]
            .var
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(get(&a), get(&b));
    let mut c = ParamStore::new(2, Device::Cpu);
    c.linear("l", 4, 2, true, Init::XavierNormal, GROUP_DEFAULT)
        .unwrap();
    let e = c.load(&path).unwrap_err().to_string();
    assert!(
        e.contains("tensor l.weight has shape [2, 3], expected [2, 4]"),
        "{e}"
    );
}

/// A bf16 store: the graph reads a bf16 copy of the f32 master; d(sum(3 w) * 4)/dw = 12 on
/// the copy becomes 3 on the master after dividing by the scale 4; a master set to 1/3
/// reaches the copy rounded to bf16 (171 / 512 = 0.333984375, the nearest of 8 significant
/// bits).
#[test]
fn mixed_precision_keeps_an_f32_master_behind_a_half_copy() {
    let mut s = ParamStore::new(1, Device::Cpu);
    s.set_precision(DType::BF16).unwrap();
    let w = s.add("w", &[2], Init::Ones, GROUP_DEFAULT).unwrap();
    assert_eq!(w.dtype(), DType::BF16);
    let p = s.params()[0].clone();
    assert_eq!(p.var.dtype(), DType::F32);
    let loss = ((w * 3.0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .sum_all()
        .unwrap()
        * 4.0)
        .unwrap();
    let (g, _) = s.backward(&loss).unwrap();
    let g = s.master_grads(g, 4.0).unwrap();
    let gm: Vec<f32> = g.get(p.var.as_tensor()).unwrap().to_vec1().unwrap();
    assert_eq!(gm, [3.0, 3.0]);
    assert!(g.get(p.graph().as_tensor()).is_none());
    p.var
        .set(&Tensor::new(&[1f32 / 3.0, 2.0], &Device::Cpu).unwrap())
        .unwrap();
    s.sync().unwrap();
    let c: Vec<f32> = (p.graph().as_tensor().to_dtype(DType::F32))
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(c, [171.0 / 512.0, 2.0]); // 0.333984375
    // set before the first parameter; a registered tensor brings its copy
    assert!(s.set_precision(DType::F16).is_err());
    let master = Var::new(&[1f32], &Device::Cpu).unwrap();
    assert!(
        s.register("r", master.clone(), None, GROUP_DEFAULT)
            .is_err()
    );
    let copy = Var::from_tensor(&master.as_tensor().to_dtype(DType::BF16).unwrap()).unwrap();
    s.register("r", master, Some(copy), GROUP_DEFAULT).unwrap();
}

#[test]
fn scopes_prefix_names() {
    // store.pp("item").pp("text") creates "item.text.<name>"; store.pp("item") "item.<name>".
    let mut s = ParamStore::new(1, Device::Cpu);
    let mut item = s.pp("item");
    item.pp("text")
        .add("gate", &[2], Init::Zeros, GROUP_DEFAULT)
        .unwrap();
    item.add("fuse.weight", &[2, 3], Init::Zeros, GROUP_DEFAULT)
        .unwrap();
    let names: Vec<&str> = s.params().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["item.text.gate", "item.fuse.weight"]);
}
