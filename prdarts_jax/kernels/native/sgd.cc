// The search's weight update (PyTorch's SGD as `optim.sgd` chains it), XLA FFI handlers for the
// CPU, each called on a group of parameter leaves:
//
//   PrdartsSumSquares: the group's sum of g^2 (float32 result, summed in double)
//   PrdartsSgdUpdate, given n = sqrt(sum over all groups), the global norm:
//     c = n < clip ? g : (g / n) * clip                         (optax.clip_by_global_norm)
//     u = c + weight_decay * p,  m' = u + momentum * m,  p' = p - lr * m'
//
// The update's arguments: lr and n (float32 scalars), then the group's parameter leaves, their
// momenta and their gradients (float32, any shapes, leaf i of each alike); its results: the new
// parameters and momenta (aliased to the inputs by the caller). XLA:CPU compiles the chain as
// two kernels per leaf (a reduction for the norm, the update), hundreds per supernet and per
// cycle; here it is code compiled once. (The caller keeps groups small: XLA's compile time
// grows faster than linearly with a call's number of operands.) The elements are split into a
// fixed number of blocks (a function of the sizes only: the same bits on every run); squares
// are summed in double precision, block by block, added in block order. The elementwise steps
// are the float32 operations above, in that order.
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

struct Leaf {
  const float *p = nullptr, *m = nullptr, *g = nullptr;
  float *p_out = nullptr, *m_out = nullptr;
  int64_t size = 0;
};

// Runs fn(leaf, i0, i1) over the elements of blocks [e0, e1) of the leaves laid end to end.
template <typename F>
void Span(const std::vector<Leaf>& leaves, const std::vector<int64_t>& start, int64_t e0,
          int64_t e1, F fn) {
  auto it = std::upper_bound(start.begin(), start.end(), e0) - 1;
  for (size_t l = it - start.begin(); l < leaves.size() && start[l] < e1; ++l) {
    const int64_t i0 = std::max<int64_t>(e0 - start[l], 0);
    const int64_t i1 = std::min<int64_t>(e1 - start[l], leaves[l].size);
    if (i0 < i1) fn(leaves[l], i0, i1);
  }
}

// Multiply-adds fused where the CPU has them, as XLA:CPU compiles the chain (-std=c++17 alone
// would keep them apart): the same bits as XLA's when the gradient is not clipped.
__attribute__((optimize("fp-contract=fast")))
void Step(const Leaf& leaf, int64_t i0, int64_t i1, bool clip, float norm, float max_norm,
          float lr, float momentum, float weight_decay) {
  for (int64_t i = i0; i < i1; ++i) {
    const float g = clip ? (leaf.g[i] / norm) * max_norm : leaf.g[i];
    const float m = (g + weight_decay * leaf.p[i]) + momentum * leaf.m[i];
    leaf.m_out[i] = m;
    leaf.p_out[i] = leaf.p[i] - lr * m;
  }
}

// The group's leaves from `args` (params, momenta, gradients) and `rets` (params, momenta; none
// for the sum of squares), with the start of each leaf in the group laid end to end.
ffi::Error Collect(const ffi::RemainingArgs& args, const ffi::RemainingRets* rets,
                   std::vector<Leaf>& leaves, std::vector<int64_t>& start) {
  const size_t n = rets ? args.size() / 3 : args.size();
  if ((rets && (args.size() % 3 != 0 || rets->size() != 2 * n)))
    return ffi::Error::InvalidArgument("sgd update: expected n params, n momenta, n gradients");
  leaves.assign(n, Leaf{});
  start.assign(n + 1, 0);
  for (size_t l = 0; l < n; ++l) {
    auto g = args.get<ffi::Buffer<ffi::F32>>(rets ? 2 * n + l : l);
    if (g.has_error()) return ffi::Error::InvalidArgument("sgd update: gradients must be float32");
    const int64_t size = g->element_count();
    leaves[l].g = g->typed_data();
    leaves[l].size = size;
    if (rets) {
      auto p = args.get<ffi::Buffer<ffi::F32>>(l);
      auto m = args.get<ffi::Buffer<ffi::F32>>(n + l);
      auto p_out = rets->get<ffi::Buffer<ffi::F32>>(l);
      auto m_out = rets->get<ffi::Buffer<ffi::F32>>(n + l);
      if (p.has_error() || m.has_error() || p_out.has_error() || m_out.has_error())
        return ffi::Error::InvalidArgument("sgd update: every operand must be float32");
      if (p->element_count() != size || m->element_count() != size ||
          (*p_out)->element_count() != size || (*m_out)->element_count() != size)
        return ffi::Error::InvalidArgument("sgd update: leaf sizes differ");
      leaves[l].p = p->typed_data();
      leaves[l].m = m->typed_data();
      leaves[l].p_out = (*p_out)->typed_data();
      leaves[l].m_out = (*m_out)->typed_data();
    }
    start[l + 1] = start[l] + size;
  }
  return ffi::Error::Success();
}

int64_t Blocks(int64_t total) {
  return std::max<int64_t>(1, std::min(kMaxBlocks, total / kMinBlockElements));
}

ffi::Error SumSquares(ffi::ThreadPool pool, ffi::RemainingArgs args,
                      ffi::ResultBuffer<ffi::F32> out) {
  std::vector<Leaf> leaves;
  std::vector<int64_t> start;
  if (auto err = Collect(args, nullptr, leaves, start); err.failure()) return err;
  const int64_t total = start.back(), blocks = Blocks(total);
  std::vector<double> partial(blocks, 0.0);
  if (total > 0) {
    ForBlocks(pool, total, blocks, [&](int64_t b, int64_t e0, int64_t e1) {
      double acc = 0.0;
      Span(leaves, start, e0, e1, [&](const Leaf& leaf, int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) acc += static_cast<double>(leaf.g[i]) * leaf.g[i];
      });
      partial[b] = acc;
    });
  }
  double sum = 0.0;
  for (double s : partial) sum += s;
  *out->typed_data() = static_cast<float>(sum);
  return ffi::Error::Success();
}

ffi::Error Update(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> lr_in,
                  ffi::Buffer<ffi::F32> norm_in, ffi::RemainingArgs args,
                  ffi::RemainingRets rets, float momentum, float weight_decay, float grad_clip) {
  std::vector<Leaf> leaves;
  std::vector<int64_t> start;
  if (auto err = Collect(args, &rets, leaves, start); err.failure()) return err;
  const int64_t total = start.back();
  if (total == 0) return ffi::Error::Success();
  const float norm = *norm_in.typed_data(), lr = *lr_in.typed_data();
  const bool clip = !(norm < grad_clip);
  ForBlocks(pool, total, Blocks(total), [&](int64_t, int64_t e0, int64_t e1) {
    Span(leaves, start, e0, e1, [&](const Leaf& leaf, int64_t i0, int64_t i1) {
      Step(leaf, i0, i1, clip, norm, grad_clip, lr, momentum, weight_decay);
    });
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsSumSquares, SumSquares,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .RemainingArgs()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(PrdartsSgdUpdate, Update,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<float>("momentum")
                                  .Attr<float>("weight_decay")
                                  .Attr<float>("grad_clip"));
