// Scalar reference (de)quantization of the lattice i-quants: iq2_xxs, iq2_xs,
// iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m (layouts in tensor/blocks.h, grids in
// tensor/iq_grids.h).
//
// Dequantization goes through iq_sub_block, one 32-element sub-block at a
// time, which is also what the integer products' reference reads.
//
// The quantizers are simple and slow (an exhaustive search of the grid for
// every 8 or 4 elements): per scale group a scale from the largest
// magnitude, the nearest grid points, the scale refitted by least squares;
// then the super-block scale, the small integer scales as stored, and the
// grid points chosen again for those. With an importance vector every
// distance and fit is weighted (tensor/quant_weights.h), a few scales are
// tried per group and the super-block scale is searched too. Any block they
// write is valid and dequantizes exactly as llama.cpp's would.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <vector>

#include "tensor/half.h"
#include "tensor/iq_grids.h"
#include "tensor/quant.h"
#include "tensor/quant_iq_low.h"
#include "tensor/quant_weights.h"

namespace volga {

namespace {

uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Byte k of a grid entry.
inline int grid_byte(uint64_t entry, int k) { return static_cast<int>((entry >> (8 * k)) & 0xFF); }

// n magnitudes of a grid entry (n = 8 or 4), negated where bit k of signs is set.
void signed_magnitudes(uint64_t entry, unsigned signs, int n, int8_t* q) {
  for (int k = 0; k < n; ++k) {
    const int m = grid_byte(entry, k);
    q[k] = static_cast<int8_t>((signs >> k) & 1 ? -m : m);
  }
}

// The eight integers 8 g + delta of an iq1 grid entry (g in -1, 0, 1).
void iq1_integers(uint64_t entry, int delta, int8_t* q) {
  for (int k = 0; k < 8; ++k) q[k] = static_cast<int8_t>(8 * static_cast<int8_t>(grid_byte(entry, k)) + delta);
}

inline float odd_scale(float d, int ls, float unit) { return iq_odd_scale(d, ls, unit); }

}  // namespace

// ------------------------------------------------------------ sub-block decoders

void iq_sub_block(const BlockIQ2_XXS& b, int j, int8_t* q, float* scale) {
  uint32_t aux[2];
  std::memcpy(aux, b.qs + 4 * j, sizeof aux);
  for (int l = 0; l < 4; ++l)
    signed_magnitudes(kIq2xxsGrid[(aux[0] >> (8 * l)) & 0xFF], kIqSigns[(aux[1] >> (7 * l)) & 127], 8, q + 8 * l);
  scale[0] = odd_scale(fp16_to_fp32(b.d), static_cast<int>(aux[1] >> 28), 0.125f);
}

void iq_sub_block(const BlockIQ2_XS& b, int j, int8_t* q, float* scale) {
  for (int l = 0; l < 4; ++l) {
    const uint16_t v = b.qs[4 * j + l];
    signed_magnitudes(kIq2xsGrid[v & 511], kIqSigns[v >> 9], 8, q + 8 * l);
  }
  const float d = fp16_to_fp32(b.d);
  scale[0] = odd_scale(d, b.scales[j] & 0xF, 0.125f);
  scale[1] = odd_scale(d, b.scales[j] >> 4, 0.125f);
}

void iq_sub_block(const BlockIQ2_S& b, int j, int8_t* q, float* scale) {
  for (int l = 0; l < 4; ++l) {
    const int idx = b.qs[4 * j + l] | ((b.qh[j] << (8 - 2 * l)) & 0x300);
    signed_magnitudes(kIq2sGrid[idx], b.qs[kQKK / 8 + 4 * j + l], 8, q + 8 * l);
  }
  const float d = fp16_to_fp32(b.d);
  scale[0] = odd_scale(d, b.scales[j] & 0xF, 0.125f);
  scale[1] = odd_scale(d, b.scales[j] >> 4, 0.125f);
}

void iq_sub_block(const BlockIQ3_XXS& b, int j, int8_t* q, float* scale) {
  const uint32_t aux = load_u32(b.qs + kQKK / 4 + 4 * j);
  const uint8_t* idx = b.qs + 8 * j;
  for (int l = 0; l < 4; ++l) {
    const unsigned signs = kIqSigns[(aux >> (7 * l)) & 127];
    signed_magnitudes(kIq3xxsGrid[idx[2 * l]], signs, 4, q + 8 * l);
    signed_magnitudes(kIq3xxsGrid[idx[2 * l + 1]], signs >> 4, 4, q + 8 * l + 4);
  }
  scale[0] = odd_scale(fp16_to_fp32(b.d), static_cast<int>(aux >> 28), 0.25f);
}

void iq_sub_block(const BlockIQ3_S& b, int j, int8_t* q, float* scale) {
  const uint8_t* idx = b.qs + 8 * j;
  const int qh = b.qh[j];
  for (int l = 0; l < 4; ++l) {
    const unsigned signs = b.signs[4 * j + l];
    signed_magnitudes(kIq3sGrid[idx[2 * l] | ((qh << (8 - 2 * l)) & 256)], signs, 4, q + 8 * l);
    signed_magnitudes(kIq3sGrid[idx[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)], signs >> 4, 4, q + 8 * l + 4);
  }
  scale[0] = odd_scale(fp16_to_fp32(b.d), (b.scales[j / 2] >> (4 * (j % 2))) & 0xF, 1.0f);
}

void iq_sub_block(const BlockIQ1_S& b, int j, int8_t* q, float* scale) {
  const int qh = b.qh[j];
  const int delta = qh & 0x8000 ? -1 : 1;
  for (int l = 0; l < 4; ++l) iq1_integers(kIq1sGrid[b.qs[4 * j + l] | (((qh >> (3 * l)) & 7) << 8)], delta, q + 8 * l);
  scale[0] = odd_scale(fp16_to_fp32(b.d), (qh >> 12) & 7, 0.125f);
}

const uint64_t* iq1s_grid_biased() {
  static const std::vector<uint64_t> table = [] {
    std::vector<uint64_t> t(std::size(kIq1sGrid));
    for (size_t e = 0; e < t.size(); ++e)
      for (int k = 0; k < 8; ++k) {
        const int n = 8 * static_cast<int8_t>(grid_byte(kIq1sGrid[e], k)) + 129;
        t[e] |= static_cast<uint64_t>(n) << (8 * k);
      }
    return t;
  }();
  return table.data();
}

uint16_t iq1m_d_bits(const BlockIQ1_M& b) {
  uint16_t sc[4];
  std::memcpy(sc, b.scales, sizeof sc);
  return static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
}

void iq_sub_block(const BlockIQ1_M& b, int j, int8_t* q, float* scale) {
  uint16_t sc[4];
  std::memcpy(sc, b.scales, sizeof sc);
  for (int l = 0; l < 4; ++l) {
    const int h = b.qh[2 * j + l / 2] >> (4 * (l % 2));  // this index's nibble
    iq1_integers(kIq1sGrid[b.qs[4 * j + l] | ((h & 7) << 8)], h & 8 ? -1 : 1, q + 8 * l);
  }
  const float d = fp16_to_fp32(iq1m_d_bits(b));
  const int s = sc[j / 2] >> (6 * (j % 2));
  scale[0] = odd_scale(d, s & 7, 0.125f);
  scale[1] = odd_scale(d, (s >> 3) & 7, 0.125f);
}

// --------------------------------------------------------------- dequantizers

namespace {

template <typename Block, int Group>
void dequantize_lattice(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i)
    for (int j = 0; j < kQKK / 32; ++j) {
      int8_t q[32];
      float scale[2];
      iq_sub_block(b[i], j, q, scale);
      float* y = dst + i * kQKK + 32 * j;
      for (int k = 0; k < 32; ++k) y[k] = scale[k / Group] * static_cast<float>(q[k]);
    }
}

}  // namespace

