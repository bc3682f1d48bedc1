// BatchNorm without affine (the search's), XLA FFI handlers for the CPU: training mode below,
// and evaluation mode (normalised with the running statistics, `Inference`).
//
//   forward:  mean = sum(x) / M, var = sum((x - mean)^2) / M, inv = 1 / sqrt(var + eps),
//             y = (x - mean) * inv, and the running statistics' update
//             ra_mean' = a * ra_mean + b * mean, ra_var' = a * ra_var + b * var * M / (M - 1)
//   backward: dx = inv * (g - sum(g) / M - xhat * sum(g * xhat) / M), xhat = (x - mean) * inv
//
// x, y, g and dx are (M, C) float32 (the N, H, W axes flattened), the statistics (C). XLA:CPU
// builds a BatchNorm as about seven kernels (two reductions forward, two backward, the
// normalisation, the rsqrt and the two running-statistic updates), each compiled apart for
// every BatchNorm of the supernet: half of the search's gradient program. Here they are two
// calls of code compiled once. The rows are split into a fixed number of blocks (a function of
// the shape only, so results are the same bits on every run) run on XLA's intra-op threads;
// each block's per-channel sums are kept in double precision and added in block order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "parallel.h"

namespace ffi = xla::ffi;
using prdarts::ForBlocks;

namespace {

constexpr int64_t kMaxBlocks = 16;
constexpr int64_t kMinBlockElements = 1 << 15;

int64_t RowBlocks(int64_t m, int64_t c) {
  return std::max<int64_t>(1, std::min({m, kMaxBlocks, m * c / kMinBlockElements}));
}

// Per-channel sums of f(row r, channel j) over the rows, block by block, added in block order.
template <typename F>
void ChannelSums(ffi::ThreadPool& pool, int64_t m, int64_t c, int sums, F f, double* out) {
  const int64_t blocks = RowBlocks(m, c);
  std::vector<double> partial(blocks * sums * c, 0.0);
  ForBlocks(pool, m, blocks, [&](int64_t b, int64_t r0, int64_t r1) {
    double* acc = partial.data() + b * sums * c;
    for (int64_t r = r0; r < r1; ++r) f(r, acc);
  });
  std::fill(out, out + sums * c, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t j = 0; j < sums * c; ++j) out[j] += partial[b * sums * c + j];
}

// Rows [0, m) of (M, C) through f(row r), on the same blocks.
template <typename F>
void Rows(ffi::ThreadPool& pool, int64_t m, int64_t c, F f) {
  ForBlocks(pool, m, RowBlocks(m, c), [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) f(r);
  });
}

ffi::Error CheckStatistics(ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& ra_mean,
                           ffi::Buffer<ffi::F32>& ra_var) {
  auto xd = x.dimensions();
  if (xd.size() != 2 || ra_mean.element_count() != xd[1] || ra_var.element_count() != xd[1])
    return ffi::Error::InvalidArgument("batch norm: x must be (M, C) and the statistics (C)");
  return ffi::Error::Success();
}

