//! Protocol hot paths: frame header parse, frame encode, unmasking (scalar vs word-wise),
//! incremental UTF-8 validation, and permessage-deflate: one message compressed (what a
//! publish costs once, and a direct send each time) and inflated, on JSON-like text.
//! `make bench` runs them.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringcast::proto::deflate::{compress, Inflater};
use ringcast::proto::frame::{encode_frame, encode_masked_frame, parse_header, Opcode};
use ringcast::proto::mask::{apply_mask, apply_mask_scalar};
use ringcast::proto::utf8::Utf8Validator;

fn masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for size in [64usize, 1024, 64 * 1024] {
        let mut buf = vec![0xA5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("scalar", size), &size, |b, _| {
            b.iter(|| apply_mask_scalar(black_box(&mut buf), [1, 2, 3, 4], 0))
        });
        g.bench_with_input(BenchmarkId::new("word", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), [1, 2, 3, 4], 0))
        });
    }
    g.finish();
}

fn frames(c: &mut Criterion) {
    let frame = encode_masked_frame(true, Opcode::Binary, &[0u8; 1024], [1, 2, 3, 4]);
    c.bench_function("parse_header/1KiB masked", |b| {
        b.iter(|| parse_header(black_box(&frame)))
    });
    let payload = vec![7u8; 64];
    c.bench_function("encode_frame/64B", |b| {
        b.iter(|| encode_frame(true, Opcode::Binary, black_box(&payload)))
    });
}

fn utf8(c: &mut Criterion) {
    let text = "héllo wörld — ringcast ✓ ".repeat(2048);
    let mut g = c.benchmark_group("utf8");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("validator/whole", |b| {
        b.iter(|| {
            let mut v = Utf8Validator::default();
            v.feed(black_box(text.as_bytes())).unwrap();
            v.is_complete()
        })
    });
    g.bench_function("validator/4KiB chunks", |b| {
        b.iter(|| {
            let mut v = Utf8Validator::default();
            for chunk in text.as_bytes().chunks(4096) {
                v.feed(black_box(chunk)).unwrap();
            }
            v.is_complete()
        })
    });
    g.finish();
}

/// `n` bytes of JSON-like text (records of a few numbers and names, as fan-out carries).
fn json(n: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0usize;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"type":"trade","symbol":"SYM{}","price":{}.{:02},"qty":{}}},"#,
            i % 13,
            100 + i % 50,
            i % 100,
            (i * 7919) % 1000
        ));
        i += 1;
    }
    s.truncate(n);
    s.into_bytes()
}

fn deflate(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate");
    for size in [1024usize, 16 * 1024] {
        let data = json(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("compress", size), &size, |b, _| {
            b.iter(|| compress(&[black_box(&data)]))
        });
        let z = compress(&[&data]);
        let mut inflater = Inflater::new();
        g.bench_with_input(BenchmarkId::new("inflate", size), &size, |b, _| {
            b.iter(|| inflater.inflate(black_box(&z), 1 << 20, false).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, masking, frames, utf8, deflate);
criterion_main!(benches);