void dequantize_iq2_xxs_ref(const void* src, float* dst, int64_t n) { dequantize_lattice<BlockIQ2_XXS, 32>(src, dst, n); }
void dequantize_iq2_xs_ref(const void* src, float* dst, int64_t n) { dequantize_lattice<BlockIQ2_XS, 16>(src, dst, n); }
void dequantize_iq2_s_ref(const void* src, float* dst, int64_t n) { dequantize_lattice<BlockIQ2_S, 16>(src, dst, n); }
void dequantize_iq3_xxs_ref(const void* src, float* dst, int64_t n) { dequantize_lattice<BlockIQ3_XXS, 32>(src, dst, n); }
void dequantize_iq3_s_ref(const void* src, float* dst, int64_t n) { dequantize_lattice<BlockIQ3_S, 32>(src, dst, n); }
void dequantize_iq1_s_ref(const void* src, float* dst, int64_t n) { dequantize_lattice<BlockIQ1_S, 32>(src, dst, n); }
void dequantize_iq1_m_ref(const void* src, float* dst, int64_t n) { dequantize_lattice<BlockIQ1_M, 16>(src, dst, n); }

// ----------------------------------------------------------------- quantizers

namespace {

// A grid's entries as floats, entry e's `width` values at [width * e]
// (built once; the exhaustive searches read them many times).
template <typename E, size_t N>
std::vector<float> grid_floats(const E (&grid)[N], int width, bool signed_bytes) {
  std::vector<float> out(N * static_cast<size_t>(width));
  for (size_t e = 0; e < N; ++e)
    for (int k = 0; k < width; ++k) {
      const int v = grid_byte(grid[e], k);
      out[e * static_cast<size_t>(width) + static_cast<size_t>(k)] =
          static_cast<float>(signed_bytes ? static_cast<int8_t>(v) : v);
    }
  return out;
}

// A sign-and-magnitude lattice (iq2_*, iq3_*): entries of `width` (8 or 4)
// magnitudes; with `parity`, only 7 sign bits are stored and the number of
// negatives among 8 elements must be even.
struct SignLattice {
  const std::vector<float>* table;
  int width;
  int entries;
  bool parity;
  int qmax;  // the largest magnitude
};

// The entry nearest (least squares, weighted by wk when given) to the
// `width` values a.
int nearest_entry(const float* table, int entries, int width, const float* a, const float* wk) {
  int best = 0;
  float best_err = std::numeric_limits<float>::max();
  for (int e = 0; e < entries; ++e) {
    const float* g = table + e * width;
    float err = 0;
    if (wk)
      for (int k = 0; k < width; ++k) err += wk[k] * (a[k] - g[k]) * (a[k] - g[k]);
    else
      for (int k = 0; k < width; ++k) err += (a[k] - g[k]) * (a[k] - g[k]);
    if (err < best_err) {
      best_err = err;
      best = e;
    }
  }
  return best;
}

// 8 elements' code in a sign lattice: the entry index (two for 4-wide
// grids) and the 8 sign bits.
struct SignCode {
  int idx[2];
  unsigned signs;
};

// Codes x[0..8) at scale s (x ~ s * q), weights w[0..8) or null; q receives the integers.
SignCode code_signed(const SignLattice& L, const float* x, float s, int8_t* q, const float* w) {
  SignCode c{{0, 0}, 0};
  const float is = s > 0 ? 1.0f / s : 0.0f;
  float a[8];
  for (int k = 0; k < 8; ++k) {
    a[k] = std::fabs(x[k]) * is;
    if (x[k] < 0) c.signs |= 1u << k;
  }
  int m[8];
  const float* table = L.table->data();
  for (int h = 0; h < 8 / L.width; ++h) {
    c.idx[h] = nearest_entry(table, L.entries, L.width, a + h * L.width, w ? w + h * L.width : nullptr);
    for (int k = 0; k < L.width; ++k) m[h * L.width + k] = static_cast<int>(table[c.idx[h] * L.width + k]);
  }
  if (L.parity && std::popcount(c.signs) % 2 == 1) {
    // Flip the sign that costs least: the error grows by 4 w |x| m.
    int k_min = 0;
    for (int k = 1; k < 8; ++k)
      if (weight_at(w, k) * a[k] * static_cast<float>(m[k]) < weight_at(w, k_min) * a[k_min] * static_cast<float>(m[k_min]))
        k_min = k;
    c.signs ^= 1u << k_min;
  }
  for (int k = 0; k < 8; ++k) q[k] = static_cast<int8_t>((c.signs >> k) & 1 ? -m[k] : m[k]);
  return c;
}

// Least-squares scale of x ~ s * q (weighted by w when given), or `fallback` when q is all zero.
float refit(const float* x, const int8_t* q, int n, float fallback, const float* w) {
  float sxq = 0, sqq = 0;
  for (int k = 0; k < n; ++k) {
    sxq += weight_at(w, k) * x[k] * q[k];
    sqq += weight_at(w, k) * static_cast<float>(q[k]) * q[k];
  }
  return sqq > 0 ? sxq / sqq : fallback;
}

// sum w (x - s q)^2 over n elements.
float weighted_error(const float* x, const int8_t* q, int n, float s, const float* w) {
  float err = 0;
  for (int k = 0; k < n; ++k) err += weight_at(w, k) * (x[k] - s * q[k]) * (x[k] - s * q[k]);
  return err;
}

// sum w q^2: how much a group's error grows per squared error of its scale.
float refit_weight(const int8_t* q, int n, const float* w) {
  float sum = 0;
  for (int k = 0; k < n; ++k) sum += weight_at(w, k) * static_cast<float>(q[k]) * q[k];
  return sum;
}

float amax_of(const float* x, int n) {
  float m = 0;
  for (int k = 0; k < n; ++k) m = std::max(m, std::fabs(x[k]));
  return m;
}

// The stored scales of a super-block: fp16 d and each group's ls in
// [0, ls_max], from the groups' float scales s[g] = d * (2 ls + 1) * unit.
// With group weights gw (sum w q^2 of each group), d is the candidate around
// the largest scale's of least weighted scale error.
void choose_scales(const float* s, int groups, float unit, int ls_max, uint16_t* d16, int* ls, const float* gw) {
  float smax = 0;
  for (int g = 0; g < groups; ++g) smax = std::max(smax, s[g]);
  auto levels = [&](uint16_t bits, int* out) {
    const float d = fp16_to_fp32(bits);
    float err = 0;
    for (int g = 0; g < groups; ++g) {
      const float m = d > 0 ? s[g] / (d * unit) : 1.0f;
      out[g] = std::clamp(static_cast<int>(std::lrintf((m - 1.0f) * 0.5f)), 0, ls_max);
      const float diff = s[g] - iq_odd_scale(d, out[g], unit);
      err += weight_at(gw, g) * diff * diff;
    }
    return err;
  };
  *d16 = fp32_to_fp16(smax / (unit * static_cast<float>(2 * ls_max + 1)));
  float best = levels(*d16, ls);
  if (!gw) return;
  for (int step = 1; step <= 8; ++step) {
    int cand[kQKK / 16];
    const uint16_t bits = fp32_to_fp16(smax / (unit * (static_cast<float>(2 * ls_max + 1) - 0.25f * static_cast<float>(step))));
    const float err = levels(bits, cand);
    if (err < best) best = err, *d16 = bits, std::copy(cand, cand + groups, ls);
  }
}

// The scale multipliers tried for each group when weights are given (the
// best by weighted error after refitting is kept); without weights only 1.
constexpr float kScaleTries[] = {1.0f, 0.85f, 0.92f, 1.08f, 1.2f};

// A sign lattice's super-block: codes of its 32 eights, fp16 d, and the
// group scales ls (group: 32 or 16 elements); weights w[256] or null.
void quantize_signed_superblock(const SignLattice& L, int group, float unit, const float* x, SignCode* codes,
                                uint16_t* d16, int* ls, const float* w) {
  const int groups = kQKK / group;
  float s[kQKK / 16], gw[kQKK / 16];
  int8_t q[8];
  for (int g = 0; g < groups; ++g) {
    const float* xg = x + g * group;
    const float* wg = w ? w + g * group : nullptr;
    const float s0 = amax_of(xg, group) / static_cast<float>(L.qmax);
    float best = std::numeric_limits<float>::max();
    for (const float f : kScaleTries) {
      int8_t qg[32];
      for (int e = 0; e < group / 8; ++e) code_signed(L, xg + 8 * e, s0 * f, qg + 8 * e, wg ? wg + 8 * e : nullptr);
      const float sg = std::max(0.0f, refit(xg, qg, group, s0 * f, wg));
      const float err = w ? weighted_error(xg, qg, group, sg, wg) : 0.0f;
      if (err < best) best = err, s[g] = sg, gw[g] = w ? refit_weight(qg, group, wg) : 0.0f;
      if (!w) break;
    }
  }
  choose_scales(s, groups, unit, 15, d16, ls, w ? gw : nullptr);
  const float d = fp16_to_fp32(*d16);
  for (int e = 0; e < kQKK / 8; ++e)
    codes[e] = code_signed(L, x + 8 * e, odd_scale(d, ls[8 * e / group], unit), q, w ? w + 8 * e : nullptr);
}

// An iq1 eight: grid index and delta sign (true: -1/8).
struct Iq1Code {
  int idx;
  bool neg;
};

// The entry nearest to t[0..8) (in units of 1/8 of the grid) for the delta
// sign `neg`, weighted by w when given; returns its (weighted) squared error.
float iq1_nearest(const float* t, bool neg, int* idx, const float* w) {
  static const std::vector<float> table = grid_floats(kIq1sGrid, 8, true);
  const float delta = neg ? -1.0f : 1.0f;
  float g[8];  // t in grid units, without the delta
  for (int k = 0; k < 8; ++k) g[k] = (t[k] - delta) * 0.125f;
  *idx = nearest_entry(table.data(), 2048, 8, g, w);
  float err = 0;
  for (int k = 0; k < 8; ++k) {
    const float diff = t[k] - (8.0f * table[static_cast<size_t>(*idx * 8 + k)] + delta);
    err += weight_at(w, k) * diff * diff;
  }
  return err;
}

// Codes the n (8 or 32) elements x at scale s with one delta sign for all of
// them (the better of the two); q receives the integers 8 g +- 1.
void iq1_code_run(const float* x, int n, float s, Iq1Code* codes, int8_t* q, const float* w) {
  const float is = s > 0 ? 1.0f / s : 0.0f;
  float err[2] = {0, 0};
  Iq1Code c[2][4];
  for (int neg = 0; neg < 2; ++neg)
    for (int e = 0; e < n / 8; ++e) {
      float t[8];
      for (int k = 0; k < 8; ++k) t[k] = x[8 * e + k] * is;
      c[neg][e].neg = neg != 0;
      err[neg] += iq1_nearest(t, neg != 0, &c[neg][e].idx, w ? w + 8 * e : nullptr);
    }
  const int pick = err[1] < err[0] ? 1 : 0;
  for (int e = 0; e < n / 8; ++e) {
    codes[e] = c[pick][e];
    iq1_integers(kIq1sGrid[codes[e].idx], codes[e].neg ? -1 : 1, q + 8 * e);
  }
}

// An iq1 super-block: codes of its 32 eights, fp16 d, group scales ls in
// [0, 7]; delta signs shared by `delta_run` elements (32 or 8); weights w[256] or null.
void quantize_iq1_superblock(int group, int delta_run, const float* x, Iq1Code* codes, uint16_t* d16, int* ls,
                             const float* w) {
  const int groups = kQKK / group;
  float s[kQKK / 16], gw[kQKK / 16];
  int8_t q[32];
  for (int g = 0; g < groups; ++g) {
    const float* xg = x + g * group;
    const float* wg = w ? w + g * group : nullptr;
    const float s0 = amax_of(xg, group) / 9.0f;
    float best = std::numeric_limits<float>::max();
    for (const float f : kScaleTries) {
      int8_t qg[32];
      Iq1Code tmp[4];
      for (int r = 0; r < group / delta_run; ++r)
        iq1_code_run(xg + r * delta_run, delta_run, s0 * f, tmp, qg + r * delta_run, wg ? wg + r * delta_run : nullptr);
      const float sg = std::max(0.0f, refit(xg, qg, group, s0 * f, wg));
      const float err = w ? weighted_error(xg, qg, group, sg, wg) : 0.0f;
      if (err < best) best = err, s[g] = sg, gw[g] = w ? refit_weight(qg, group, wg) : 0.0f;
      if (!w) break;
    }
  }
  choose_scales(s, groups, 0.125f, 7, d16, ls, w ? gw : nullptr);
  const float d = fp16_to_fp32(*d16);
  for (int r = 0; r < kQKK / delta_run; ++r) {
    const int e0 = r * delta_run / 8;
    iq1_code_run(x + r * delta_run, delta_run, odd_scale(d, ls[r * delta_run / group], 0.125f), codes + e0, q,
                 w ? w + r * delta_run : nullptr);
  }
}
// The weights of super-block i of a row into buf, or null without an importance vector.
const float* superblock_weights(const float* src, const float* imp, int64_t i, float* buf) {
  return imp ? block_weights(src + i * kQKK, imp + i * kQKK, kQKK, 2.0f, buf) : nullptr;
}

template <typename E, size_t N>
SignLattice sign_lattice(const E (&grid)[N], int width, bool parity, int qmax) {
  static const std::vector<float> table = grid_floats(grid, width, false);  // one per grid (template instance)
  return SignLattice{&table, width, static_cast<int>(N), parity, qmax};
}

}  // namespace

