"""Writes tests/data/geoip-test.mmdb: a tiny MaxMind-format country database for the tests.

198.51.100.0/25 is DE, 198.51.100.128/25 is FR, 203.0.113.0/24 is JP (documentation
ranges); every other address is absent. Needs `pip install mmdb-writer netaddr`.
"""
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
for network, iso in [("198.51.100.0/25", "DE"), ("198.51.100.128/25", "FR"), ("203.0.113.0/24", "JP")]:
    writer.insert_network(IPSet([network]), {"country": {"iso_code": iso, "names": {"en": iso}}})
writer.to_db_file(str(Path(__file__).with_name("geoip-test.mmdb")))
