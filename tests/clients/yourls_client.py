"""Drives snip's YOURLS API with the `yourls` client from PyPI, unchanged.

Usage: yourls_client.py API_URL SIGNATURE READ_ONLY_SIGNATURE
Exits non-zero (with a traceback) when any answer is not what the client expects.
"""

import sys

import yourls

api, signature, read_only = sys.argv[1], sys.argv[2], sys.argv[3]
client = yourls.YOURLSClient(api, signature=signature)

# Create with a keyword and a title, then without either.
first = client.shorten("https://example.com/from-python", keyword="py-first", title="From Python")
assert first.keyword == "py-first", first
assert first.shorturl.endswith("/py-first"), first
assert first.title == "From Python", first
second = client.shorten("https://example.com/second")
assert second.keyword and second.keyword != "py-first", second

# The same URL again: the client raises its "exists" error with the existing link.
try:
    client.shorten("https://example.com/from-python")
    raise AssertionError("a URL shortened twice was accepted")
except yourls.YOURLSURLExistsError as e:
    assert e.url.keyword == "py-first", e.url
    assert e.url.shorturl == first.shorturl, e.url

# A taken keyword.
try:
    client.shorten("https://example.com/other", keyword="py-first")
    raise AssertionError("a taken keyword was accepted")
except yourls.YOURLSKeywordExistsError as e:
    assert e.keyword == "py-first", e

# A URL snip refuses.
try:
    client.shorten("ftp://example.com/file")
    raise AssertionError("an ftp URL was accepted")
except yourls.YOURLSNoURLError:
    pass

# Expand, by keyword and by short URL.
assert client.expand("py-first") == "https://example.com/from-python"
assert client.expand(first.shorturl) == "https://example.com/from-python"
try:
    client.expand("no-such-link")
    raise AssertionError("an unknown keyword expanded")
except yourls.YOURLSHTTPError as e:
    assert "not found" in str(e), e

# Statistics of one link, of the top links, and of the whole account.
stats = client.url_stats("py-first")
assert stats.url == "https://example.com/from-python", stats
assert stats.clicks == 0, stats
links, totals = client.stats("last", limit=2)
assert [l.shorturl for l in links] == [second.shorturl, first.shorturl], links
assert totals.total_links == 2, totals
db = client.db_stats()
assert db.total_links == 2 and db.total_clicks == 0, db

# A wrong key, and a key without the write scope.
try:
    yourls.YOURLSClient(api, signature="snip_" + "x" * 32).db_stats()
    raise AssertionError("a wrong key was accepted")
except yourls.YOURLSHTTPError as e:
    assert "log in" in str(e), e
try:
    yourls.YOURLSClient(api, signature=read_only).shorten("https://example.com/ro")
    raise AssertionError("a read-only key created a link")
except yourls.YOURLSHTTPError as e:
    assert "scope" in str(e), e

print("yourls client: all checks passed")
