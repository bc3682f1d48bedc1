// Kernel gradient of a depthwise convolution, an XLA FFI handler for the CPU.
//
//   dw[i, j, c] = sum_{n, h, w} x[n, h*s + i*d - p, w*s + j*d - p, c] * g[n, h, w, c]
//
// x (N, H, W, C) and g (N, Ho, Wo, C) are NHWC float32; dw is (k, k, C); zero padding p,
// stride s, dilation d. XLA:CPU emits this reduction as scalar loops (channels minor are
// not vectorized); here each image is copied into a zero-padded scratch whose channels are
// rounded up to whole SIMD vectors, and the k taps of a kernel row accumulate in registers.
// Images are split into a fixed number of blocks (independent of the thread count, so the
// result is the same on every run); blocks run on XLA's intra-op thread pool and their
// partial sums are added in double precision, in block order.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kLanes = 16;
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

// One image, channels [cb, cb + 16 * NV) of the padded layouts; acc is (k * k, cp).
template <int K, int NV>
void Image(const Geometry& q, const float* xs, const float* gs, float* acc, int64_t cb) {
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
void ImageAllChannels(const Geometry& q, const float* xs, const float* gs, float* acc) {
  const int64_t cp = q.cp();
  for (int64_t cb = 0; cb < cp; cb += 3 * kLanes) {
    switch (std::min<int64_t>(3, (cp - cb) / kLanes)) {
      case 3: Image<K, 3>(q, xs, gs, acc, cb); break;
      case 2: Image<K, 2>(q, xs, gs, acc, cb); break;
      default: Image<K, 1>(q, xs, gs, acc, cb); break;
    }
  }
}

// A runtime-sized kernel for k outside {1, 3, 5, 7}: the same sums, one tap at a time.
void ImageAnyK(const Geometry& q, const float* xs, const float* gs, float* acc) {
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

// Sums images [n0, n1) into acc (k * k, cp), float32.
void Block(const Geometry& q, const float* x, const float* g, int64_t n0, int64_t n1,
           float* acc) {
  const int64_t cp = q.cp(), hp = q.hp(), wp = q.wp();
  std::vector<float> xs(hp * wp * cp, 0.f), gs(q.ho * q.wo * cp, 0.f);
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t r = 0; r < q.h; ++r)
      for (int64_t col = 0; col < q.w; ++col)
        std::memcpy(&xs[((r + q.p) * wp + col + q.p) * cp], x + ((n * q.h + r) * q.w + col) * q.c,
                    q.c * sizeof(float));
    for (int64_t r = 0; r < q.ho * q.wo; ++r)
      std::memcpy(&gs[r * cp], g + (n * q.ho * q.wo + r) * q.c, q.c * sizeof(float));
    switch (q.k) {
      case 1: ImageAllChannels<1>(q, xs.data(), gs.data(), acc); break;
      case 3: ImageAllChannels<3>(q, xs.data(), gs.data(), acc); break;
      case 5: ImageAllChannels<5>(q, xs.data(), gs.data(), acc); break;
      case 7: ImageAllChannels<7>(q, xs.data(), gs.data(), acc); break;
      default: ImageAnyK(q, xs.data(), gs.data(), acc); break;
    }
  }
}

struct Work {
  Geometry q;
  const float* x;
  const float* g;
  int64_t blocks;
  std::vector<std::vector<float>> partial;  // per block: (k * k, cp)
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  // Claims and runs blocks until none is left.
  void Drain() {
    for (int64_t b; (b = next.fetch_add(1)) < blocks;) {
      const int64_t n0 = q.n * b / blocks, n1 = q.n * (b + 1) / blocks;
      Block(q, x, g, n0, n1, partial[b].data());
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

ffi::Error DepthwiseKernelGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                               ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dw,
                               int32_t k, int32_t stride, int32_t dilation, int32_t pad) {
  auto xd = x.dimensions(), gd = g.dimensions(), wd = dw->dimensions();
  if (xd.size() != 4 || gd.size() != 4 || wd.size() != 3 || xd[0] != gd[0] || xd[3] != gd[3] ||
      wd[0] != k || wd[1] != k || wd[2] != xd[3] || k < 1 || stride < 1 || dilation < 1 ||
      pad < 0)
    return ffi::Error::InvalidArgument("depthwise kernel gradient: inconsistent shapes/attributes");
  Geometry q{xd[0], xd[1], xd[2], xd[3], gd[1], gd[2], k, stride, dilation, pad};
  if ((q.ho - 1) * stride + (k - 1) * dilation >= q.hp() ||
      (q.wo - 1) * stride + (k - 1) * dilation >= q.wp())
    return ffi::Error::InvalidArgument("depthwise kernel gradient: output larger than the input");
  auto work = std::make_shared<Work>();
  work->q = q;
  work->x = x.typed_data();
  work->g = g.typed_data();
  work->blocks = std::max<int64_t>(1, std::min<int64_t>(q.n, 16));
  work->partial.assign(work->blocks, std::vector<float>(k * k * q.cp(), 0.f));
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), work->blocks - 1);
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([work] { work->Drain(); });
  work->Drain();
  while (work->done.load(std::memory_order_acquire) < work->blocks) std::this_thread::yield();
  float* out = dw->typed_data();
  const int64_t cp = q.cp();
  for (int64_t t = 0; t < int64_t(k) * k; ++t)
    for (int64_t c = 0; c < q.c; ++c) {
      double s = 0;
      for (const auto& part : work->partial) s += part[t * cp + c];
      out[t * q.c + c] = static_cast<float>(s);
    }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsDepthwiseKernelGrad, DepthwiseKernelGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("k")
                                  .Attr<int32_t>("stride")
                                  .Attr<int32_t>("dilation")
                                  .Attr<int32_t>("pad"));