void quantize_iq2_xxs_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ2_XXS*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    SignCode c[32];
    float wbuf[kQKK];
    int ls[8];
    quantize_signed_superblock(sign_lattice(kIq2xxsGrid, 8, true, 43), 32, 0.125f, src + i * kQKK, c, &b[i].d, ls,
                               superblock_weights(src, imp, i, wbuf));
    for (int j = 0; j < 8; ++j) {
      uint32_t aux[2] = {0, static_cast<uint32_t>(ls[j]) << 28};
      for (int l = 0; l < 4; ++l) {
        aux[0] |= static_cast<uint32_t>(c[4 * j + l].idx[0]) << (8 * l);
        aux[1] |= (c[4 * j + l].signs & 127u) << (7 * l);
      }
      std::memcpy(b[i].qs + 4 * j, aux, sizeof aux);
    }
  }
}

void quantize_iq2_xs_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ2_XS*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    SignCode c[32];
    float wbuf[kQKK];
    int ls[16];
    quantize_signed_superblock(sign_lattice(kIq2xsGrid, 8, true, 43), 16, 0.125f, src + i * kQKK, c, &b[i].d, ls,
                               superblock_weights(src, imp, i, wbuf));
    for (int e = 0; e < 32; ++e) b[i].qs[e] = static_cast<uint16_t>(c[e].idx[0] | ((c[e].signs & 127u) << 9));
    for (int j = 0; j < 8; ++j) b[i].scales[j] = static_cast<uint8_t>(ls[2 * j] | (ls[2 * j + 1] << 4));
  }
}

