// Depthwise convolution and its kernel gradient, XLA FFI handlers for the CPU.
//
//   y[n, h, w, c]  = sum_{i, j} x[n, h*s + i*d - p, w*s + j*d - p, c] * k[i, j, c]
//                    (with `flip`, k[K-1-i, K-1-j, c]: the input gradient's kernel, no copy)
//   dk[i, j, c]    = sum_{n, h, w} x[n, h*s + i*d - p, w*s + j*d - p, c] * g[n, h, w, c]
//
// With `relu`, x is read as max(x, 0) (the ReLU before a SepConv's depthwise conv, applied as
// the image is copied into the scratch); the masked conv writes y only where m > 0 and zero
// elsewhere (the input gradient through that ReLU, m being its input). No ReLU of XLA's, and
// no mask of the gradient, per conv.
//
// x (N, H, W, C), y and g (N, Ho, Wo, C) are NHWC float32; k and dk are (K, K, C); zero padding
// p, stride s, dilation d. XLA:CPU emits the kernel gradient's reduction as scalar loops (the
// channels, minor, are not vectorized) and the forward's tap sums with a padded copy in
// between. Here each image is copied into a zero-padded scratch whose channels are rounded up
// to whole SIMD vectors, and the sums run on whole vectors of channels with the accumulators in
// registers. Images are split into a fixed number of blocks (independent of the thread count,
// so results are the same on every run) that run on XLA's intra-op thread pool; the kernel
// gradient's partial sums per block are added in double precision, in block order.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "xla/ffi/api/ffi.h"
#include "parallel.h"

namespace ffi = xla::ffi;
using prdarts::ForBlocks;

