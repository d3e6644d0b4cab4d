//! `Kernels::for_each_part_mut`: every job gets its own part of each buffer, the parts
//! cover what the split describes, and bad splits are refused before any job runs.

use bitnet_kernels::{Kernels, PartsMut};
use std::panic::{AssertUnwindSafe, catch_unwind};

#[test]
fn each_job_writes_its_own_parts() {
    for threads in [1, 2, 3] {
        let k = Kernels::new(threads);
        // Ten units of two elements, a scratch row of 3 per thread, and uneven bounds.
        let mut even = vec![usize::MAX; 20];
        let mut scratch = vec![usize::MAX; 3 * threads];
        let bounds: Vec<usize> = (0..=threads).map(|i| i * i).collect();
        let mut at = vec![usize::MAX; threads * threads + 1];
        k.for_each_part_mut(
            [
                PartsMut::even(&mut even, 2),
                PartsMut::chunks(&mut scratch, 3),
                PartsMut::at(&mut at, &bounds),
            ],
            &|i, [mut e, mut s, mut a]| {
                assert_eq!(e.len() % 2, 0);
                assert_eq!((s.start(), s.len()), (3 * i, 3));
                assert_eq!((a.start(), a.len()), (i * i, 2 * i + 1));
                e.fill(i);
                s.fill(i);
                a.fill(i);
            },
        );
        // Even: contiguous, in job order, unit counts differing by at most one.
        let counts: Vec<usize> = (0..threads)
            .map(|i| even.iter().filter(|&&v| v == i).count() / 2)
            .collect();
        assert!(even.windows(2).all(|w| w[0] <= w[1]), "{even:?}");
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        assert!((0..scratch.len()).all(|j| scratch[j] == j / 3));
        // `at` leaves the element past the last bound alone.
        assert_eq!(*at.last().unwrap(), usize::MAX);
        for i in 0..threads {
            assert!(at[i * i..(i + 1) * (i + 1)].iter().all(|&v| v == i));
        }
    }
}

#[test]
fn parts_past_the_split_are_empty() {
    let k = Kernels::new(3);
    let mut a = vec![0u8; 4];
    let mut c = vec![0u8; 5];
    k.for_each_part_mut(
        [PartsMut::at(&mut a, &[0, 4]), PartsMut::chunks(&mut c, 4)],
        &|i, [a, c]| {
            let expect = match i {
                0 => (4, 4),
                1 => (0, 1),
                _ => (0, 0),
            };
            assert_eq!((a.len(), c.len()), expect, "part {i}");
        },
    );
}

#[test]
fn bad_splits_are_refused_before_any_job_runs() {
    let mut data = vec![0u8; 4];
    let err = |f: &mut dyn FnMut()| {
        let e = catch_unwind(AssertUnwindSafe(f)).unwrap_err();
        e.downcast_ref::<String>().cloned().unwrap()
    };
    let msg = err(&mut || {
        PartsMut::at(&mut data, &[0, 3, 2]);
    });
    assert!(msg.contains("not non-decreasing"), "{msg}");
    let msg = err(&mut || {
        PartsMut::at(&mut data, &[0, 5]);
    });
    assert!(msg.contains("within 0..=4"), "{msg}");
    let msg = err(&mut || {
        PartsMut::even(&mut data, 3);
    });
    assert!(msg.contains("not whole units of 3"), "{msg}");
    let k = Kernels::new(2);
    let msg = err(&mut || {
        k.for_each_part_mut([PartsMut::at(&mut data, &[0, 1, 2, 3])], &|_, _| {
            panic!("no job may run")
        });
    });
    assert!(msg.contains("3 parts for 2 jobs"), "{msg}");
}