void quantize_iq2_s_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ2_S*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    SignCode c[32];
    float wbuf[kQKK];
    int ls[16];
    quantize_signed_superblock(sign_lattice(kIq2sGrid, 8, false, 43), 16, 0.125f, src + i * kQKK, c, &b[i].d, ls,
                               superblock_weights(src, imp, i, wbuf));
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int e = 0; e < 32; ++e) {
      b[i].qs[e] = static_cast<uint8_t>(c[e].idx[0] & 0xFF);
      b[i].qs[kQKK / 8 + e] = static_cast<uint8_t>(c[e].signs);
      b[i].qh[e / 4] = static_cast<uint8_t>(b[i].qh[e / 4] | ((c[e].idx[0] >> 8) << (2 * (e % 4))));
    }
    for (int j = 0; j < 8; ++j) b[i].scales[j] = static_cast<uint8_t>(ls[2 * j] | (ls[2 * j + 1] << 4));
  }
}

void quantize_iq3_xxs_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ3_XXS*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    SignCode c[32];
    float wbuf[kQKK];
    int ls[8];
    quantize_signed_superblock(sign_lattice(kIq3xxsGrid, 4, true, 62), 32, 0.25f, src + i * kQKK, c, &b[i].d, ls,
                               superblock_weights(src, imp, i, wbuf));
    for (int j = 0; j < 8; ++j) {
      uint32_t aux = static_cast<uint32_t>(ls[j]) << 28;
      for (int l = 0; l < 4; ++l) {
        const SignCode& e = c[4 * j + l];
        b[i].qs[8 * j + 2 * l] = static_cast<uint8_t>(e.idx[0]);
        b[i].qs[8 * j + 2 * l + 1] = static_cast<uint8_t>(e.idx[1]);
        aux |= (e.signs & 127u) << (7 * l);
      }
      std::memcpy(b[i].qs + kQKK / 4 + 4 * j, &aux, 4);
    }
  }
}

