// Drives snip's Shlink API with @shlinkio/shlink-js-sdk from the npm registry, unchanged.
//
// Usage: node shlink_client.mjs BASE_URL API_KEY
// Exits non-zero when any answer is not what the SDK or its caller expects.

import assert from 'node:assert/strict';
import { ShlinkApiClient } from '@shlinkio/shlink-js-sdk';
import { FetchHttpClient } from '@shlinkio/shlink-js-sdk/fetch';
import { ErrorType } from '@shlinkio/shlink-js-sdk/api-contract';

const [baseUrl, apiKey] = process.argv.slice(2);
const client = new ShlinkApiClient(new FetchHttpClient(), { baseUrl, apiKey });

async function rejects(promise, type) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.type, type, JSON.stringify(e));
    assert.ok(e.title && e.detail && e.status, JSON.stringify(e));
    return e;
  }
  assert.fail(`expected an error of type ${type}`);
}

const health = await client.health();
assert.equal(health.status, 'pass');

// Create.
const made = await client.createShortUrl({
  longUrl: 'https://example.com/from-js',
  customSlug: 'js-first',
  title: 'From JS',
  tags: ['js', 'sdk'],
  maxVisits: 100,
});
assert.equal(made.shortCode, 'js-first');
assert.equal(made.shortUrl, `${baseUrl}/js-first`);
assert.deepEqual(made.tags, ['js', 'sdk']);
assert.equal(made.meta.maxVisits, 100);
assert.match(made.dateCreated, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
const other = await client.createShortUrl({ longUrl: 'https://example.com/other' });
assert.ok(other.shortCode.length >= 4);

const taken = await rejects(
  client.createShortUrl({ longUrl: 'https://example.com/x', customSlug: 'js-first' }),
  ErrorType.INVALID_SLUG,
);
assert.equal(taken.customSlug, 'js-first');
const bad = await rejects(client.createShortUrl({ longUrl: 'not a url' }), ErrorType.INVALID_ARGUMENT);
assert.deepEqual(bad.invalidElements, ['longUrl']);
const again = await client.createShortUrl({ longUrl: 'https://example.com/from-js', findIfExists: true });
assert.equal(again.shortCode, 'js-first');

// List, search, order and page.
const all = await client.listShortUrls();
assert.equal(all.pagination.totalItems, 2);
assert.deepEqual(all.data.map((s) => s.shortCode), [other.shortCode, 'js-first']);
const found = await client.listShortUrls({ searchTerm: 'from js' });
assert.deepEqual(found.data.map((s) => s.shortCode), ['js-first']);
const tagged = await client.listShortUrls({ tags: ['sdk'] });
assert.deepEqual(tagged.data.map((s) => s.shortCode), ['js-first']);
const paged = await client.listShortUrls({ itemsPerPage: 1, page: 2, orderBy: { field: 'dateCreated', dir: 'ASC' } });
assert.deepEqual(paged.data.map((s) => s.shortCode), [other.shortCode]);
assert.equal(paged.pagination.pagesCount, 2);

// Read and edit: null clears, present fields change.
const read = await client.getShortUrl({ shortCode: 'js-first' });
assert.equal(read.title, 'From JS');
const edited = await client.updateShortUrl({ shortCode: 'js-first' }, {
  longUrl: 'https://example.com/edited', title: null, maxVisits: null, tags: ['edited'],
});
assert.equal(edited.longUrl, 'https://example.com/edited');
assert.equal(edited.title, null);
assert.equal(edited.meta.maxVisits, null);
assert.deepEqual(edited.tags, ['edited']);

// Visits: three clicks through the short URL show up as three visits.
for (let i = 0; i < 3; i++) {
  const res = await fetch(`${baseUrl}/js-first`, { redirect: 'manual', headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0' } });
  assert.equal(res.status, 302);
}
let visits;
for (let i = 0; i < 100; i++) {
  visits = await client.getShortUrlVisits({ shortCode: 'js-first' });
  if (visits.pagination.totalItems === 3) break;
  await new Promise((r) => setTimeout(r, 100));
}
assert.equal(visits.pagination.totalItems, 3, JSON.stringify(visits.pagination));
assert.equal(visits.data.length, 3);
assert.equal(visits.data[0].potentialBot, false);
const summary = (await client.getShortUrl({ shortCode: 'js-first' })).visitsSummary;
assert.deepEqual(summary, { total: 3, nonBots: 3, bots: 0 });

// Tags.
const tags = await client.listTags();
assert.deepEqual(tags.data, ['edited']);

// Delete, then the code is gone.
await client.deleteShortUrl({ shortCode: 'js-first' });
await rejects(client.getShortUrl({ shortCode: 'js-first' }), ErrorType.INVALID_SHORTCODE);

// A wrong key.
const stranger = new ShlinkApiClient(new FetchHttpClient(), { baseUrl, apiKey: 'snip_' + 'x'.repeat(32) });
await rejects(stranger.listShortUrls(), ErrorType.INVALID_API_KEY);

console.log('shlink sdk: all checks passed');
