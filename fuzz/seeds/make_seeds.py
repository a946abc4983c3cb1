#!/usr/bin/env python3
"""Writes the small seed corpora of fuzz/seeds/<target>/ (committed): one valid input
per decoder and a few near misses, hand-encoded so that no build is needed. Run from
the repository root: python3 fuzz/seeds/make_seeds.py (needs python3-cryptography for
the signed policy)."""
import base64, binascii, hashlib, json, os, struct

root = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)

# protobuf wire encoding, just what the seeds need
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def f_varint(num, n): return varint(num << 3) + varint(n)
def f_bytes(num, b):
    b = b.encode() if isinstance(b, str) else b
    return varint(num << 3 | 2) + varint(len(b)) + b
def f_double(num, x): return varint(num << 3 | 1) + struct.pack("<d", x)

T0 = 1_793_491_140_000  # one minute before the fuzz targets' "now" (2026-11-01)
def report(seq, start, events=()):
    r = f_bytes(1, "6f1c2a52-0d4e-4b8e-9a57-3c8e9b1f0a11") + f_varint(2, seq)
    r += f_varint(3, start) + f_varint(4, start + 60_000) + f_varint(5, start // 1000 - 3600)
    r += f_varint(6, 3600) + f_varint(7, 20_000) + f_varint(8, 40_000) + f_varint(9, 0)
    r += f_varint(10, 1)
    for kind in events:
        r += f_bytes(11, f_varint(1, kind) + f_varint(2, start))
    return r + f_double(12, 0.25)
inventory = f_bytes(1, "pc-1") + f_varint(8, 2)
batch = f_bytes(1, "dev-1") + f_bytes(2, report(41, T0, [1, 11])) + f_bytes(3, inventory) + f_bytes(4, "0.1.0")
put("report_batch", "one-report", batch)
put("report_batch", "two-reports", f_bytes(1, "dev-1") + f_bytes(2, report(41, T0 - 60_000)) + f_bytes(2, report(42, T0)))
put("report_batch", "inventory-only", f_bytes(1, "dev-1") + f_bytes(3, inventory))

for name, topic in [("reports", "veille/v1/acme/devices/dev-1/reports"), ("ack", "veille/v1/acme/devices/dev-1/ack"),
                    ("policy", "veille/v1/acme/policy"), ("meters", "veille/v1/acme/meters/clim-a"),
                    ("tasmota", "tele/plug1/SENSOR"), ("wildcard", "veille/v1/+/devices/#/reports")]:
    put("mqtt_topic", name, topic)

window = f_varint(1, 0x7F) + f_bytes(2, "19:00") + f_bytes(3, "07:00") + f_bytes(4, "Europe/Paris")
policy = (f_bytes(1, "acme") + f_varint(3, 2) + f_varint(4, 3) + f_bytes(5, window) + f_varint(6, 900)
          + f_varint(7, 600) + f_varint(8, 2) + f_varint(9, 1800) + f_varint(10, 6) + f_bytes(11, "kiosk"))
put("signed_policy", "policy", policy)
try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    key = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(public).digest()[:8].hex()
    signature = key.sign(b"veille.v1.Policy\n" + policy)
    put("signed_policy", "signed", f_bytes(1, policy) + f_bytes(2, signature) + f_bytes(3, key_id))
    put("signed_policy", "bad-signature", f_bytes(1, policy) + f_bytes(2, bytes(64)) + f_bytes(3, key_id))
except ImportError:
    print("python3-cryptography missing: no signed seed")

def smbios_struct(kind, formatted, strings):
    body = bytes([kind, 4 + len(formatted)]) + b"\x00\x00" + formatted
    s = b"".join(x.encode() + b"\x00" for x in strings) or b"\x00"
    return body + s + b"\x00"
uuid = bytes(range(1, 17))
table = (smbios_struct(0, b"\x01\x02\x00\x00\x03\x00\x00\x00" + bytes(10), ["Vendor", "1.2", "03/14/2019"])
         + smbios_struct(1, b"\x01\x02\x03\x04" + uuid + b"\x06\x00\x00", ["LENOVO", "20L5CTO1WW", "ThinkPad T480", "PF1ABCDE"])
         + smbios_struct(3, b"\x01\x0a\x00\x00\x00", ["LENOVO"]) + smbios_struct(127, b"", []))
put("smbios", "thinkpad", bytes([0, 3, 2, 0]) + struct.pack("<I", len(table)) + table)
put("smbios", "truncated", bytes([0, 3, 2, 0]) + struct.pack("<I", len(table) + 10) + table)

edid = bytearray(128)
edid[0:8] = b"\x00\xff\xff\xff\xff\xff\xff\x00"
edid[8:10] = (((ord("D") - 64) << 10) | ((ord("E") - 64) << 5) | (ord("L") - 64)).to_bytes(2, "big")
edid[10:12] = (0xA0C1).to_bytes(2, "little")
edid[12:16] = (0x12345678).to_bytes(4, "little")
edid[16], edid[17] = 12, 28  # week 12 of 2018
edid[18], edid[19] = 1, 4
edid[21], edid[22] = 53, 30  # cm
edid[72:90] = b"\x00\x00\x00\xfc\x00" + b"DELL U2419H\n "
edid[90:108] = b"\x00\x00\x00\xff\x00" + b"ABC123XYZ\n   "
edid[127] = (-sum(edid[:127])) & 0xFF
put("edid", "dell", bytes(edid))
put("edid", "bad-checksum", bytes(edid[:127]) + bytes([edid[127] ^ 1]))

payload = report(42, T0)
entry = b"VSP1" + struct.pack("<I", len(payload)) + struct.pack("<I", binascii.crc32(payload)) + payload
put("spool_entry", "report", entry)
put("spool_entry", "torn", entry[: len(entry) // 2])

state = {"last_seq": T0 + 1234, "last_acked_seq": T0 + 1200, "last_ack_unix_ms": T0 + 5000,
         "last_boot_id": "6f1c2a52-0d4e-4b8e-9a57-3c8e9b1f0a11", "dropped_unreported": 3,
         "pinned_policy_key": base64.b64encode(bytes(32)).decode()}
put("state_file", "state.json", json.dumps(state, indent=2))
put("state_file", "older.json", json.dumps({"last_seq": 7}))
put("state_file", "max.json", json.dumps({"last_seq": 18446744073709551615}))