namespace {

constexpr int kLanes = 16;
constexpr int64_t kMaxBlocks = 16;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

inline Vec Load(const float* p) { Vec v; std::memcpy(&v, p, sizeof(Vec)); return v; }
inline void Store(float* p, Vec v) { std::memcpy(p, &v, sizeof(Vec)); }

struct Geometry {
  int64_t n, h, w, c, ho, wo;
  int k, s, d, p;
  int64_t cp() const { return (c + kLanes - 1) / kLanes * kLanes; }
  int64_t hp() const { return h + 2 * p; }
  int64_t wp() const { return w + 2 * p; }
};

// Checks the shapes and attributes; an error message or nullptr.
const char* Check(const Geometry& q) {
  if (q.k < 1 || q.s < 1 || q.d < 1 || q.p < 0) return "bad kernel size/stride/dilation/padding";
  if ((q.ho - 1) * q.s + (q.k - 1) * q.d >= q.hp() || (q.wo - 1) * q.s + (q.k - 1) * q.d >= q.wp())
    return "output larger than the padded input";
  return nullptr;
}

// Image n of x (N, H, W, C) into xs (Hp, Wp, Cp), zero-padded (the padding is never written);
// with `relu`, max(x, 0) (NaN stays NaN, as XLA's maximum).
void PadImage(const Geometry& q, const float* x, int64_t n, float* xs, bool relu) {
  const int64_t cp = q.cp(), wp = q.wp();
  for (int64_t r = 0; r < q.h; ++r)
    for (int64_t col = 0; col < q.w; ++col) {
      float* dst = xs + ((r + q.p) * wp + col + q.p) * cp;
      const float* src = x + ((n * q.h + r) * q.w + col) * q.c;
      if (!relu) {
        std::memcpy(dst, src, q.c * sizeof(float));
      } else {
        for (int64_t c = 0; c < q.c; ++c) dst[c] = src[c] < 0.f ? 0.f : src[c];
      }
    }
}

int64_t Blocks(int64_t n) { return std::max<int64_t>(1, std::min(n, kMaxBlocks)); }

// Per-thread scratch that only grows: a training step calls these kernels hundreds of times
// on a few geometries, so after the first calls they allocate nothing.
float* Scratch(int slot, int64_t size) {
  thread_local std::vector<float> buffers[3];
  std::vector<float>& b = buffers[slot];
  if (int64_t(b.size()) < size) b.resize(size);
  return b.data();
}

float* ZeroedScratch(int slot, int64_t size) {
  float* p = Scratch(slot, size);
  std::fill(p, p + size, 0.f);
  return p;
}

// ------------------------------------------------------------------ kernel gradient

// One image, channels [cb, cb + 16 * NV) of the padded layouts; acc is (K * K, Cp).
template <int K, int NV>
void GradImage(const Geometry& q, const float* xs, const float* gs, float* acc, int64_t cb) {
  const int64_t cp = q.cp(), wp = q.wp();
  for (int i = 0; i < K; ++i) {
    Vec a[K][NV];
    for (int j = 0; j < K; ++j)
      for (int v = 0; v < NV; ++v) a[j][v] = Load(acc + (i * K + j) * cp + cb + kLanes * v);
    for (int64_t h = 0; h < q.ho; ++h) {
      const float* xr = xs + (h * q.s + i * q.d) * wp * cp + cb;
      const float* gr = gs + h * q.wo * cp + cb;
      for (int64_t w = 0; w < q.wo; ++w) {
        Vec gv[NV];
        for (int v = 0; v < NV; ++v) gv[v] = Load(gr + w * cp + kLanes * v);
        const float* xw = xr + w * q.s * cp;
        for (int j = 0; j < K; ++j)
          for (int v = 0; v < NV; ++v) a[j][v] += Load(xw + j * q.d * cp + kLanes * v) * gv[v];
      }
    }
    for (int j = 0; j < K; ++j)
      for (int v = 0; v < NV; ++v) Store(acc + (i * K + j) * cp + cb + kLanes * v, a[j][v]);
  }
}

template <int K>
void GradImageAllChannels(const Geometry& q, const float* xs, const float* gs, float* acc) {
  const int64_t cp = q.cp();
  for (int64_t cb = 0; cb < cp; cb += 3 * kLanes) {
    switch (std::min<int64_t>(3, (cp - cb) / kLanes)) {
      case 3: GradImage<K, 3>(q, xs, gs, acc, cb); break;
      case 2: GradImage<K, 2>(q, xs, gs, acc, cb); break;
      default: GradImage<K, 1>(q, xs, gs, acc, cb); break;
    }
  }
}

// Kernel sizes without a specialised loop: the same sums, one tap at a time.
void GradImageAnyK(const Geometry& q, const float* xs, const float* gs, float* acc) {
  const int64_t cp = q.cp(), wp = q.wp();
  for (int i = 0; i < q.k; ++i)
    for (int j = 0; j < q.k; ++j) {
      float* out = acc + (i * q.k + j) * cp;
      for (int64_t h = 0; h < q.ho; ++h)
        for (int64_t w = 0; w < q.wo; ++w) {
          const float* xv = xs + ((h * q.s + i * q.d) * wp + w * q.s + j * q.d) * cp;
          const float* gv = gs + (h * q.wo + w) * cp;
          for (int64_t c = 0; c < cp; ++c) out[c] += xv[c] * gv[c];
        }
    }
}

// Sums images [n0, n1) into acc (K * K, Cp).
void GradBlock(const Geometry& q, const float* x, const float* g, int64_t n0, int64_t n1,
               float* acc, bool relu) {
  const int64_t cp = q.cp();
  float* xs = ZeroedScratch(0, q.hp() * q.wp() * cp);
  float* gs = ZeroedScratch(1, q.ho * q.wo * cp);
  for (int64_t n = n0; n < n1; ++n) {
    PadImage(q, x, n, xs, relu);
    for (int64_t r = 0; r < q.ho * q.wo; ++r)
      std::memcpy(gs + r * cp, g + (n * q.ho * q.wo + r) * q.c, q.c * sizeof(float));
    switch (q.k) {
      case 1: GradImageAllChannels<1>(q, xs, gs, acc); break;
      case 3: GradImageAllChannels<3>(q, xs, gs, acc); break;
      case 5: GradImageAllChannels<5>(q, xs, gs, acc); break;
      case 7: GradImageAllChannels<7>(q, xs, gs, acc); break;
      default: GradImageAnyK(q, xs, gs, acc); break;
    }
  }
}

ffi::Error KernelGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                      ffi::ResultBuffer<ffi::F32> dk, int32_t k, int32_t stride,
                      int32_t dilation, int32_t pad, int32_t relu) {
  auto xd = x.dimensions(), gd = g.dimensions(), kd = dk->dimensions();
  if (xd.size() != 4 || gd.size() != 4 || kd.size() != 3 || xd[0] != gd[0] || xd[3] != gd[3] ||
      kd[0] != k || kd[1] != k || kd[2] != xd[3])
    return ffi::Error::InvalidArgument("depthwise kernel gradient: inconsistent shapes");
  const Geometry q{xd[0], xd[1], xd[2], xd[3], gd[1], gd[2], k, stride, dilation, pad};
  if (const char* bad = Check(q)) return ffi::Error::InvalidArgument(bad);
  const int64_t blocks = Blocks(q.n), cp = q.cp();
  const int64_t taps = int64_t(k) * k * cp;
  float* partial = ZeroedScratch(2, blocks * taps);   // the calling thread's: it waits below
  const float* xp = x.typed_data();
  const float* gp = g.typed_data();
  ForBlocks(pool, q.n, blocks, [&](int64_t b, int64_t n0, int64_t n1) {
    GradBlock(q, xp, gp, n0, n1, partial + b * taps, relu != 0);
  });
  float* out = dk->typed_data();
  for (int64_t t = 0; t < int64_t(k) * k; ++t)
    for (int64_t c = 0; c < q.c; ++c) {
      double sum = 0;
      for (int64_t b = 0; b < blocks; ++b) sum += partial[b * taps + t * cp + c];
      out[t * q.c + c] = static_cast<float>(sum);
    }
  return ffi::Error::Success();
}

