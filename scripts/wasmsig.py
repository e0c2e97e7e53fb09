#!/usr/bin/env python3
"""
An independent, second implementation of the WebAssembly tool-conventions signature format
(Signatures.md, as wasmsign2 serializes it), written from the spec in Python with the
`cryptography` package's Ed25519. It exists to cross-check Wasmvisor's TypeScript
implementation (host/security/signature.ts), which shares no code with it:

  python3 scripts/wasmsig.py vectors > test/security/fixtures/signature-vectors.json
      writes deterministic test vectors (fixed seeds, fixed delimiters; Ed25519 is deterministic)
  python3 scripts/wasmsig.py verify <module.wasm> <public-key-file> [<detached-signature>]
      verifies a module (exit 0: every part signed by that key; 1 otherwise)

wasmsign2 itself (Rust) could not be built on the development machine (no crates.io access), so
these vectors and this verifier stand in for it; see docs/SECURITY.md, "Interoperability".
"""
import hashlib
import hmac
import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives import serialization

PREAMBLE = b"\x00asm\x01\x00\x00\x00"


def leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_leb(data, pos):
    result, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def vec(b):
    return leb(len(b)) + b


def section(sid, payload):
    return bytes([sid]) + vec(payload)


def custom(name, payload):
    return section(0, vec(name.encode()) + payload)


def sections_of(module):
    """[(id, name or None, raw bytes, payload after name)] of the sections after the preamble."""
    assert module[:8] == PREAMBLE
    pos, out = 8, []
    while pos < len(module):
        start = pos
        sid = module[pos]
        size, pos = read_leb(module, pos + 1)
        end = pos + size
        name, payload = None, module[pos:end]
        if sid == 0:
            nlen, p2 = read_leb(module, pos)
            name = module[p2:p2 + nlen].decode()
            payload = module[p2 + nlen:end]
        out.append((sid, name, module[start:end], payload))
        pos = end
    return out


def part_hashes(content_sections):
    """Rolling SHA-256: one hash at each delimiter, and one at the end unless a delimiter ends it."""
    h = hashlib.sha256()
    hashes, last_delim = [], False
    for sid, name, raw, _ in content_sections:
        h.update(raw)
        last_delim = sid == 0 and name == "signature_delimiter"
        if last_delim:
            hashes.append(h.copy().digest())
    if not last_delim:
        hashes.append(h.digest())
    return hashes


def message(hashes):
    return b"wasmsig" + bytes([1, 1, 1]) + b"".join(hashes)


def signature_data(sets):
    """sets: [(hashes, [(key_id bytes, signature bytes)])]"""
    out = bytes([1, 1, 1]) + leb(len(sets))
    for hashes, sigs in sets:
        body = leb(len(hashes)) + b"".join(hashes) + leb(len(sigs))
        for key_id, sig in sigs:
            body += vec(vec(key_id) + bytes([1]) + vec(sig))
        out += vec(body)
    return out


def parse_signature_data(data):
    assert data[0:3] == bytes([1, 1, 1]), "version/content/hash"
    n, pos = read_leb(data, 3)
    sets = []
    for _ in range(n):
        blen, pos = read_leb(data, pos)
        body, pos = data[pos:pos + blen], pos + blen
        hc, p = read_leb(body, 0)
        hashes = [body[p + 32 * i:p + 32 * i + 32] for i in range(hc)]
        p += 32 * hc
        sc, p = read_leb(body, p)
        sigs = []
        for _ in range(sc):
            rlen, p = read_leb(body, p)
            rec, p = body[p:p + rlen], p + rlen
            klen, q = read_leb(rec, 0)
            key_id = rec[q:q + klen]
            q += klen
            alg = rec[q]
            slen, q = read_leb(rec, q + 1)
            sigs.append((key_id, alg, rec[q:q + slen]))
        sets.append((hashes, sigs))
    assert pos == len(data), "trailing bytes"
    return sets


def default_key_id(pk_raw):
    return hmac.new(pk_raw, b"key_id", hashlib.sha256).digest()[:12]


def key_from_seed(seed):
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sk, pk


def sign_embedded(module, signers):
    """signers: [(seed, key_id or None)]; all sign the same hashes. Returns the signed module."""
    content = [s for s in sections_of(module) if not (s[0] == 0 and s[1] == "signature")]
    hashes = part_hashes(content)
    sigs = []
    for seed, key_id in signers:
        sk, _ = key_from_seed(seed)
        sigs.append((key_id or b"", sk.sign(message(hashes))))
    data = signature_data([(hashes, sigs)])
    return PREAMBLE + custom("signature", data) + b"".join(s[2] for s in content), data


