// One measurement of Cloudflare's official TypeScript SDK (npm `cloudflare`,
// installed into build/peers by bench/peers/install.sh), in a process of its
// own so that its peak memory is its own. Prints one line in the format of
// bench/module_bench.lua and bench/floor.c:
//
//   calls=%d wall=%.6f cpu_us=%.3f peak_kib=%d
//
// wall: seconds of the timed loop; cpu_us: user+system CPU per call over the
// timed loop; peak_kib: the process's peak RSS (maxRSS is KiB on Linux).
//
//   node bench/peers/sdk_bench.mjs update|delete|get|create BASE_URL N
//   node bench/peers/sdk_bench.mjs list BASE_URL PAGES ROUNDS
//
// Untimed warm-up first: 200 calls, or 1 round for list (SDK_BENCH_WARMUP
// sets another count, 0 for none). list fetches pages 1..PAGES explicitly,
// per_page 1000 (SDK_BENCH_PER_PAGE sets another, for testing against a
// server with fewer entries), and must walk PAGES * per_page * ROUNDS
// entries. HTTPS: Node's fetch trusts the certificates named by
// NODE_EXTRA_CA_CERTS, which the driver sets to the bench's certificate.
//
// For bench/in_flight_bench.lua (a server that answers a page past the last
// with an empty page), the work a user of the SDK would write, with N
// requests in flight where N is given (the SDK has no concurrency of its
// own: N async workers taking the next request from a shared counter):
//
//   node bench/peers/sdk_bench.mjs autolist BASE_URL PAGES        the SDK's auto-paging, `for await`
//   node bench/peers/sdk_bench.mjs poollist BASE_URL PAGES N      page 1, then pages 2..PAGES, N at a time
//   node bench/peers/sdk_bench.mjs creates BASE_URL COUNT N       COUNT creates (await in a loop at N = 1)
//   node bench/peers/sdk_bench.mjs updates BASE_URL COUNT N       COUNT edits of entries 1..COUNT
//
// Their calls= is the entries listed (autolist, poollist) or the changes
// made. No warm-up unless SDK_BENCH_WARMUP asks for one (that many gets):
// the module and libcurl get none either.
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ACCOUNT = '023e105f4ecef8ad9ca31a8372d0c353';
const ID = 'f174e90a-fafe-4643-bbbc-4a0ed4fc8415';

function fail(err) {
  let text = String(err?.message ?? err);
  // fetch's own reason (refused connection, untrusted certificate...) is
  // the cause of the SDK's "Connection error."
  for (let c = err?.cause; c; c = c.cause) text += `: ${c.message ?? c}${c.code ? ` (${c.code})` : ''}`;
  process.stderr.write(`sdk_bench: ${text}\n`);
  process.exit(1);
}

function count(text, what) {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 0) fail(`${what} must be a whole number, not ${text}`);
  return v;
}

const [mode, baseURL, a3, a4] = process.argv.slice(2);
const MODES = ['update', 'delete', 'get', 'create', 'list'];
const IN_FLIGHT_MODES = ['autolist', 'poollist', 'creates', 'updates'];
if (IN_FLIGHT_MODES.includes(mode)) {
  if (!baseURL || a3 === undefined || (mode !== 'autolist' && a4 === undefined)) {
    fail('usage: node sdk_bench.mjs autolist BASE_URL PAGES\n' +
         '       node sdk_bench.mjs poollist|creates|updates BASE_URL COUNT N');
  }
} else if (!MODES.includes(mode) || !baseURL || a3 === undefined || (mode === 'list' && a4 === undefined)) {
  fail('usage: node sdk_bench.mjs update|delete|get|create BASE_URL N\n' +
       '       node sdk_bench.mjs list BASE_URL PAGES ROUNDS');
}
const inFlightMode = IN_FLIGHT_MODES.includes(mode);
const n = count(a3, mode === 'list' || mode.endsWith('list') ? 'PAGES' : inFlightMode ? 'COUNT' : 'N');
const rounds = mode === 'list' ? count(a4, 'ROUNDS') : 1;
const inFlight = inFlightMode && mode !== 'autolist' ? count(a4, 'N') : 1;
const perPage = count(process.env.SDK_BENCH_PER_PAGE ?? '1000', 'SDK_BENCH_PER_PAGE');
const warmup = count(process.env.SDK_BENCH_WARMUP ?? (mode === 'list' ? '1' : inFlightMode ? '0' : '200'),
                     'SDK_BENCH_WARMUP');
if ((mode === 'list' ? n * rounds : n) === 0) fail('nothing to time');
if (inFlight === 0) fail('N must be 1 or more');

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let Cloudflare;
try {
  ({ default: Cloudflare } = await import(pathToFileURL(join(root, 'build/peers/node_modules/cloudflare/index.mjs'))));
} catch (err) {
  fail(`cannot load the SDK from build/peers (run bash bench/peers/install.sh): ${err.message}`);
}

