//! Symmetry reduction: renumbering processes into a canonical order.
//!
//! For a protocol that never compares process ids, two states that differ
//! only by a renumbering of processes have the same futures up to that
//! renumbering, so the checker need only explore one of them. A model's
//! representative sorts its processes by their local state and rewrites
//! every field that names a process. Ties are harmless: a representative
//! that is not unique only explores more states, never fewer.

/// A renumbering of `n` processes.
pub(crate) struct Permutation {
    /// `new_id[old] = new`.
    new_id: Vec<u8>,
}

impl Permutation {
    /// The renumbering that sorts processes by `key` (stable, so equal keys
    /// keep their order).
    pub fn sorting<K: Ord>(n: usize, key: impl Fn(usize) -> K) -> Permutation {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| key(i));
        let mut new_id = vec![0; n];
        for (new, &old) in order.iter().enumerate() {
            new_id[old] = new as u8;
        }
        Permutation { new_id }
    }

    /// The new id of process `old`.
    pub fn id(&self, old: u8) -> u8 {
        self.new_id[old as usize]
    }

    /// A per-process vector, renumbered.
    pub fn apply<T: Clone>(&self, per_process: &[T]) -> Vec<T> {
        assert_eq!(
            per_process.len(),
            self.new_id.len(),
            "one entry per process"
        );
        let mut out = per_process.to_vec();
        for (old, v) in per_process.iter().enumerate() {
            out[self.new_id[old] as usize] = v.clone();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_renumbers_consistently() {
        let keys = [3, 1, 2];
        let p = Permutation::sorting(3, |i| keys[i]);
        assert_eq!(p.apply(&keys), vec![1, 2, 3]);
        // Process 0 (key 3) is now last, process 1 (key 1) first.
        assert_eq!((p.id(0), p.id(1), p.id(2)), (2, 0, 1));
        assert_eq!(p.apply(&['a', 'b', 'c']), vec!['b', 'c', 'a']);
    }
}
