//! Label enums of the metric table: a labelled counter keeps one cell per value of its
//! label, indexed by the value, and writes one sample per value in [`Label::ALL`] order.

use crate::metrics::collector::{
    DisconnectReason, DropReason, InputThrottle, ResumeResult, Transport,
};

/// A closed set of label values, one counter cell each.
pub(super) trait Label: Copy + 'static {
    /// The label name in the exposition (listed in `RESERVED_LABELS`).
    const NAME: &'static str;
    /// Every value, in exposition order; `ALL[v.index()] == v`.
    const ALL: &'static [Self];
    /// Position in [`Label::ALL`].
    fn index(self) -> usize;
    /// The label value.
    fn as_str(self) -> &'static str;
}

/// `Label` for a fieldless enum whose `ALL` lists its variants in declaration order (so
/// the discriminant is the index; `every_label_indexes_its_all_list` checks it).
macro_rules! label {
    ($ty:ty, $name:literal) => {
        impl Label for $ty {
            const NAME: &'static str = $name;
            const ALL: &'static [Self] = &<$ty>::ALL;
            #[inline]
            fn index(self) -> usize {
                self as usize
            }
            fn as_str(self) -> &'static str {
                <$ty>::as_str(self)
            }
        }
    };
}

label!(DisconnectReason, "reason");
label!(DropReason, "reason");
label!(InputThrottle, "action");
label!(Transport, "transport");
label!(ResumeResult, "result");

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes_its_all_list<L: Label + PartialEq + std::fmt::Debug>() {
        for (i, v) in L::ALL.iter().enumerate() {
            assert_eq!(v.index(), i, "{v:?}");
        }
    }

    #[test]
    fn every_label_indexes_its_all_list() {
        indexes_its_all_list::<DisconnectReason>();
        indexes_its_all_list::<DropReason>();
        indexes_its_all_list::<InputThrottle>();
        indexes_its_all_list::<Transport>();
        indexes_its_all_list::<ResumeResult>();
    }
}
