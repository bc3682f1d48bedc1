// 3x3 max and average pooling (padding 1) and their input gradients, XLA FFI handlers for the CPU.
//
//   max:     y[n, h, w, c] = max of x over the window's taps inside the image (padding never wins)
//            dx: each output's cotangent goes to the first tap (row-major) holding the maximum
//   average: y = sum of the taps inside the image / their number (count_include_pad=False)
//            dx: each output's cotangent / that number, to each of those taps
//
// x, dx (N, H, W, C) and y, g (N, Ho, Wo, C) are NHWC float32, Ho = (H - 1) / s + 1 at stride s
// (1 or 2). XLA:CPU builds each pool of the supernet (a padded reduce-window forward, a
// select-and-scatter or a window sum backward, the counts) as several kernels, compiled apart
// for every edge; here they are calls of code compiled once. Images are split into a fixed
// number of blocks (results are the same bits on every run) on XLA's intra-op threads; the
// channels, minor, are the inner loops.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "parallel.h"

namespace ffi = xla::ffi;
using prdarts::ForBlocks;

namespace {

constexpr int64_t kMaxBlocks = 16;

struct Shape {
  int64_t n, h, w, c, ho, wo;
  int s;
  // The window of output (i, j) inside the image: rows [r0, r1), columns [c0, c1).
  int64_t r0(int64_t i) const { return std::max<int64_t>(i * s - 1, 0); }
  int64_t r1(int64_t i) const { return std::min<int64_t>(i * s + 2, h); }
  int64_t c0(int64_t j) const { return std::max<int64_t>(j * s - 1, 0); }
  int64_t c1(int64_t j) const { return std::min<int64_t>(j * s + 2, w); }
};

ffi::Error GetShape(ffi::Buffer<ffi::F32>& x, int64_t ho, int64_t wo, int64_t n_out,
                    int64_t c_out, int32_t stride, Shape* q) {
  auto d = x.dimensions();
  if (d.size() != 4 || (stride != 1 && stride != 2))
    return ffi::Error::InvalidArgument("pool: x must be NHWC and the stride 1 or 2");
  *q = Shape{d[0], d[1], d[2], d[3], (d[1] - 1) / stride + 1, (d[2] - 1) / stride + 1, stride};
  if (q->ho != ho || q->wo != wo || n_out != q->n || c_out != q->c)
    return ffi::Error::InvalidArgument("pool: output shape does not match the input's");
  return ffi::Error::Success();
}

void Images(ffi::ThreadPool& pool, int64_t n, std::function<void(int64_t)> fn) {
  ForBlocks(pool, n, std::max<int64_t>(1, std::min(n, kMaxBlocks)),
            [&](int64_t, int64_t n0, int64_t n1) {
              for (int64_t i = n0; i < n1; ++i) fn(i);
            });
}

// y = combine over the window's taps inside the image, from `init`; divided by their number
// where `average`.
template <typename Combine>
ffi::Error Forward(ffi::ThreadPool& pool, ffi::Buffer<ffi::F32>& x,
                   ffi::ResultBuffer<ffi::F32>& y, int32_t stride, float init, Combine combine,
                   bool average) {
  auto yd = y->dimensions();
  Shape q;
  if (auto e = GetShape(x, yd[1], yd[2], yd[0], yd[3], stride, &q); e.failure()) return e;
  const float* xp = x.typed_data();
  float* yp = y->typed_data();
  Images(pool, q.n, [&](int64_t n) {
    const float* xi = xp + n * q.h * q.w * q.c;
    for (int64_t i = 0; i < q.ho; ++i)
      for (int64_t j = 0; j < q.wo; ++j) {
        float* out = yp + ((n * q.ho + i) * q.wo + j) * q.c;
        std::fill(out, out + q.c, init);
        for (int64_t r = q.r0(i); r < q.r1(i); ++r)
          for (int64_t col = q.c0(j); col < q.c1(j); ++col) {
            const float* v = xi + (r * q.w + col) * q.c;
            for (int64_t k = 0; k < q.c; ++k) out[k] = combine(out[k], v[k]);
          }
        if (!average) continue;
        const float count = static_cast<float>((q.r1(i) - q.r0(i)) * (q.c1(j) - q.c0(j)));
        for (int64_t k = 0; k < q.c; ++k) out[k] /= count;
      }
  });
  return ffi::Error::Success();
}

ffi::Error MaxForward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                      ffi::ResultBuffer<ffi::F32> y, int32_t stride) {
  // a NaN wins, as in XLA's max
  auto max = [](float o, float a) { return (o != o || a <= o) ? o : a; };
  return Forward(pool, x, y, stride, -std::numeric_limits<float>::infinity(), max, false);
}

