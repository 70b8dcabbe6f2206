//! Allocations per second on a /16 and a /64 pool already holding many assignments.
//!
//! Each iteration assigns one new Service and releases it again, so the pool stays at its fill level and the
//! figure includes both halves of the work. Run with `cargo bench -p ferrolb-ipam --bench allocate`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_ipam::fixtures::{pool, svc};
use ferrolb_ipam::{Allocator, Family, FamilyPolicy};

fn filled(entry: &str, family: Family, n: usize) -> Allocator {
    let mut allocator = Allocator::new([pool("bench", &[entry]).build()]);
    for i in 0..n {
        let request = svc("bench", &format!("svc-{i}")).families(FamilyPolicy::Single(family)).build();
        allocator.assign(&request).expect("pool large enough");
    }
    allocator
}

fn allocate(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate");
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("v4-slash16", "198.18.0.0/16", Family::V4, 10_000),
        ("v4-slash16", "198.18.0.0/16", Family::V4, 60_000),
        ("v6-slash64", "2001:db8::/64", Family::V6, 10_000),
        ("v6-slash64", "2001:db8::/64", Family::V6, 100_000),
    ];
    for (name, entry, family, fill) in cases {
        let mut allocator = filled(entry, family, fill);
        let request = svc("bench", "new").families(FamilyPolicy::Single(family)).build();
        group.bench_with_input(BenchmarkId::new(name, fill), &fill, |b, _| {
            b.iter(|| {
                let ip = allocator.assign(&request).expect("free address").ips().next();
                allocator.release(&request.service);
                ip
            })
        });
    }
    group.finish();
}

criterion_group!(benches, allocate);
criterion_main!(benches);