void quantize_iq3_s_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ3_S*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    SignCode c[32];
    float wbuf[kQKK];
    int ls[8];
    quantize_signed_superblock(sign_lattice(kIq3sGrid, 4, false, 15), 32, 1.0f, src + i * kQKK, c, &b[i].d, ls,
                               superblock_weights(src, imp, i, wbuf));
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int e = 0; e < 32; ++e) {
      const int j = e / 4, l = e % 4;
      for (int h = 0; h < 2; ++h) {
        b[i].qs[8 * j + 2 * l + h] = static_cast<uint8_t>(c[e].idx[h] & 0xFF);
        b[i].qh[j] = static_cast<uint8_t>(b[i].qh[j] | ((c[e].idx[h] >> 8) << (2 * l + h)));
      }
      b[i].signs[e] = static_cast<uint8_t>(c[e].signs);
    }
    for (int j = 0; j < 4; ++j) b[i].scales[j] = static_cast<uint8_t>(ls[2 * j] | (ls[2 * j + 1] << 4));
  }
}

void quantize_iq1_s_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ1_S*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    Iq1Code c[32];
    float wbuf[kQKK];
    int ls[8];
    quantize_iq1_superblock(32, 32, src + i * kQKK, c, &b[i].d, ls,
                               superblock_weights(src, imp, i, wbuf));
    for (int j = 0; j < 8; ++j) {
      int qh = (ls[j] << 12) | (c[4 * j].neg ? 0x8000 : 0);
      for (int l = 0; l < 4; ++l) {
        b[i].qs[4 * j + l] = static_cast<uint8_t>(c[4 * j + l].idx & 0xFF);
        qh |= (c[4 * j + l].idx >> 8) << (3 * l);
      }
      b[i].qh[j] = static_cast<uint16_t>(qh);
    }
  }
}