// y = (x - mean) * inv, row by row on the fixed blocks.
void Normalize(ffi::ThreadPool& pool, int64_t m, int64_t c, const float* xp, const float* mean,
               const float* inv, float* yp) {
  Rows(pool, m, c, [&](int64_t r) {
    const float* row = xp + r * c;
    float* out = yp + r * c;
    for (int64_t j = 0; j < c; ++j) out[j] = (row[j] - mean[j]) * inv[j];
  });
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> ra_mean,
                   ffi::Buffer<ffi::F32> ra_var, ffi::ResultBuffer<ffi::F32> y,
                   ffi::ResultBuffer<ffi::F32> mean_out, ffi::ResultBuffer<ffi::F32> inv_out,
                   ffi::ResultBuffer<ffi::F32> ra_mean_out, ffi::ResultBuffer<ffi::F32> ra_var_out,
                   float momentum, float eps) {
  if (auto err = CheckStatistics(x, ra_mean, ra_var); err.failure()) return err;
  auto xd = x.dimensions();
  const int64_t m = xd[0], c = xd[1];
  if (m < 1) return ffi::Error::InvalidArgument("batch norm: no rows");
  const float* xp = x.typed_data();
  std::vector<double> sum(c), sq(c);
  ChannelSums(pool, m, c, 1, [&](int64_t r, double* acc) {
    const float* row = xp + r * c;
    for (int64_t j = 0; j < c; ++j) acc[j] += row[j];
  }, sum.data());
  std::vector<float> mean(c), inv(c);
  for (int64_t j = 0; j < c; ++j) mean[j] = static_cast<float>(sum[j] / m);
  ChannelSums(pool, m, c, 1, [&](int64_t r, double* acc) {
    const float* row = xp + r * c;
    for (int64_t j = 0; j < c; ++j) {
      const float d = row[j] - mean[j];
      acc[j] += static_cast<double>(d) * d;
    }
  }, sq.data());
  const float a = momentum, b = 1.0f - momentum;
  const float unbias = m > 1 ? static_cast<float>(static_cast<double>(m) / (m - 1)) : 1.0f;
  for (int64_t j = 0; j < c; ++j) {
    const float var = static_cast<float>(sq[j] / m);
    inv[j] = 1.0f / std::sqrt(var + eps);
    mean_out->typed_data()[j] = mean[j];
    inv_out->typed_data()[j] = inv[j];
    ra_mean_out->typed_data()[j] = a * ra_mean.typed_data()[j] + b * mean[j];
    ra_var_out->typed_data()[j] = a * ra_var.typed_data()[j] + b * (var * unbias);
  }
  Normalize(pool, m, c, xp, mean.data(), inv.data(), y->typed_data());
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> x,
                    ffi::Buffer<ffi::F32> mean_in, ffi::Buffer<ffi::F32> inv_in,
                    ffi::ResultBuffer<ffi::F32> dx) {
  auto xd = x.dimensions(), gd = g.dimensions();
  if (xd.size() != 2 || gd.size() != 2 || gd[0] != xd[0] || gd[1] != xd[1] ||
      mean_in.element_count() != xd[1] || inv_in.element_count() != xd[1])
    return ffi::Error::InvalidArgument("batch norm gradient: inconsistent shapes");
  const int64_t m = xd[0], c = xd[1];
  const float *xp = x.typed_data(), *gp = g.typed_data();
  const float *mean = mean_in.typed_data(), *inv = inv_in.typed_data();
  std::vector<double> sums(2 * c);
  ChannelSums(pool, m, c, 2, [&](int64_t r, double* acc) {
    const float *xr = xp + r * c, *gr = gp + r * c;
    for (int64_t j = 0; j < c; ++j) {
      acc[j] += gr[j];
      acc[c + j] += static_cast<double>(gr[j]) * ((xr[j] - mean[j]) * inv[j]);
    }
  }, sums.data());
  std::vector<float> g_mean(c), gx_mean(c);
  for (int64_t j = 0; j < c; ++j) {
    g_mean[j] = static_cast<float>(sums[j] / m);
    gx_mean[j] = static_cast<float>(sums[c + j] / m);
  }
  float* out = dx->typed_data();
  Rows(pool, m, c, [&](int64_t r) {
    const float *xr = xp + r * c, *gr = gp + r * c;
    float* o = out + r * c;
    for (int64_t j = 0; j < c; ++j)
      o[j] = inv[j] * (gr[j] - g_mean[j] - (xr[j] - mean[j]) * inv[j] * gx_mean[j]);
  });
  return ffi::Error::Success();
}

// Evaluation mode: y = (x - ra_mean) / sqrt(ra_var + eps), the running statistics as given.
ffi::Error Inference(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                     ffi::Buffer<ffi::F32> ra_mean, ffi::Buffer<ffi::F32> ra_var,
                     ffi::ResultBuffer<ffi::F32> y, float eps) {
  if (auto err = CheckStatistics(x, ra_mean, ra_var); err.failure()) return err;
  auto xd = x.dimensions();
  const int64_t m = xd[0], c = xd[1];
  const float *xp = x.typed_data(), *mean = ra_mean.typed_data();
  std::vector<float> inv(c);
  for (int64_t j = 0; j < c; ++j) inv[j] = 1.0f / std::sqrt(ra_var.typed_data()[j] + eps);
  Normalize(pool, m, c, xp, mean, inv.data(), y->typed_data());
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsBatchNormInference, Inference,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("eps"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsBatchNormForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("momentum")
                                  .Attr<float>("eps"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsBatchNormBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
