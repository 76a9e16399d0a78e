//! The two modalities handled alike: one value per modality, text and image.

/// A value for each modality.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextImage<T> {
    /// The text tower's.
    pub text: T,
    /// The image tower's.
    pub image: T,
}

impl<T> TextImage<T> {
    /// Both values through `f`.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> TextImage<U> {
        TextImage {
            text: f(self.text),
            image: f(self.image),
        }
    }

    /// Both values through `f`, the first error stopping.
    pub fn try_map<U, E>(self, mut f: impl FnMut(T) -> Result<U, E>) -> Result<TextImage<U>, E> {
        Ok(TextImage {
            text: f(self.text)?,
            image: f(self.image)?,
        })
    }

    /// References to both values.
    pub fn as_ref(&self) -> TextImage<&T> {
        TextImage {
            text: &self.text,
            image: &self.image,
        }
    }

    /// `(name, value)` for text then image.
    pub fn named(self) -> [(&'static str, T); 2] {
        [("text", self.text), ("image", self.image)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_names_both_in_order() {
        let p = TextImage { text: 2, image: 3 };
        assert_eq!(
            p.map(|v| v * 10),
            TextImage {
                text: 20,
                image: 30
            }
        );
        let e: Result<TextImage<i32>, &str> = p.try_map(|v| if v > 2 { Err("big") } else { Ok(v) });
        assert_eq!(e, Err("big"));
        assert_eq!(p.named(), [("text", 2), ("image", 3)]);
        assert_eq!(*p.as_ref().image, 3);
    }
}
