"""Writes a 64 KiB JSON document: varied records, compressible as real APIs are (the gzip
scenarios of bench/compare and bench/scaling.sh). Usage: json64k.py PATH"""
import sys
import json, random
rnd = random.Random(7)
items, out = [], b""
while True:
    items.append({"id": len(items), "name": "item-%d" % len(items), "price": round(rnd.uniform(1, 500), 2),
                  "tags": rnd.sample(["red", "blue", "green", "sale", "new", "eco", "xl", "s"], 3),
                  "stock": rnd.randint(0, 1000), "sku": "%08x" % rnd.getrandbits(32)})
    doc = json.dumps({"items": items}).encode()
    if len(doc) >= 65536:
        break
    out = doc
with open(sys.argv[1], "wb") as f:
    f.write(out + b" " * (65536 - len(out)))
