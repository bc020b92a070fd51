//! The order in which Kafka Streams' `describe()` lists a node's successors, predecessors and
//! stores, so that our description is the same text as Java's.
//!
//! Java builds each sub-topology's description by iterating a `HashMap` of its nodes and, for each
//! node and each of its parents, inserting the two into each other's `TreeSet`s. The sets compare
//! nodes by sub-graph size (descending), then name, but sizes grow while the sets are built, so
//! where a node lands depends on the sizes at the moment of insertion and on the red-black tree's
//! shape. The order is reproduced here by replaying that construction: Java's `HashMap`
//! iteration order for `String` keys, and `java.util.TreeMap`'s insertion and rebalancing.

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The iteration order of a `java.util.HashMap`/`HashSet` of default capacity into which `keys`
/// were inserted in this order: by bucket of the spread hash, then by insertion.
pub(crate) fn hash_order<S: AsRef<str>>(keys: &[S]) -> Vec<usize> {
    let mut capacity = 16usize;
    while keys.len() > capacity * 3 / 4 {
        capacity *= 2;
    }
    let bucket = |s: &str| {
        let h = java_hash(s) as u32;
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| (bucket(keys[i].as_ref()), i));
    order
}

/// A `java.util.TreeSet` of node indexes under a comparator that reads mutable state, kept as
/// `TreeMap` keeps it (a red-black tree, rebalanced the same way), so that in-order iteration
/// gives Java's order.
#[derive(Default)]
pub(crate) struct JavaTreeSet {
    nodes: Vec<RbNode>,
    root: Option<usize>,
}

struct RbNode {
    item: usize,
    left: Option<usize>,
    right: Option<usize>,
    parent: Option<usize>,
    red: bool,
}

impl JavaTreeSet {
    /// Inserts `item` unless `compare` finds it equal to one already there.
    pub(crate) fn insert(
        &mut self,
        item: usize,
        compare: impl Fn(usize, usize) -> std::cmp::Ordering,
    ) {
        use std::cmp::Ordering;
        let Some(mut t) = self.root else {
            self.nodes.push(RbNode {
                item,
                left: None,
                right: None,
                parent: None,
                red: false,
            });
            self.root = Some(self.nodes.len() - 1);
            return;
        };
        let new = self.nodes.len();
        loop {
            let next = match compare(item, self.nodes[t].item) {
                Ordering::Equal => return,
                Ordering::Less => &mut self.nodes[t].left,
                Ordering::Greater => &mut self.nodes[t].right,
            };
            match *next {
                Some(n) => t = n,
                None => {
                    *next = Some(new);
                    break;
                }
            }
        }
        self.nodes.push(RbNode {
            item,
            left: None,
            right: None,
            parent: Some(t),
            red: true,
        });
        self.fix_after_insertion(new);
    }

    /// The items in order.
    pub(crate) fn items(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = Vec::new();
        let mut cur = self.root;
        while cur.is_some() || !stack.is_empty() {
            while let Some(c) = cur {
                stack.push(c);
                cur = self.nodes[c].left;
            }
            if let Some(c) = stack.pop() {
                out.push(self.nodes[c].item);
                cur = self.nodes[c].right;
            }
        }
        out
    }

    fn parent(&self, x: Option<usize>) -> Option<usize> {
        x.and_then(|x| self.nodes[x].parent)
    }
    fn left(&self, x: Option<usize>) -> Option<usize> {
        x.and_then(|x| self.nodes[x].left)
    }
    fn right(&self, x: Option<usize>) -> Option<usize> {
        x.and_then(|x| self.nodes[x].right)
    }
    fn is_red(&self, x: Option<usize>) -> bool {
        x.is_some_and(|x| self.nodes[x].red)
    }
    fn set_red(&mut self, x: Option<usize>, red: bool) {
        if let Some(x) = x {
            self.nodes[x].red = red;
        }
    }

    fn rotate_left(&mut self, p: Option<usize>) {
        let Some(p) = p else { return };
        let Some(r) = self.nodes[p].right else { return };
        self.nodes[p].right = self.nodes[r].left;
        if let Some(rl) = self.nodes[r].left {
            self.nodes[rl].parent = Some(p);
        }
        self.replace_in_parent(p, r);
        self.nodes[r].left = Some(p);
        self.nodes[p].parent = Some(r);
    }

    fn rotate_right(&mut self, p: Option<usize>) {
        let Some(p) = p else { return };
        let Some(l) = self.nodes[p].left else { return };
        self.nodes[p].left = self.nodes[l].right;
        if let Some(lr) = self.nodes[l].right {
            self.nodes[lr].parent = Some(p);
        }
        self.replace_in_parent(p, l);
        self.nodes[l].right = Some(p);
        self.nodes[p].parent = Some(l);
    }

    /// Puts `with` where `p` hangs from its parent (or at the root).
    fn replace_in_parent(&mut self, p: usize, with: usize) {
        let pp = self.nodes[p].parent;
        self.nodes[with].parent = pp;
        match pp {
            None => self.root = Some(with),
            Some(pp) if self.nodes[pp].left == Some(p) => self.nodes[pp].left = Some(with),
            Some(pp) => self.nodes[pp].right = Some(with),
        }
    }

    fn fix_after_insertion(&mut self, x: usize) {
        let mut x = Some(x);
        while x.is_some() && x != self.root && self.is_red(self.parent(x)) {
            let grand = self.parent(self.parent(x));
            if self.parent(x) == self.left(grand) {
                let uncle = self.right(grand);
                if self.is_red(uncle) {
                    self.set_red(self.parent(x), false);
                    self.set_red(uncle, false);
                    self.set_red(grand, true);
                    x = grand;
                } else {
                    if x == self.right(self.parent(x)) {
                        x = self.parent(x);
                        self.rotate_left(x);
                    }
                    self.set_red(self.parent(x), false);
                    let grand = self.parent(self.parent(x));
                    self.set_red(grand, true);
                    self.rotate_right(grand);
                }
            } else {
                let uncle = self.left(grand);
                if self.is_red(uncle) {
                    self.set_red(self.parent(x), false);
                    self.set_red(uncle, false);
                    self.set_red(grand, true);
                    x = grand;
                } else {
                    if x == self.left(self.parent(x)) {
                        x = self.parent(x);
                        self.rotate_right(x);
                    }
                    self.set_red(self.parent(x), false);
                    let grand = self.parent(self.parent(x));
                    self.set_red(grand, true);
                    self.rotate_left(grand);
                }
            }
        }
        let root = self.root;
        self.set_red(root, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_hashes_are_java_ones() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(java_hash(""), 0);
    }

    #[test]
    fn a_tree_set_with_a_fixed_order_is_sorted() {
        let mut t = JavaTreeSet::default();
        for i in [5, 3, 9, 1, 4, 7, 8, 2, 6, 0] {
            t.insert(i, |a, b| a.cmp(&b));
        }
        t.insert(4, |a, b| a.cmp(&b));
        assert_eq!(t.items(), (0..10).collect::<Vec<_>>());
    }
}
