/* STREAM-style memory read bandwidth: the reference the `bitnet-cli bench` probe is checked
 * against (scripts/bench/membw_check.sh builds and runs it; it is a benchmark, not a test).
 *
 * Three arrays of MIB MiB of doubles each (STREAM's a, b, c; 512 MiB by default), written
 * in parallel first so the pages are faulted in on the threads that read them, then read
 * as one OpenMP sum reduction over all three, best of PASSES (10) timed passes. Prints
 * "<GB/s> GB/s read (threads T, 3 x N MiB, best of P)" with GB = 1e9 bytes.
 *
 * Build: gcc -O3 -march=native -fopenmp stream_read.c -o stream_read
 * Usage: OMP_NUM_THREADS=T OMP_PROC_BIND=close ./stream_read [MIB [PASSES]]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

static double sum3(const double *restrict a, const double *restrict b,
                   const double *restrict c, size_t n) {
  double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
  for (size_t i = 0; i < n; i++)
    s += a[i] + b[i] + c[i];
  return s;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
  int passes = argc > 2 ? atoi(argv[2]) : 10;
  if (mib == 0 || passes <= 0) {
    fprintf(stderr, "usage: %s [MIB>0 [PASSES>0]]\n", argv[0]);
    return 2;
  }
  size_t n = (mib << 20) / sizeof(double);
  /* Whole 2 MiB pages, advised for transparent huge pages before the first write (as the
   * model's weights are), so that reading is not slowed by a TLB miss every 4 KiB. */
  size_t huge = (size_t)2 << 20;
  size_t bytes = (n * sizeof(double) + huge - 1) / huge * huge;
  double *a = aligned_alloc(huge, bytes);
  double *b = aligned_alloc(huge, bytes);
  double *c = aligned_alloc(huge, bytes);
  if (!a || !b || !c) {
    fprintf(stderr, "stream_read: cannot allocate 3 x %zu MiB\n", mib);
    return 1;
  }
#ifdef __linux__
  madvise(a, bytes, MADV_HUGEPAGE);
  madvise(b, bytes, MADV_HUGEPAGE);
  madvise(c, bytes, MADV_HUGEPAGE);
#endif
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    a[i] = 1.0;
    b[i] = 2.0;
    c[i] = 3.0;
  }
  double best = 0.0, check = 0.0;
  for (int p = 0; p < passes; p++) {
    double t0 = omp_get_wtime();
    double s = sum3(a, b, c, n);
    double t = omp_get_wtime() - t0;
    check = s;
    double gbs = 3.0 * n * sizeof(double) / t / 1e9;
    if (gbs > best)
      best = gbs;
  }
  /* The sum is printed-checked so the reads cannot be optimised away. */
  if (check != 6.0 * (double)n) {
    fprintf(stderr, "stream_read: wrong sum %.17g (want %.17g)\n", check, 6.0 * (double)n);
    return 1;
  }
  printf("%.2f GB/s read (threads %d, 3 x %zu MiB, best of %d)\n", best,
         omp_get_max_threads(), mib, passes);
  free(a);
  free(b);
  free(c);
  return 0;
}