// apiKey, apiEmail and userServiceKey are null so that CLOUDFLARE_API_KEY and
// the like in the environment add no headers of their own.
const client = new Cloudflare({ apiToken: 'bench-token', apiKey: null, apiEmail: null, userServiceKey: null,
                                baseURL, maxRetries: 0 });
const reg = client.emailSecurity.settings.impersonationRegistry;

const one = {
  update: () => reg.edit(ID, { account_id: ACCOUNT, name: 'John Doe', comments: null }),
  delete: () => reg.delete(ID, { account_id: ACCOUNT }),
  get: () => reg.get(ID, { account_id: ACCOUNT }),
  create: () => reg.create({ account_id: ACCOUNT, name: 'Jane Roe', email: 'jane@example.com', is_email_regex: false }),
}[mode];

// list: `rounds` rounds of pages 1..n, each page fetched on its own (the
// bench server has no page after the last, so no auto-pagination) and each
// of its entries walked. Returns the number of entries walked.
async function listRounds(r) {
  let items = 0;
  for (let round = 0; round < r; round++) {
    for (let page = 1; page <= n; page++) {
      const got = await reg.list({ account_id: ACCOUNT, page, per_page: perPage });
      for (const entry of got.getPaginatedItems()) {
        if (entry) items++;
      }
    }
  }
  return items;
}

// The ids of bench/loopback_server.lua's entries (entry i).
const entryId = (i) => `${i.toString(16).padStart(8, '0')}-fafe-4643-bbbc-4a0ed4fc8415`;

// count tasks (task(i), i = 1..count) with `width` in flight: `width` async
// workers, each taking the next i when its last call has ended, as a user
// without a library for it would write it; width 1 is a plain loop.
async function pool(count, width, task, first = 1) {
  if (width === 1) {
    for (let i = first; i < first + count; i++) await task(i);
    return;
  }
  let next = first;
  const worker = async () => {
    while (next < first + count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
}

// The in-flight modes: the number of entries listed or changes made.
async function inFlightWork() {
  if (mode === 'autolist') {
    let items = 0;
    for await (const entry of reg.list({ account_id: ACCOUNT, per_page: perPage })) {
      if (entry) items++;
    }
    return items;
  }
  if (mode === 'poollist') {
    const first = await reg.list({ account_id: ACCOUNT, page: 1, per_page: perPage });
    let items = 0;
    for (const entry of first.getPaginatedItems()) if (entry) items++;
    const total = first.result_info?.total_count ?? 0;
    const pages = Math.ceil(total / perPage);
    await pool(pages - 1, inFlight, async (page) => {
      const got = await reg.list({ account_id: ACCOUNT, page, per_page: perPage });
      for (const entry of got.getPaginatedItems()) if (entry) items++;
    }, 2);
    return items;
  }
  if (mode === 'creates') {
    await pool(n, inFlight, (i) => reg.create({ account_id: ACCOUNT, name: `New ${i}`,
                                                email: `new${i}@example.com`, is_email_regex: false }));
  } else {
    await pool(n, inFlight, (i) => reg.edit(entryId(i), { account_id: ACCOUNT, name: `Person ${i} renamed` }));
  }
  return n;
}

async function main() {
  if (inFlightMode) {
    if (warmup > 0) {
      await pool(warmup, 1, () => reg.get(ID, { account_id: ACCOUNT }));
    }
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const done = await inFlightWork();
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const expected = mode.endsWith('list') ? n * perPage : n;
    if (done !== expected) throw new Error(`${mode}: ${done} done, expected ${expected}`);
    const cpuUs = (cpu.user + cpu.system) / done;
    process.stdout.write(`calls=${done} wall=${wall.toFixed(6)} cpu_us=${cpuUs.toFixed(3)} ` +
                         `peak_kib=${process.resourceUsage().maxRSS}\n`);
    return;
  }
  if (mode === 'list') {
    if (warmup > 0) await listRounds(warmup);
  } else {
    for (let i = 0; i < warmup; i++) await one();
  }

  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let calls;
  if (mode === 'list') {
    const items = await listRounds(rounds);
    calls = n * rounds;
    if (items !== n * perPage * rounds) {
      throw new Error(`walked ${items} entries, expected ${n * perPage * rounds}`);
    }
  } else {
    for (let i = 0; i < n; i++) await one();
    calls = n;
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuUs = (cpu.user + cpu.system) / calls;
  const peakKib = process.resourceUsage().maxRSS;
  process.stdout.write(`calls=${calls} wall=${wall.toFixed(6)} cpu_us=${cpuUs.toFixed(3)} peak_kib=${peakKib}\n`);
}

main().then(() => process.exit(0), fail);
