"""PMTiles checks with Protomaps' reference library (PyPI `pmtiles`), an
independent reader and writer for onemap's tests.

  pmtiles_ref.py compare A.mbtiles B.pmtiles  -> JSON: tiles of each, equal?
  pmtiles_ref.py convert A.mbtiles C.pmtiles  -> the reference converter
"""
import gzip
import json
import sqlite3
import sys

from pmtiles.convert import mbtiles_to_pmtiles
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import tileid_to_zxy


def mbtiles(path):
    conn = sqlite3.connect(path)
    out = {}
    for z, x, tms_y, data in conn.execute(
        "SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles"
    ):
        out[(z, x, (1 << z) - 1 - tms_y)] = bytes(data)
    return out


def inflate(data):
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def compare(mb_path, pm_path):
    expected = mbtiles(mb_path)
    with open(pm_path, "rb") as f:
        source = MmapSource(f)
        reader = Reader(source)
        header = reader.header()
        metadata = reader.metadata()
        got = {}
        for key, data in all_tiles(source):
            got[tuple(key)] = inflate(data)
    same = sorted(expected) == sorted(got) and all(
        inflate(expected[k]) == got[k] for k in expected
    )
    print(json.dumps({
        "mbtiles_tiles": len(expected),
        "pmtiles_tiles": len(got),
        "identical": same,
        "max_zoom": header["max_zoom"],
        "tile_type": header["tile_type"].value,
        "tile_compression": header["tile_compression"].value,
        "clustered": bool(header["clustered"]),
        "vector_layers": [l["id"] for l in metadata.get("vector_layers", [])],
    }))


if __name__ == "__main__":
    command, a, b = sys.argv[1:4]
    if command == "compare":
        compare(a, b)
    elif command == "convert":
        mbtiles_to_pmtiles(a, b, None)
    else:
        sys.exit(f"unknown command {command}")
