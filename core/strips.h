/*
 * strips.h — the product every inference step runs on, for every architecture: y += x @ W^T
 * for a few rows x, with W packed once, at load, into strips of STRIPS_WIDTH outputs.
 *
 * A general sgemm repacks the whole weight matrix on every call, which for the few rows of
 * an inference step costs more than the arithmetic. Here a strip of weights ([in, 24]: 36 KB
 * for 384 inputs) is read from memory once and stays in cache while every block of four rows
 * runs over it, so a step reads the weights once whatever its batch, and a block's sums stay
 * in registers through the loop over k.
 *
 * The guarantee the servers' texts rest on: every element of y is the same chain of
 * multiply-adds over k in order, whatever the number of rows, the block a row falls in and
 * in the last, partial strip alike. So a stream's numbers do not depend on how many streams
 * share a step, or on a prompt being prefilled in chunks. On x86-64 a second copy is compiled
 * for AVX2 + FMA and picked once at load time, so every call in a process runs the same copy.
 */
#ifndef CHARLM_STRIPS_H
#define CHARLM_STRIPS_H

#include <stddef.h>

/* Outputs per strip: three AVX vectors, so that four rows' sums stay in registers. */
#define STRIPS_WIDTH 24

/* Strips of an [out, in] matrix: out rounded up to whole strips. */
size_t strips_count(size_t out);
/* Floats of its packed copy: strips_count(out) * STRIPS_WIDTH * in. */
size_t strips_floats(size_t out, size_t in);
/* Packs w [out, in] (PyTorch's layout) as strips: dst[s][k][i] = w[s * 24 + i][k], the last
 * strip padded with zeros. dst holds strips_floats(out, in). */
void strips_pack(float *dst, const float *w, size_t out, size_t in);
/* y[r] += x[r] @ W^T for r < n: x [n, in] with rows ldx floats apart, w packed by
 * strips_pack, y [n, out]. */
void strips_matmul(int n, int in, int out, const float *x, int ldx, const float *w, float *y);

#endif
