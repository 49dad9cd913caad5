"""Minimal GGUF reader and dequantizers in NumPy, written from the GGUF
specification and ggml's block layouts, independently of Volga's C++ code.
Used only as a test oracle (run with /usr/bin/python3 and Debian's python3-numpy)."""
import struct

import numpy as np

# ggml type id -> (name, block size, block bytes)
TYPES = {0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20), 6: ("q5_0", 32, 22),
         7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 10: ("q2_k", 256, 84), 11: ("q3_k", 256, 110),
         12: ("q4_k", 256, 144), 13: ("q5_k", 256, 176), 14: ("q6_k", 256, 210),
         20: ("iq4_nl", 32, 18), 23: ("iq4_xs", 256, 136), 30: ("bf16", 1, 2),
         16: ("iq2_xxs", 256, 66), 17: ("iq2_xs", 256, 74), 22: ("iq2_s", 256, 82), 18: ("iq3_xxs", 256, 98),
         21: ("iq3_s", 256, 110), 19: ("iq1_s", 256, 50), 29: ("iq1_m", 256, 56)}

# The 16 levels the 4-bit indices of iq4_nl and iq4_xs select (ggml's kvalues_iq4nl).
IQ4_LEVELS = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.float32)


def _lattice_grids():
    """ggml's grids of the i-quants, read from the C++ constants file (the
    values are format facts; the decoding below is this file's own)."""
    import os
    import re
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "tensor", "iq_grids.cpp")
    with open(path) as f:
        text = f.read()
    grids = {}
    for ctype, name, body in re.findall(r"const (uint\d+_t) (\w+)\[\d+\] = \{(.*?)\};", text, re.S):
        width = int(ctype[4:-2]) // 8
        vals = np.array([int(v, 16) for v in re.findall(r"0x[0-9a-f]+", body)], dtype="<u%d" % width)
        grids[name] = vals.view(np.uint8).reshape(len(vals), width)  # byte k: element k
    return grids


_GRIDS = None


def _grid(name):
    global _GRIDS
    if _GRIDS is None:
        _GRIDS = _lattice_grids()
    return _GRIDS[name]


def _bits(v, n):
    """Bits 0..n-1 of each integer of v, in a new last axis."""
    return (v[..., None].astype(np.int64) >> np.arange(n)) & 1


def _signs7(s7):
    """8 sign bits from 7 stored ones: the eighth makes the count of negatives even."""
    parity = _bits(s7, 7).sum(axis=-1) & 1
    return s7 | (parity << 7)


