use std::collections::HashMap;
use std::time::Instant;
type M = HashMap<u128, u128, foldhash::fast::RandomState>;
fn fill(n: usize, seed: u128) -> M {
    let mut m = M::default();
    for i in 0..n as u128 { m.insert((i + seed).wrapping_mul(0x9E3779B97F4A7C15F39CC0605CEDC835), i); }
    m.shrink_to_fit();
    m
}
fn main() {
    for n in [65_536usize, 200_000, 458_752] {
        let (mut a, b) = (fill(n, 0), fill(n / 2, 1 << 40));
        let t = Instant::now(); a.extend(b); a.shrink_to_fit(); let cur = t.elapsed();
        let (mut a, b) = (fill(n, 0), fill(n / 2, 1 << 40));
        let t = Instant::now(); a.reserve(b.len()); a.extend(b); a.shrink_to_fit(); let res = t.elapsed();
        let (a, b) = (fill(n, 0), fill(n / 2, 1 << 40));
        let t = Instant::now(); let mut m = M::with_capacity_and_hasher(a.len() + b.len(), Default::default()); m.extend(a); m.extend(b); let fresh = t.elapsed();
        // warm: same with memory pre-faulted by a previous allocation of the same size
        let (mut a, b) = (fill(n, 0), fill(n / 2, 1 << 40));
        let t = Instant::now(); a.extend(b); a.shrink_to_fit(); let again = t.elapsed();
        println!("n={n:7} current {cur:?} reserve {res:?} fresh {fresh:?} current-again {again:?}");
    }
}
