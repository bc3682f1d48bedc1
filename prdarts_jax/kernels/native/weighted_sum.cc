// A mixed edge's sum of its ops' outputs weighted by softmax(alpha), XLA FFI handlers for the CPU.
//
//   forward:  out = sum_i w_i * y_i                       (w: (n), the y_i and out alike)
//   backward: dy_i = w_i * g,  dw_i = sum(g * y_i)
//
// XLA:CPU builds the backward as two kernels per op of every edge (the op's cotangent, and the
// weight's gradient as a reduction padded into the edge's vector), compiled apart: about half
// of the supernet gradient program's kernels. Here they are one call forward and one backward
// per edge, of code compiled once. The elements are split into a fixed number of blocks (a
// function of the size only: the same bits on every run); the weight gradients are summed in
// double precision, block by block, added in block order.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "parallel.h"

namespace ffi = xla::ffi;
using prdarts::ForBlocks;

namespace {

constexpr int64_t kMaxBlocks = 16;
constexpr int64_t kMinBlockElements = 1 << 14;
constexpr int64_t kTile = 1024;

int64_t Blocks(int64_t size) {
  return std::max<int64_t>(1, std::min(kMaxBlocks, size / kMinBlockElements));
}

ffi::Error Operands(const ffi::RemainingArgs& args, size_t first, size_t n, int64_t size,
                    std::vector<const float*>& ys) {
  ys.resize(n);
  for (size_t i = 0; i < n; ++i) {
    auto y = args.get<ffi::Buffer<ffi::F32>>(first + i);
    if (y.has_error() || y->element_count() != size)
      return ffi::Error::InvalidArgument("weighted sum: the outputs must be float32, all alike");
    ys[i] = y->typed_data();
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> w, ffi::RemainingArgs args,
                   ffi::ResultBuffer<ffi::F32> out) {
  const size_t n = w.element_count();
  if (n == 0 || args.size() != n)
    return ffi::Error::InvalidArgument("weighted sum: one weight per output, at least one");
  const int64_t size = out->element_count();
  std::vector<const float*> ys;
  if (auto err = Operands(args, 0, n, size, ys); err.failure()) return err;
  const float* wp = w.typed_data();
  float* o = out->typed_data();
  ForBlocks(pool, size, Blocks(size), [&](int64_t, int64_t e0, int64_t e1) {
    for (int64_t t0 = e0; t0 < e1; t0 += kTile) {   // a tile of out stays in L1 over the ops
      const int64_t t1 = std::min(t0 + kTile, e1);
      const float w0 = wp[0], *y0 = ys[0];
      for (int64_t e = t0; e < t1; ++e) o[e] = w0 * y0[e];
      for (size_t i = 1; i < n; ++i) {
        const float wi = wp[i], *y = ys[i];
        for (int64_t e = t0; e < t1; ++e) o[e] += wi * y[e];
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> g,
                    ffi::RemainingArgs args, ffi::RemainingRets rets) {
  const size_t n = w.element_count();
  if (args.size() != n || rets.size() != n + 1)
    return ffi::Error::InvalidArgument("weighted sum gradient: one weight per output");
  const int64_t size = g.element_count();
  std::vector<const float*> ys;
  if (auto err = Operands(args, 0, n, size, ys); err.failure()) return err;
  auto dw = rets.get<ffi::Buffer<ffi::F32>>(0);
  if (dw.has_error() || (*dw)->element_count() != static_cast<int64_t>(n))
    return ffi::Error::InvalidArgument("weighted sum gradient: dw must be (n) float32");
  std::vector<float*> dys(n);
  for (size_t i = 0; i < n; ++i) {
    auto dy = rets.get<ffi::Buffer<ffi::F32>>(1 + i);
    if (dy.has_error() || (*dy)->element_count() != size)
      return ffi::Error::InvalidArgument("weighted sum gradient: dy_i must be like g");
    dys[i] = (*dy)->typed_data();
  }
  const float *wp = w.typed_data(), *gp = g.typed_data();
  const int64_t blocks = Blocks(size);
  std::vector<double> partial(blocks * n, 0.0);
  ForBlocks(pool, size, blocks, [&](int64_t b, int64_t e0, int64_t e1) {
    for (size_t i = 0; i < n; ++i) {
      const float wi = wp[i], *y = ys[i];
      float* dy = dys[i];
      for (int64_t e = e0; e < e1; ++e) dy[e] = wi * gp[e];
      double acc[4] = {0.0, 0.0, 0.0, 0.0};   // independent sums: no serial add chain
      int64_t e = e0;
      for (; e + 4 <= e1; e += 4)
        for (int k = 0; k < 4; ++k) acc[k] += static_cast<double>(gp[e + k]) * y[e + k];
      for (; e < e1; ++e) acc[0] += static_cast<double>(gp[e]) * y[e];
      partial[b * n + i] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
  });
  float* dwp = (*dw)->typed_data();
  for (size_t i = 0; i < n; ++i) {
    double sum = 0.0;
    for (int64_t b = 0; b < blocks; ++b) sum += partial[b * n + i];
    dwp[i] = static_cast<float>(sum);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsWeightedSum, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsWeightedSumGrad, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets());