def _dequant_lattice(tname, raw):
    """iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m: 256-element super-blocks,
    8 sub-blocks of 32, each 8 elements one grid entry (or two 4-wide ones)."""
    bb = TYPES[[k for k, v in TYPES.items() if v[0] == tname][0]][2]
    b = raw.reshape(-1, bb)
    nb = b.shape[0]
    if tname != "iq1_m":
        d = _f16(b[:, 0:2]).astype(np.float64).reshape(nb, 1, 1, 1)

    def signed(mag, signs8):  # mag [nb, 8, 4, 8], signs8 [nb, 8, 4]
        return mag * (1 - 2 * _bits(signs8, 8))

    if tname == "iq2_xxs":
        q = b[:, 2:66].reshape(nb, 8, 8)
        idx = q[:, :, 0:4].astype(np.int64)
        a1 = q[:, :, 4:8].copy().view("<u4").astype(np.int64)  # [nb, 8, 1]
        s7 = (a1 >> (7 * np.arange(4))) & 127
        mult = (0.5 + (a1 >> 28)) * 0.25
        y = d * mult[..., None] * signed(_grid("kIq2xxsGrid")[idx], _signs7(s7))
    elif tname in ("iq2_xs", "iq2_s"):
        if tname == "iq2_xs":
            v = b[:, 2:66].copy().view("<u2").astype(np.int64).reshape(nb, 8, 4)
            mag = _grid("kIq2xsGrid")[v & 511]
            signs8 = _signs7(v >> 9)
            sc = b[:, 66:74].astype(np.int64)
        else:
            lo = b[:, 2:34].astype(np.int64).reshape(nb, 8, 4)
            qh = b[:, 66:74].astype(np.int64)
            hi = (qh[:, :, None] >> (2 * np.arange(4))) & 3
            mag = _grid("kIq2sGrid")[lo | (hi << 8)]
            signs8 = b[:, 34:66].astype(np.int64).reshape(nb, 8, 4)
            sc = b[:, 74:82].astype(np.int64)
        ls = np.stack([sc & 15, sc & 15, sc >> 4, sc >> 4], axis=-1)  # entries 0, 1: low nibble; 2, 3: high
        y = d * ((0.5 + ls) * 0.25)[..., None] * signed(mag, signs8)
    elif tname in ("iq3_xxs", "iq3_s"):
        idx = b[:, 2:66].astype(np.int64).reshape(nb, 8, 4, 2)
        if tname == "iq3_xxs":
            aux = b[:, 66:98].copy().view("<u4").astype(np.int64).reshape(nb, 8, 1)
            signs8 = _signs7((aux >> (7 * np.arange(4))) & 127)
            mult = np.broadcast_to((0.5 + (aux >> 28)) * 0.5, (nb, 8, 4))
            grid = _grid("kIq3xxsGrid")
        else:
            qh = b[:, 66:74].astype(np.int64)
            idx = idx | (_bits(qh, 8).reshape(nb, 8, 4, 2) << 8)  # index k of a sub-block: bit k of qh
            signs8 = b[:, 74:106].astype(np.int64).reshape(nb, 8, 4)
            sc = b[:, 106:110].astype(np.int64)
            ls = np.stack([sc & 15, sc >> 4], axis=-1).reshape(nb, 8, 1)
            mult = np.broadcast_to(1.0 + 2 * ls, (nb, 8, 4))
            grid = _grid("kIq3sGrid")
        mag = grid[idx].reshape(nb, 8, 4, 8)
        y = d * mult[..., None] * signed(mag, signs8)
    else:  # iq1_s, iq1_m: signed grid values -1, 0, 1 plus a delta of +-1/8
        g1 = _grid("kIq1sGrid").view(np.int8).astype(np.float64)
        if tname == "iq1_s":
            lo = b[:, 2:34].astype(np.int64).reshape(nb, 8, 4)
            qh = b[:, 34:50].copy().view("<u2").astype(np.int64).reshape(nb, 8, 1)
            idx = lo | (((qh >> (3 * np.arange(4))) & 7) << 8)
            delta = np.broadcast_to(np.where(qh & 0x8000, -0.125, 0.125), (nb, 8, 4))
            dl = d * np.broadcast_to(2 * ((qh >> 12) & 7) + 1, (nb, 8, 4))[..., None]
        else:
            lo = b[:, 0:32].astype(np.int64).reshape(nb, 8, 4)
            nib = b[:, 32:48].astype(np.int64).reshape(nb, 8, 2, 1) >> np.array([0, 4])
            nib = (nib & 15).reshape(nb, 8, 4)
            idx = lo | ((nib & 7) << 8)
            delta = np.where(nib & 8, -0.125, 0.125)
            sc = b[:, 48:56].copy().view("<u2").astype(np.int64)  # [nb, 4]
            dbits = (sc[:, 0] >> 12) | ((sc[:, 1] >> 8) & 0xF0) | ((sc[:, 2] >> 4) & 0xF00) | (sc[:, 3] & 0xF000)
            dd = dbits.astype("<u2").view(np.float16).astype(np.float64).reshape(nb, 1, 1)
            word = sc[:, np.arange(8) // 2] >> (6 * (np.arange(8) % 2))  # [nb, 8]
            ls = np.stack([word & 7, word & 7, (word >> 3) & 7, (word >> 3) & 7], axis=-1)
            dl = (dd * (2 * ls + 1))[..., None]
        y = dl * (g1[idx] + delta[..., None])
    return y.reshape(-1).astype(np.float32)


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class GGUF:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic, version = struct.unpack_from("<II", self.buf, 0)
        assert magic == 0x46554747, "not a GGUF file"
        assert version in (2, 3)
        self.pos = 8
        n_tensors, n_kv = self._u("<QQ")
        self.meta = {}
        for _ in range(n_kv):
            key = self._str()
            (vtype,) = self._u("<I")
            self.meta[key] = self._value(vtype)
        align = self.meta.get("general.alignment", 32)
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            (nd,) = self._u("<I")
            dims = list(self._u("<" + "Q" * nd))
            (ttype,) = self._u("<I")
            (off,) = self._u("<Q")
            infos.append((name, dims, ttype, off))
        data_start = (self.pos + align - 1) // align * align
        self.tensors = {}
        for name, dims, ttype, off in infos:
            tname, bs, bb = TYPES[ttype]
            n = int(np.prod(dims))
            nbytes = n // bs * bb
            raw = np.frombuffer(self.buf, dtype=np.uint8, count=nbytes, offset=data_start + off)
            self.tensors[name] = (tname, dims, raw)

    def _u(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _str(self):
        (n,) = self._u("<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8", errors="surrogateescape")
        self.pos += n
        return s

    def _value(self, t):
        if t == 8:
            return self._str()
        if t == 9:
            (et,) = self._u("<I")
            (n,) = self._u("<Q")
            return [self._value(et) for _ in range(n)]
        (v,) = self._u(_SCALAR[t])
        return v

    def array(self, name):
        """The tensor as float64, shape reversed from GGUF order (rows last dim = ne[0])."""
        tname, dims, raw = self.tensors[name]
        flat = dequantize(tname, raw, int(np.prod(dims)))
        return flat.reshape(list(reversed(dims))).astype(np.float64)


def _f16(raw_u8_pairs):
    return raw_u8_pairs.copy().view(np.float16).astype(np.float32)


def _scale_min_k4(scales):
    """scales: [nb, 12] uint8 -> (sc [nb, 8], m [nb, 8]) six-bit values."""
    s = scales.astype(np.int32)
    sc = np.empty((s.shape[0], 8), np.int32)
    m = np.empty((s.shape[0], 8), np.int32)
    sc[:, :4] = s[:, 0:4] & 63
    m[:, :4] = s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)
    m[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, m


def dequantize(tname, raw, n):
    if tname == "f32":
        return raw.view(np.float32)[:n].copy()
    if tname == "f16":
        return raw.view(np.float16).astype(np.float32)
    if tname == "bf16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if tname == "q8_0":
        b = raw.reshape(-1, 34)
        d = _f16(b[:, 0:2]).reshape(-1, 1)
        q = b[:, 2:].view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    if tname == "q4_0":
        b = raw.reshape(-1, 18)
        d = _f16(b[:, 0:2]).reshape(-1, 1)
        qs = b[:, 2:]
        lo = (qs & 0xF).astype(np.float32) - 8
        hi = (qs >> 4).astype(np.float32) - 8
        return (d * np.concatenate([lo, hi], axis=1)).reshape(-1)
    if tname in ("q4_1", "q5_0", "q5_1"):
        bb = {"q4_1": 20, "q5_0": 22, "q5_1": 24}[tname]
        b = raw.reshape(-1, bb)
        d = _f16(b[:, 0:2]).reshape(-1, 1)
        has_min = tname != "q5_0"
        m = _f16(b[:, 2:4]).reshape(-1, 1) if has_min else None
        pos = 4 if has_min else 2
        q = np.empty((b.shape[0], 32), np.int32)
        qs = b[:, -16:].astype(np.int32)
        q[:, :16], q[:, 16:] = qs & 0xF, qs >> 4
        if tname != "q4_1":
            qh = b[:, pos:pos + 4].copy().view("<u4").astype(np.int64)  # [nb, 1]
            bits = (qh >> np.arange(32)[None, :]) & 1  # bit j: element j (0..15 low half, 16..31 high)
            q = q | (bits.astype(np.int32) << 4)
        if tname == "q5_0":
            return (d * (q - 16)).reshape(-1)
        return (d * q + m).reshape(-1)
    if tname in ("q4_k", "q5_k"):
        bb = 144 if tname == "q4_k" else 176
        b = raw.reshape(-1, bb)
        d = _f16(b[:, 0:2]).reshape(-1, 1)
        dmin = _f16(b[:, 2:4]).reshape(-1, 1)
        sc, m = _scale_min_k4(b[:, 4:16])
        if tname == "q4_k":
            qs = b[:, 16:144]
            qh = None
        else:
            qh = b[:, 16:48]
            qs = b[:, 48:176]
        out = np.empty((b.shape[0], 256), np.float32)
        for j in range(4):  # 64 values per step: low nibbles then high nibbles of 32 bytes
            q = qs[:, 32 * j:32 * j + 32].astype(np.int32)
            lo, hi = q & 0xF, q >> 4
            if qh is not None:
                lo = lo + ((qh.astype(np.int32) >> (2 * j)) & 1) * 16
                hi = hi + ((qh.astype(np.int32) >> (2 * j + 1)) & 1) * 16
            s1, s2 = sc[:, 2 * j:2 * j + 1], sc[:, 2 * j + 1:2 * j + 2]
            m1, m2 = m[:, 2 * j:2 * j + 1], m[:, 2 * j + 1:2 * j + 2]
            out[:, 64 * j:64 * j + 32] = d * s1 * lo - dmin * m1
            out[:, 64 * j + 32:64 * j + 64] = d * s2 * hi - dmin * m2
        return out.reshape(-1)
    if tname == "q6_k":
        b = raw.reshape(-1, 210)
        ql = b[:, 0:128].astype(np.int32)
        qh = b[:, 128:192].astype(np.int32)
        sc = b[:, 192:208].view(np.int8).astype(np.float32)
        d = _f16(b[:, 208:210]).reshape(-1, 1)
        out = np.empty((b.shape[0], 256), np.float32)
        for half in range(2):  # two groups of 128 values
            L = ql[:, 64 * half:64 * half + 64]
            H = qh[:, 32 * half:32 * half + 32]
            q1 = (L[:, 0:32] & 0xF) | (((H >> 0) & 3) << 4)
            q2 = (L[:, 32:64] & 0xF) | (((H >> 2) & 3) << 4)
            q3 = (L[:, 0:32] >> 4) | (((H >> 4) & 3) << 4)
            q4 = (L[:, 32:64] >> 4) | (((H >> 6) & 3) << 4)
            for k, q in enumerate((q1, q2, q3, q4)):
                # value l (0..31) of quarter k uses scale index 8*half + 2*k + l // 16
                s = np.repeat(sc[:, 8 * half + 2 * k:8 * half + 2 * k + 2], 16, axis=1)
                out[:, 128 * half + 32 * k:128 * half + 32 * k + 32] = d * s * (q - 32)
        return out.reshape(-1)
    if tname in ("q2_k", "q3_k"):
        # 2-bit fields shared by both: byte 32 * h + l of qs (h = 0, 1; l < 32)
        # holds elements 128 h + 32 j + l in its bit pairs j = 0..3.
        if tname == "q2_k":  # scales[16], qs[64], d, dmin
            b = raw.reshape(-1, 84)
            qs = b[:, 16:80]
        else:  # hmask[32], qs[64], scales[12], d
            b = raw.reshape(-1, 110)
            qs = b[:, 32:96]
        nb = b.shape[0]
        low = np.empty((nb, 256), np.int32)
        for h in range(2):
            for j in range(4):
                low[:, 128 * h + 32 * j:128 * h + 32 * j + 32] = (qs[:, 32 * h:32 * h + 32].astype(np.int32) >> (2 * j)) & 3
        if tname == "q2_k":
            d = _f16(b[:, 80:82]).reshape(-1, 1)
            dmin = _f16(b[:, 82:84]).reshape(-1, 1)
            sc = b[:, 0:16].astype(np.int32)
            scale = np.repeat(d * (sc & 0xF).astype(np.float32), 16, axis=1)
            mins = np.repeat(dmin * (sc >> 4).astype(np.float32), 16, axis=1)
            return (scale * low - mins).reshape(-1)
        d = _f16(b[:, 108:110]).reshape(-1, 1)
        # Bit 2 of element e: bit e // 32 of hmask[e % 32]; the integer is (low | bit2 << 2) - 4.
        hm = b[:, 0:32].astype(np.int32)
        e = np.arange(256)
        high = (hm[:, e % 32] >> (e // 32)) & 1
        q = low + 4 * high - 4
        # 16 six-bit scales: the low 4 bits of scale i are nibble i // 8 of
        # scales[i % 8], the high 2 bits are bits 2 (i // 4) .. of scales[8 + i % 4].
        p = b[:, 96:108].astype(np.int32)
        i = np.arange(16)
        sc = ((p[:, i % 8] >> (4 * (i // 8))) & 0xF) | (((p[:, 8 + i % 4] >> (2 * (i // 4))) & 3) << 4)
        scale = np.repeat(d * (sc - 32).astype(np.float32), 16, axis=1)
        return (scale * q).reshape(-1)
    if tname in ("iq4_nl", "iq4_xs"):
        # Groups of 32: 16 bytes of indices, element j in the low nibble of byte j, j + 16 in the high.
        if tname == "iq4_nl":
            b = raw.reshape(-1, 18)
            scale = _f16(b[:, 0:2]).reshape(-1, 1)
            qs = b[:, 2:18]
        else:  # d, scales_h (u16), scales_l[4], qs[128]: 8 groups with 6-bit scales ls, x = d * (ls - 32) * level
            b = raw.reshape(-1, 136)
            d = _f16(b[:, 0:2]).reshape(-1, 1)
            sh = b[:, 2:4].copy().view("<u2").astype(np.int32)  # [nb, 1]
            sl = b[:, 4:8].astype(np.int32)
            j = np.arange(8)[None, :]
            ls = ((sl[:, j[0] // 2] >> (4 * (j % 2))) & 0xF) | (((sh >> (2 * j)) & 3) << 4)
            scale = (d * (ls - 32).astype(np.float32)).reshape(-1, 1)
            qs = b[:, 8:136].reshape(-1, 16)
        lo = IQ4_LEVELS[qs & 0xF]
        hi = IQ4_LEVELS[qs >> 4]
        return (scale * np.concatenate([lo, hi], axis=1)).reshape(-1)
    if tname in ("iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"):
        return _dequant_lattice(tname, raw)
    raise ValueError("unsupported type " + tname)