// ------------------------------------------------------------------ forward

// One output row h of one image, channels [cb, cb + 16 * NV); kp is the kernel (K, K, Cp).
template <int K, int NV>
void ConvRow(const Geometry& q, const float* xs, const float* kp, float* row, int64_t h,
             int64_t cb) {
  const int64_t cp = q.cp(), wp = q.wp();
  constexpr int kWidth = 4;   // output pixels that share each kernel vector load
  int64_t w = 0;
  for (; w + kWidth <= q.wo; w += kWidth) {
    Vec a[kWidth][NV] = {};
    for (int i = 0; i < K; ++i) {
      const float* xr = xs + (h * q.s + i * q.d) * wp * cp + cb;
      for (int j = 0; j < K; ++j) {
        Vec kv[NV];
        for (int v = 0; v < NV; ++v) kv[v] = Load(kp + (i * K + j) * cp + cb + kLanes * v);
        for (int u = 0; u < kWidth; ++u) {
          const float* xv = xr + ((w + u) * q.s + j * q.d) * cp;
          for (int v = 0; v < NV; ++v) a[u][v] += Load(xv + kLanes * v) * kv[v];
        }
      }
    }
    for (int u = 0; u < kWidth; ++u)
      for (int v = 0; v < NV; ++v) Store(row + (w + u) * cp + cb + kLanes * v, a[u][v]);
  }
  for (; w < q.wo; ++w) {
    Vec a[NV] = {};
    for (int i = 0; i < K; ++i) {
      const float* xr = xs + (h * q.s + i * q.d) * wp * cp + cb;
      for (int j = 0; j < K; ++j) {
        const float* xv = xr + (w * q.s + j * q.d) * cp;
        for (int v = 0; v < NV; ++v)
          a[v] += Load(xv + kLanes * v) * Load(kp + (i * K + j) * cp + cb + kLanes * v);
      }
    }
    for (int v = 0; v < NV; ++v) Store(row + w * cp + cb + kLanes * v, a[v]);
  }
}

template <int K>
void ConvRowAllChannels(const Geometry& q, const float* xs, const float* kp, float* row,
                        int64_t h) {
  const int64_t cp = q.cp();
  for (int64_t cb = 0; cb < cp; cb += 2 * kLanes) {
    if (cp - cb >= 2 * kLanes) ConvRow<K, 2>(q, xs, kp, row, h, cb);
    else ConvRow<K, 1>(q, xs, kp, row, h, cb);
  }
}

void ConvRowAnyK(const Geometry& q, const float* xs, const float* kp, float* row, int64_t h) {
  const int64_t cp = q.cp(), wp = q.wp();
  std::fill(row, row + q.wo * cp, 0.f);
  for (int i = 0; i < q.k; ++i)
    for (int j = 0; j < q.k; ++j)
      for (int64_t w = 0; w < q.wo; ++w) {
        const float* xv = xs + ((h * q.s + i * q.d) * wp + w * q.s + j * q.d) * cp;
        const float* kv = kp + (i * q.k + j) * cp;
        for (int64_t c = 0; c < cp; ++c) row[w * cp + c] += xv[c] * kv[c];
      }
}

