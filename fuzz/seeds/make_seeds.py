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

# The collector's file and payload decoders (veille-domain): real-looking files, most
# taken from the repository's own test data and samples so that they stay in step.
repo = os.path.dirname(os.path.dirname(root))
def repo_file(path):
    with open(os.path.join(repo, path), "rb") as f:
        return f.read()

put("meter_json", "veille", json.dumps({"ts": 1714564800000, "power_w": 850.0, "energy_kwh": 12345.6,
                                         "temperature_c": 21.5}))
put("meter_json", "veille-units", json.dumps({"ts": 1714564800000, "power_w": 0.85, "power_unit": "kW",
                                               "energy_kwh": None, "temperature_c": 70.7,
                                               "temperature_unit": "F"}))
put("meter_json", "tasmota-plug", '{"Time":"2024-04-16T09:15:03","ANALOG":{"Temperature":28.6},'
    '"ENERGY":{"TotalStartTime":"2023-11-13T19:36:00","Total":235.645,"Yesterday":0.000,"Today":0.015,'
    '"Period":2,"Power":24,"ApparentPower":24,"ReactivePower":0,"Factor":1,"Voltage":237,"Current":0.099},'
    '"TempUnit":"C"}')
put("meter_json", "tasmota-probe", '{"Time":"2024-10-27T02:30:00","DS18B20":{"Id":"01144B2A","Temperature":71.2},'
    '"ENERGY":{"Total":[1.5,2.25],"Power":[10,20]},"TempUnit":"F"}')
put("meter_json", "tasmota-offset", '{"Time":"2024-05-01T12:00:00+02:00","ENERGY":{"Power":1200,"Total":12.5}}')

for name in ["computers-fr.csv", "computers-en.csv", "computers-fr-glpi10-prefixed.csv"]:
    put("glpi_csv", name, repo_file("domain/tests/data/glpi/" + name))

# load_curve: the first byte chooses the options (fuzz_targets/load_curve.rs): 0 =
# detected everything, 1 = unit W, 0x90 = decimal comma and columns by position 1 and 2.
for name, flags in [("enedis-30min-w.csv", 0), ("loadcurve-horodatage.csv", 1),
                    ("loadcurve-kw-comma-dst.csv", 0), ("loadcurve-excel-fr-thousands.csv", 0x10),
                    ("loadcurve-debut-fin-10min.csv", 0x20), ("loadcurve-value-first.csv", 1),
                    ("loadcurve-tab.csv", 0x81)]:
    put("load_curve", name, bytes([flags]) + repo_file("domain/tests/data/meters/" + name))

eco2mix = ("Périmètre\tNature\tDate\tHeures\tConsommation\tPrévision J-1\tPrévision J\tFioul\tCharbon\t"
           "Gaz\tNucléaire\tEolien\tSolaire\tHydraulique\tPompage\tBioénergies\tEch. physiques\t"
           "Taux de Co2\n")
for i, (h, co2) in enumerate([("00:00", "22"), ("00:15", ""), ("00:30", "23"), ("00:45", "ND"),
                              ("01:00", "25")]):
    eco2mix += f"France\tDonnées temps réel\t2026-01-15\t{h}\t61234\t60800\t61000\t45\t0\t3012\t" \
               f"43210\t5120\t0\t6230\t-120\t980\t-3456\t{co2}\n"
eco2mix += "RTE ne pourra être tenu responsable de l'usage qui pourrait être fait des données\n"
put("carbon_intensity", "eco2mix.xls", eco2mix.encode("latin-1"))
put("carbon_intensity", "odre.csv", "Périmètre;Nature;Date;Heure;Date - Heure;Consommation (MW);"
    "Taux de CO2 (g/kWh)\nFrance;Données temps réel;2026-03-29;01:30;2026-03-29T01:30:00+01:00;"
    "55000;31\nFrance;Données temps réel;2026-03-29;03:00;2026-03-29T03:00:00+02:00;54000;29\n")
put("carbon_intensity", "plain.csv", "timestamp;gCO2eq/kWh\n2026-10-25T02:00:00+02:00;41,5\n"
    "2026-10-25 02:30;40\n2026-10-25T02:00:00+01:00;39\n")

