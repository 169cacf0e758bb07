use std::time::Instant;
fn main() {
    // Fresh 4 MiB each time, freed on another thread (as a frame body handed to the store's thread).
    let mut worst = 0f64; let mut all = vec![];
    for _ in 0..50 {
        let mut v: Vec<u8> = Vec::with_capacity(4 << 20);
        let t = Instant::now();
        v.resize(4 << 20, 0);
        let us = t.elapsed().as_secs_f64() * 1e6;
        all.push(us); if us > worst { worst = us; }
        std::thread::spawn(move || drop(v)).join().unwrap();
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("4 MiB zeroing: median {:.0} us, max {:.0} us", all[all.len()/2], worst);
    let mut all = vec![];
    for _ in 0..50 {
        let mut v: Vec<u8> = Vec::with_capacity(256 << 10);
        let t = Instant::now();
        v.resize(256 << 10, 0);
        all.push(t.elapsed().as_secs_f64() * 1e6);
        std::thread::spawn(move || drop(v)).join().unwrap();
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("256 KiB zeroing: median {:.0} us, max {:.0} us", all[all.len()/2], all[all.len()-1]);
}