def sign_detached(module, seed, key_id):
    hashes = part_hashes([s for s in sections_of(module) if not (s[0] == 0 and s[1] == "signature")])
    sk, _ = key_from_seed(seed)
    return signature_data([(hashes, [(key_id or b"", sk.sign(message(hashes)))])])


def verify(module, pk_raw, detached=None):
    secs = sections_of(module)
    embedded = None
    if secs and secs[0][0] == 0 and secs[0][1] == "signature":
        embedded = secs[0][3]
        secs = secs[1:]
    data = detached if detached is not None else embedded
    if data is None:
        return False
    hashes = part_hashes(secs)
    pk = Ed25519PublicKey.from_public_bytes(pk_raw)
    kid = default_key_id(pk_raw)
    for signed, sigs in parse_signature_data(data):
        for key_id, alg, sig in sigs:
            if alg != 1 or (key_id and key_id != kid):
                continue
            try:
                pk.verify(sig, message(signed))
            except Exception:
                continue
            if signed == hashes:
                return True
    return False


def base_module():
    """A small valid module: (func (export "_start")) plus two custom sections."""
    types = section(1, leb(1) + bytes([0x60, 0, 0]))
    funcs = section(3, leb(1) + leb(0))
    exports = section(7, leb(1) + vec(b"_start") + bytes([0]) + leb(0))
    code = section(10, leb(1) + vec(bytes([0, 0x0B])))
    return PREAMBLE + types + funcs + exports + code


def vectors():
    seed1 = bytes(range(32))
    seed2 = bytes(range(32, 64))
    seed3 = bytes([7] * 32)
    _, pk1 = key_from_seed(seed1)
    _, pk2 = key_from_seed(seed2)
    _, pk3 = key_from_seed(seed3)
    m = base_module()
    # 1. The spec's first example: whole module, one signature, no key id.
    signed1, data1 = sign_embedded(m, [(seed1, None)])
    # 2. The spec's partial-verification layout: three parts, three delimiters, two signers with key ids.
    d = [custom("signature_delimiter", bytes([i] * 16)) for i in (1, 2, 3)]
    split = m + d[0] + custom(".debug_info", b"debug!") + d[1] + custom("name", b"\x00\x01") + d[2]
    signed2, data2 = sign_embedded(split, [(seed1, b"first"), (seed2, b"second")])
    # 3. Detached, with the default (wasmsign2) key id.
    detached3 = sign_detached(m, seed3, default_key_id(pk3))
    # 4. A signature over a prefix (parts 1..2 of 3): partial.
    parts = part_hashes(sections_of(split))
    sk1, _ = key_from_seed(seed1)
    partial_data = signature_data([(parts[:2], [(b"", sk1.sign(message(parts[:2])))])])
    signed4 = PREAMBLE + custom("signature", partial_data) + split[8:]
    h = lambda b: b.hex()
    return {
        "source": "scripts/wasmsig.py (independent Python implementation, cryptography " + __import__("cryptography").__version__ + ")",
        "keys": [
            {"seed": h(seed1), "public": h(b"\x01" + pk1), "secret": h(b"\x81" + seed1 + pk1), "defaultKeyId": h(default_key_id(pk1))},
            {"seed": h(seed2), "public": h(b"\x01" + pk2), "secret": h(b"\x81" + seed2 + pk2), "defaultKeyId": h(default_key_id(pk2))},
            {"seed": h(seed3), "public": h(b"\x01" + pk3), "secret": h(b"\x81" + seed3 + pk3), "defaultKeyId": h(default_key_id(pk3))},
        ],
        "module": h(m),
        "split": h(split),
        "splitPartHashes": [h(x) for x in parts],
        "wholeNoKeyId": {"signer": 0, "signed": h(signed1), "signature": h(data1)},
        "twoSignersWithDelimiters": {"signers": [0, 1], "keyIds": [h(b"first"), h(b"second")], "signed": h(signed2), "signature": h(data2)},
        "detachedDefaultKeyId": {"signer": 2, "signature": h(detached3)},
        "partialPrefix": {"signer": 0, "signed": h(signed4), "partsCovered": 2, "partsTotal": 3},
    }


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "vectors":
        print(json.dumps(vectors(), indent=2))
    elif len(sys.argv) >= 4 and sys.argv[1] == "verify":
        module = open(sys.argv[2], "rb").read()
        pk = open(sys.argv[3], "rb").read()
        assert len(pk) == 33 and pk[0] == 1, "public key: 0x01 || 32 bytes"
        detached = open(sys.argv[4], "rb").read() if len(sys.argv) > 4 else None
        ok = verify(module, pk[1:], detached)
        print("valid" if ok else "invalid")
        sys.exit(0 if ok else 1)
    else:
        print(__doc__)
        sys.exit(2)