ffi::Error AvgForward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                      ffi::ResultBuffer<ffi::F32> y, int32_t stride) {
  return Forward(pool, x, y, stride, 0.f, [](float o, float a) { return o + a; }, true);
}

ffi::Error MaxBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                       ffi::ResultBuffer<ffi::F32> dx, int32_t stride) {
  auto gd = g.dimensions();
  Shape q;
  if (auto e = GetShape(x, gd[1], gd[2], gd[0], gd[3], stride, &q); e.failure()) return e;
  const float *xp = x.typed_data(), *gp = g.typed_data();
  float* dp = dx->typed_data();
  Images(pool, q.n, [&](int64_t n) {
    const float* xi = xp + n * q.h * q.w * q.c;
    float* di = dp + n * q.h * q.w * q.c;
    std::fill(di, di + q.h * q.w * q.c, 0.f);
    std::vector<float> best(q.c);
    std::vector<int64_t> where(q.c);
    for (int64_t i = 0; i < q.ho; ++i)
      for (int64_t j = 0; j < q.wo; ++j) {
        std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
        std::fill(where.begin(), where.end(), (q.r0(i) * q.w + q.c0(j)) * q.c);
        for (int64_t r = q.r0(i); r < q.r1(i); ++r)
          for (int64_t col = q.c0(j); col < q.c1(j); ++col) {
            const int64_t at = (r * q.w + col) * q.c;
            for (int64_t k = 0; k < q.c; ++k)
              if (xi[at + k] > best[k]) best[k] = xi[at + k], where[k] = at;
          }
        const float* gv = gp + ((n * q.ho + i) * q.wo + j) * q.c;
        for (int64_t k = 0; k < q.c; ++k) di[where[k] + k] += gv[k];
      }
  });
  return ffi::Error::Success();
}

ffi::Error AvgBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                       ffi::ResultBuffer<ffi::F32> dx, int32_t stride) {
  auto gd = g.dimensions();
  Shape q;
  if (auto e = GetShape(x, gd[1], gd[2], gd[0], gd[3], stride, &q); e.failure()) return e;
  const float* gp = g.typed_data();
  float* dp = dx->typed_data();
  Images(pool, q.n, [&](int64_t n) {
    float* di = dp + n * q.h * q.w * q.c;
    std::fill(di, di + q.h * q.w * q.c, 0.f);
    std::vector<float> share(q.c);
    for (int64_t i = 0; i < q.ho; ++i)
      for (int64_t j = 0; j < q.wo; ++j) {
        const float count = static_cast<float>((q.r1(i) - q.r0(i)) * (q.c1(j) - q.c0(j)));
        const float* gv = gp + ((n * q.ho + i) * q.wo + j) * q.c;
        for (int64_t k = 0; k < q.c; ++k) share[k] = gv[k] / count;
        for (int64_t r = q.r0(i); r < q.r1(i); ++r)
          for (int64_t col = q.c0(j); col < q.c1(j); ++col) {
            float* d = di + (r * q.w + col) * q.c;
            for (int64_t k = 0; k < q.c; ++k) d[k] += share[k];
          }
      }
  });
  return ffi::Error::Success();
}

}  // namespace

#define PRDARTS_POOL_FORWARD(symbol, fn)                      \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(symbol, fn,                   \
                                ffi::Ffi::Bind()              \
                                    .Ctx<ffi::ThreadPool>()   \
                                    .Arg<ffi::Buffer<ffi::F32>>() \
                                    .Ret<ffi::Buffer<ffi::F32>>() \
                                    .Attr<int32_t>("stride"));
#define PRDARTS_POOL_BACKWARD(symbol, fn)                     \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(symbol, fn,                   \
                                ffi::Ffi::Bind()              \
                                    .Ctx<ffi::ThreadPool>()   \
                                    .Arg<ffi::Buffer<ffi::F32>>() \
                                    .Arg<ffi::Buffer<ffi::F32>>() \
                                    .Ret<ffi::Buffer<ffi::F32>>() \
                                    .Attr<int32_t>("stride"));

PRDARTS_POOL_FORWARD(PrdartsMaxPool3, MaxForward)
PRDARTS_POOL_BACKWARD(PrdartsMaxPool3Grad, MaxBackward)
PRDARTS_POOL_FORWARD(PrdartsAvgPool3, AvgForward)
PRDARTS_POOL_BACKWARD(PrdartsAvgPool3Grad, AvgBackward)