// Images [n0, n1) of y; with `mask` (like y), y is zero where mask <= 0 (or NaN).
void ConvBlock(const Geometry& q, const float* x, const float* kp, int64_t n0, int64_t n1,
               float* y, bool relu, const float* mask) {
  const int64_t cp = q.cp();
  float* xs = ZeroedScratch(0, q.hp() * q.wp() * cp);
  float* row = Scratch(1, q.wo * cp);
  for (int64_t n = n0; n < n1; ++n) {
    PadImage(q, x, n, xs, relu);
    for (int64_t h = 0; h < q.ho; ++h) {
      switch (q.k) {
        case 1: ConvRowAllChannels<1>(q, xs, kp, row, h); break;
        case 3: ConvRowAllChannels<3>(q, xs, kp, row, h); break;
        case 5: ConvRowAllChannels<5>(q, xs, kp, row, h); break;
        case 7: ConvRowAllChannels<7>(q, xs, kp, row, h); break;
        default: ConvRowAnyK(q, xs, kp, row, h); break;
      }
      const int64_t at = (n * q.ho + h) * q.wo * q.c;
      float* out = y + at;
      if (mask == nullptr) {
        for (int64_t w = 0; w < q.wo; ++w)
          std::memcpy(out + w * q.c, row + w * cp, q.c * sizeof(float));
      } else {
        const float* m = mask + at;
        for (int64_t w = 0; w < q.wo; ++w)
          for (int64_t c = 0; c < q.c; ++c)
            out[w * q.c + c] = m[w * q.c + c] > 0.f ? row[w * cp + c] : 0.f;
      }
    }
  }
}

ffi::Error ConvImpl(ffi::ThreadPool& pool, ffi::Buffer<ffi::F32>& x,
                    ffi::Buffer<ffi::F32>& kernel, const float* mask,
                    ffi::ResultBuffer<ffi::F32>& y, int32_t stride, int32_t dilation, int32_t pad,
                    int32_t flip, int32_t relu) {
  auto xd = x.dimensions(), kd = kernel.dimensions(), yd = y->dimensions();
  if (xd.size() != 4 || kd.size() != 3 || yd.size() != 4 || kd[0] != kd[1] || kd[2] != xd[3] ||
      yd[0] != xd[0] || yd[3] != xd[3])
    return ffi::Error::InvalidArgument("depthwise conv: inconsistent shapes");
  const int k = static_cast<int>(kd[0]);
  const Geometry q{xd[0], xd[1], xd[2], xd[3], yd[1], yd[2], k, stride, dilation, pad};
  if (const char* bad = Check(q)) return ffi::Error::InvalidArgument(bad);
  const int64_t cp = q.cp();
  float* kp = ZeroedScratch(2, int64_t(k) * k * cp);   // the calling thread's: it waits below
  const int64_t taps = int64_t(k) * k;
  for (int64_t t = 0; t < taps; ++t)   // flipped: tap (i, j) is (k-1-i, k-1-j), flat taps-1-t
    std::memcpy(kp + t * cp, kernel.typed_data() + (flip ? taps - 1 - t : t) * q.c,
                q.c * sizeof(float));
  const float* xp = x.typed_data();
  float* yp = y->typed_data();
  ForBlocks(pool, q.n, Blocks(q.n), [&](int64_t, int64_t n0, int64_t n1) {
    ConvBlock(q, xp, kp, n0, n1, yp, relu != 0, mask);
  });
  return ffi::Error::Success();
}

ffi::Error Conv(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                ffi::ResultBuffer<ffi::F32> y, int32_t stride, int32_t dilation, int32_t pad,
                int32_t flip, int32_t relu) {
  return ConvImpl(pool, x, kernel, nullptr, y, stride, dilation, pad, flip, relu);
}

ffi::Error ConvMasked(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                      ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> mask,
                      ffi::ResultBuffer<ffi::F32> y, int32_t stride, int32_t dilation,
                      int32_t pad, int32_t flip) {
  if (mask.element_count() != y->element_count())
    return ffi::Error::InvalidArgument("masked depthwise conv: the mask must be like the output");
  return ConvImpl(pool, x, kernel, mask.typed_data(), y, stride, dilation, pad, flip, 0);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsDepthwiseKernelGrad, KernelGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("k")
                                  .Attr<int32_t>("stride")
                                  .Attr<int32_t>("dilation")
                                  .Attr<int32_t>("pad")
                                  .Attr<int32_t>("relu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsDepthwiseConv, Conv,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("stride")
                                  .Attr<int32_t>("dilation")
                                  .Attr<int32_t>("pad")
                                  .Attr<int32_t>("flip")
                                  .Attr<int32_t>("relu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsDepthwiseConvMasked, ConvMasked,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("stride")
                                  .Attr<int32_t>("dilation")
                                  .Attr<int32_t>("pad")
                                  .Attr<int32_t>("flip"));
