//! The user encoder's parameters by name, one shape for the tensors, their values (the CPU
//! kernel's weights) and their gradients: no positional indices into a parameter list.

/// One Transformer block's parameters by name (tensors, their values, or their gradients).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockParams<T> {
    /// Q, K, V projections stacked, `[3d, d]` (no bias).
    pub qkv: T,
    /// Attention output projection `[d, d]` (no bias).
    pub out: T,
    /// LayerNorm after attention: weight `[d]`.
    pub ln1_w: T,
    /// LayerNorm after attention: bias `[d]`.
    pub ln1_b: T,
    /// FFN first layer `[ffn, d]`.
    pub ff1_w: T,
    /// FFN first bias `[ffn]`.
    pub ff1_b: T,
    /// FFN second layer `[d, ffn]`.
    pub ff2_w: T,
    /// FFN second bias `[d]`.
    pub ff2_b: T,
    /// LayerNorm after the FFN: weight `[d]`.
    pub ln2_w: T,
    /// LayerNorm after the FFN: bias `[d]`.
    pub ln2_b: T,
}

/// The encoder's parameters by name: tensors ([`UserEncoder::params`]), their values (the CPU
/// kernel's weights) or their gradients, one shape for all three.
#[derive(Debug, Clone, PartialEq)]
pub struct UserParams<T> {
    /// Learned positions `[L, d]`.
    pub pos: T,
    /// Input LayerNorm weight `[d]`.
    pub ln_w: T,
    /// Input LayerNorm bias `[d]`.
    pub ln_b: T,
    /// Per block.
    pub blocks: Vec<BlockParams<T>>,
}

impl<T> BlockParams<T> {
    fn try_map<U, E>(
        &self,
        mut f: impl FnMut(&T) -> std::result::Result<U, E>,
    ) -> std::result::Result<BlockParams<U>, E> {
        Ok(BlockParams {
            qkv: f(&self.qkv)?,
            out: f(&self.out)?,
            ln1_w: f(&self.ln1_w)?,
            ln1_b: f(&self.ln1_b)?,
            ff1_w: f(&self.ff1_w)?,
            ff1_b: f(&self.ff1_b)?,
            ff2_w: f(&self.ff2_w)?,
            ff2_b: f(&self.ff2_b)?,
            ln2_w: f(&self.ln2_w)?,
            ln2_b: f(&self.ln2_b)?,
        })
    }

    fn into_vec(self) -> Vec<T> {
        vec![
            self.qkv, self.out, self.ln1_w, self.ln1_b, self.ff1_w, self.ff1_b, self.ff2_w,
            self.ff2_b, self.ln2_w, self.ln2_b,
        ]
    }
}

impl<T> UserParams<T> {
    /// The same names over `f` of each entry; the first error stops.
    pub fn try_map<U, E>(
        &self,
        mut f: impl FnMut(&T) -> std::result::Result<U, E>,
    ) -> std::result::Result<UserParams<U>, E> {
        Ok(UserParams {
            pos: f(&self.pos)?,
            ln_w: f(&self.ln_w)?,
            ln_b: f(&self.ln_b)?,
            blocks: self
                .blocks
                .iter()
                .map(|b| b.try_map(&mut f))
                .collect::<std::result::Result<_, E>>()?,
        })
    }

    /// The same names over `f` of each entry.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> UserParams<U> {
        match self.try_map(|t| Ok::<U, std::convert::Infallible>(f(t))) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// The entries in a fixed order: `pos`, `ln_w`, `ln_b`, then each block's in field order.
    pub fn into_vec(self) -> Vec<T> {
        let mut v = vec![self.pos, self.ln_w, self.ln_b];
        for b in self.blocks {
            v.extend(b.into_vec());
        }
        v
    }
}

impl UserParams<Vec<f32>> {
    /// Add `other` (gradients of another part of the batch) entry by entry.
    pub fn add(&mut self, other: UserParams<Vec<f32>>) {
        let mut mine = vec![&mut self.pos, &mut self.ln_w, &mut self.ln_b];
        for b in &mut self.blocks {
            mine.extend([
                &mut b.qkv,
                &mut b.out,
                &mut b.ln1_w,
                &mut b.ln1_b,
                &mut b.ff1_w,
                &mut b.ff1_b,
                &mut b.ff2_w,
                &mut b.ff2_b,
                &mut b.ln2_w,
                &mut b.ln2_b,
            ]);
        }
        for (a, b) in mine.into_iter().zip(other.into_vec()) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }
}