void quantize_iq1_m_ref(const float* src, void* dst, int64_t n, const float* imp) {
  auto* b = static_cast<BlockIQ1_M*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    Iq1Code c[32];
    float wbuf[kQKK];
    int ls[16];
    uint16_t d16;
    quantize_iq1_superblock(16, 8, src + i * kQKK, c, &d16, ls, superblock_weights(src, imp, i, wbuf));
    for (int e = 0; e < 32; ++e) {
      b[i].qs[e] = static_cast<uint8_t>(c[e].idx & 0xFF);
      const int nib = (c[e].idx >> 8) | (c[e].neg ? 8 : 0);
      if (e % 2 == 0) b[i].qh[e / 2] = static_cast<uint8_t>(nib);
      else b[i].qh[e / 2] = static_cast<uint8_t>(b[i].qh[e / 2] | (nib << 4));
    }
    uint16_t sc[4] = {0, 0, 0, 0};
    for (int j = 0; j < 8; ++j) sc[j / 2] = static_cast<uint16_t>(sc[j / 2] | ((ls[2 * j] | (ls[2 * j + 1] << 3)) << (6 * (j % 2))));
    for (int k = 0; k < 4; ++k) sc[k] = static_cast<uint16_t>(sc[k] | (((d16 >> (4 * k)) & 0xF) << 12));
    std::memcpy(b[i].scales, sc, sizeof sc);
  }
}

}  // namespace volga
