"""Minimal GGUF reader and dequantizers in NumPy, written from the GGUF
specification and ggml's block layouts, independently of Volga's C++ code.
Used only as a test oracle (run with /usr/bin/python3 and Debian's python3-numpy)."""
import struct

import numpy as np

# ggml type id -> (name, block size, block bytes)
TYPES = {0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20), 6: ("q5_0", 32, 22),
         7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 10: ("q2_k", 256, 84), 11: ("q3_k", 256, 110),
         12: ("q4_k", 256, 144), 13: ("q5_k", 256, 176), 14: ("q6_k", 256, 210),
         20: ("iq4_nl", 32, 18), 23: ("iq4_xs", 256, 136), 30: ("bf16", 1, 2)}

# The 16 levels the 4-bit indices of iq4_nl and iq4_xs select (ggml's kvalues_iq4nl).
IQ4_LEVELS = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.float32)

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
    raise ValueError("unsupported type " + tname)
