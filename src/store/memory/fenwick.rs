//! A Fenwick (binary indexed) tree: the in-process store's exact positions in O(log n).

/// A Fenwick (binary indexed) tree of counts by sequence number: point update and prefix sum in
/// O(log n). Its capacity doubles as sequences grow; doubling keeps every existing node valid,
/// because node `i` covers `(i - lowbit(i), i]` whatever the capacity.
#[derive(Default)]
pub(super) struct Fenwick {
    /// 1-based; `tree[0]` is unused. Its length minus one is a power of two (or zero).
    tree: Vec<i64>,
}

impl Fenwick {
    pub(super) fn add(&mut self, index: u64, delta: i64) {
        let index = index as usize;
        while self.tree.len() <= index {
            self.grow();
        }
        let mut i = index;
        while i < self.tree.len() {
            self.tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    fn grow(&mut self) {
        let capacity = self.tree.len().saturating_sub(1);
        if capacity == 0 {
            self.tree = vec![0; 2];
            return;
        }
        let total = self.prefix_sum(capacity as u64) as i64;
        self.tree.resize(2 * capacity + 1, 0);
        self.tree[2 * capacity] = total;
    }

    pub(super) fn prefix_sum(&self, index: u64) -> u64 {
        let mut i = (index as usize).min(self.tree.len().saturating_sub(1));
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum.max(0) as u64
    }

    pub(super) fn total(&self) -> u64 {
        self.prefix_sum(self.tree.len().saturating_sub(1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::Fenwick;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fenwick_prefix_sums_match_a_plain_count(ops in prop::collection::vec((1u64..300, any::<bool>()), 1..400)) {
            let mut tree = Fenwick::default();
            let mut present = std::collections::BTreeSet::new();
            for (index, insert) in ops {
                if insert && present.insert(index) {
                    tree.add(index, 1);
                } else if !insert && present.remove(&index) {
                    tree.add(index, -1);
                }
                for probe in [1, index, 150, 299] {
                    let expected = present.range(..=probe).count() as u64;
                    prop_assert_eq!(tree.prefix_sum(probe), expected);
                }
                prop_assert_eq!(tree.total(), present.len() as u64);
            }
        }
    }
}