put("ics_calendar", "zone-c.ics",
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//education.gouv.fr//Calendrier scolaire//FR\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:noel-2026-zone-c@education.gouv.fr\r\nDTSTAMP:20260601T120000Z\r\n"
    "DTSTART;VALUE=DATE:20261219\r\nDTEND;VALUE=DATE:20270104\r\n"
    "SUMMARY:Vacances de Noël - Zone C (Créteil\\, Montpellier\\, Paris\r\n \\, Toulouse)\r\n"
    "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:hiver-2027@education.gouv.fr\r\n"
    "DTSTART;TZID=Europe/Paris:20270213T000000\r\nDTEND;TZID=Europe/Paris:20270301T000000\r\n"
    "SUMMARY:Vacances d'Hiver - Zone C\r\nBEGIN:VALARM\r\nTRIGGER:-P1D\r\nACTION:DISPLAY\r\n"
    "END:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
put("ics_calendar", "bridges.ics", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260515\n"
    "DURATION:P1D\nSUMMARY:Pont de l'Ascension\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART:20261224\n"
    "DTEND:20261226\nSUMMARY:Noël\nEND:VEVENT\nEND:VCALENDAR\n")
put("ics_calendar", "recurring.ics", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\n"
    "RRULE:FREQ=YEARLY\nSUMMARY:Jour de l'an\nEND:VEVENT\nEND:VCALENDAR\n")

put("policy_file", "policy.toml", repo_file("deploy/policy.toml"))
put("policy_file", "policy.json", json.dumps({
    "org": "mairie", "mode": "enforce", "idle_threshold_s": 1800, "warning_s": 300,
    "windows": [{"days": ["weekdays"], "start": "19:30", "end": "07:00", "time_zone": "Europe/Paris"}],
    "excluded_chassis": ["server"], "holidays": "fr", "closure_calendars": ["zone-c.ics"],
    "closure_days": [{"date": "2026-05-15", "name": "Pont"}],
    "maintenance": [{"days": ["tue"], "week_of_month": 2, "start": "20:00", "end": "23:00",
                     "time_zone": "Europe/Paris"}]}))

for name, q in [("consumption", "from=2026-10-01&to=2026-10-31&by=site&format=csv&csv_dialect=excel-fr"),
                ("dst", "from=2026-03-29&to=2026-03-29&by=month"),
                ("setpoint", "room=salle-serveur&org=mairie&window_days=14&adjust_outdoor=true&format=table"),
                ("savings", "policy_version=3&enforced_from=2026-09-01&format=json"),
                ("encoded", "from=2026-01-01&to=2026-12-31&org=mairie%20de%20Saint-Aubin&by=device")]:
    put("api_query", name, q)

# glpi_api: a flag byte (bit 0 monitors, 1 status 206, 2 a Content-Range, 3 ask from
# its first, 4-7 page size), the Content-Range line, then the page body.
computers = json.dumps([
    {"id": 34, "name": "glpi", "serial": "VMware-42 01 f4 65", "otherserial": None,
     "locations_id": "Mairie > Accueil", "computermodels_id": "VMware Virtual Platform",
     "manufacturers_id": "VMware, Inc.", "is_deleted": 0, "is_template": 0,
     "states_id": "Production", "uuid": "4201F465-2759-A9FB-11BC-CDB864681F4B",
     "_infocoms": {"id": 5, "buy_date": "2019-03-12", "delivery_date": "2019-03-20",
                   "use_date": "2019-04-01", "decommission_date": None,
                   "warranty_date": "2019-03-20", "warranty_duration": 36}},
    {"id": "35", "name": "mavm1", "serial": "&nbsp;", "otherserial": "INV-35",
     "locations_id": "&nbsp;", "states_id": 0, "is_deleted": "0", "_infocoms": []},
    {"id": 36, "name": "old", "serial": "X1", "is_deleted": 1, "_infocoms": []},
    {"id": 37, "name": "Modèle poste agent", "is_template": 1}], ensure_ascii=False)
monitors = json.dumps([
    {"id": 1, "name": "ecran-accueil", "states_id": "En service", "monitormodels_id": "P2419H",
     "_infocoms": {"buy_date": "20/01/2020", "warranty_date": "2020-01-02 10:00:00",
                   "warranty_duration": "-1"}},
    {"id": 2, "name": "ecran-cave", "states_id": "Hors service > Rebut", "_infocoms": []},
    {"id": 4, "name": "ecran-parti", "_infocoms": {"decommission_date": "2026-12-07 00:00:00"}}],
    ensure_ascii=False)
put("glpi_api", "computers-first-page", bytes([0x3E]) + b"0-3/120\n" + computers.encode())
put("glpi_api", "monitors-last-page", bytes([0x2D]) + b"100-102/103\n" + monitors.encode())
put("glpi_api", "error-body", bytes([0x06]) + b"\n" + '["ERROR_GLPI_LOGIN_USER_TOKEN", "le paramètre user_token semble incorrect"]'.encode())
put("glpi_api", "range-mismatch", bytes([0x0E]) + b"10 - 49 / 120\n[]")

# http_response: whole responses as the collector's HTTP client reads them (the CLI's
# own server, a GLPI server): Content-Length, chunked, read to the end, and a refusal.
put("http_response", "length", b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]")
put("http_response", "chunked", b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;x=y\r\n{\"err\r\n6\r\nor\": 1\r\n1\r\n}\r\n0\r\n\r\n")
put("http_response", "glpi-page", b"HTTP/1.1 206 Partial Content\r\nContent-Type: application/json; charset=UTF-8\r\n"
    b"Content-Range: 0-49/120\r\nAccept-Range: Computer 1000\r\nConnection: close\r\n\r\n[{\"id\": 34}]")
put("http_response", "no-length", b"HTTP/1.0 404 Not Found\r\nServer: nginx\r\n\r\n<html>not here</html>")
