//! Directed graph of node indices: topological order and cycle reporting.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Adjacency of a validated pipeline; node indices are positions in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// Upstream nodes of each node, in connection order (a node's input ports).
    pub preds: Vec<Vec<usize>>,
    /// Downstream nodes of each node, in connection order.
    pub succs: Vec<Vec<usize>>,
    /// Every node, each after all of its upstream nodes; ties keep manifest order.
    pub topo: Vec<usize>,
}

impl Graph {
    /// Builds the graph. Duplicate edges are kept once. On a cycle, returns every
    /// cycle found (one per strongly connected component), each as the node path
    /// `[a, b, c]` meaning `a -> b -> c -> a`.
    pub fn new(node_count: usize, edges: &[(usize, usize)]) -> Result<Graph, Vec<Vec<usize>>> {
        let mut preds = vec![Vec::new(); node_count];
        let mut succs = vec![Vec::new(); node_count];
        for &(from, to) in edges {
            if !succs[from].contains(&to) {
                succs[from].push(to);
                preds[to].push(from);
            }
        }
        let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..node_count)
            .filter(|&n| indegree[n] == 0)
            .map(Reverse)
            .collect();
        let mut topo = Vec::with_capacity(node_count);
        while let Some(Reverse(n)) = ready.pop() {
            topo.push(n);
            for &s in &succs[n] {
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    ready.push(Reverse(s));
                }
            }
        }
        if topo.len() == node_count {
            Ok(Graph { preds, succs, topo })
        } else {
            Err(find_cycles(&succs))
        }
    }

    /// Nodes without upstream nodes.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.preds.len()).filter(|&n| self.preds[n].is_empty())
    }

    /// Nodes without downstream nodes.
    pub fn sinks(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.succs.len()).filter(|&n| self.succs[n].is_empty())
    }
}

/// One cycle per strongly connected component that has one (Tarjan's algorithm),
/// each starting at the component's first node in manifest order.
fn find_cycles(succs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = succs.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut components: Vec<Vec<usize>> = Vec::new();

    // Iterative Tarjan to stay safe on long chains.
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = succs[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    loop {
                        let w = stack.pop().expect("tarjan stack");
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    let cyclic = comp.len() > 1 || succs[v].contains(&v);
                    if cyclic {
                        components.push(comp);
                    }
                }
            }
        }
    }

    let mut cycles: Vec<Vec<usize>> = components
        .into_iter()
        .map(|comp| cycle_in(succs, &comp))
        .collect();
    cycles.sort();
    cycles
}

/// A simple cycle inside one strongly connected component, by breadth-first search
/// back to its first node (so the printed cycle is a shortest one).
fn cycle_in(succs: &[Vec<usize>], comp: &[usize]) -> Vec<usize> {
    let start = *comp.iter().min().expect("non-empty component");
    let mut member = vec![false; succs.len()];
    for &c in comp {
        member[c] = true;
    }
    let inside = |x: usize| member[x];
    let mut parent = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &succs[v] {
            if !inside(w) {
                continue;
            }
            if w == start {
                let mut path = vec![v];
                let mut cur = v;
                while cur != start {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topo_keeps_manifest_order_for_ties() {
        let g = Graph::new(4, &[(0, 2), (1, 2), (2, 3)]).unwrap();
        assert_eq!(g.topo, vec![0, 1, 2, 3]);
        assert_eq!(g.roots().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(g.sinks().collect::<Vec<_>>(), vec![3]);
        assert_eq!(g.preds[2], vec![0, 1]);
    }

    #[test]
    fn reports_each_cycle() {
        let cycles = Graph::new(5, &[(0, 1), (1, 2), (2, 0), (3, 4), (4, 3)]).unwrap_err();
        assert_eq!(cycles, vec![vec![0, 1, 2], vec![3, 4]]);
    }

    #[test]
    fn duplicate_edges_count_once() {
        let g = Graph::new(2, &[(0, 1), (0, 1)]).unwrap();
        assert_eq!(g.succs[0], vec![1]);
    }

    #[test]
    fn long_chain_does_not_overflow() {
        let n = 100_000;
        let mut edges: Vec<(usize, usize)> = (0..n - 1).map(|i| (i, i + 1)).collect();
        edges.push((n - 1, 0));
        let cycles = Graph::new(n, &edges).unwrap_err();
        assert_eq!(cycles[0].len(), n);
    }
}
