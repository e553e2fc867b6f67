// REST calls straight to an API (the baseline of bench/openapi/openapi.sh):
// N GET requests with C in flight over kept-alive connections (Node's fetch),
// one JSON line like bench_mcp's: requests per second and latency percentiles.
//   node bench/openapi/direct.mjs URL N C [LABEL] ['Header: value']
const [url, n = '2000', c = '1', label = 'direct', header = ''] = process.argv.slice(2);
const headers = { accept: 'application/json' };
if (header) {
  headers[header.slice(0, header.indexOf(':')).trim()] = header.slice(header.indexOf(':') + 1).trim();
}
const total = Number(n);
const conc = Number(c);
const times = [];
let issued = 0;
async function worker() {
  while (issued < total) {
    issued += 1;
    const start = process.hrtime.bigint();
    const res = await fetch(url, { headers });
    await res.arrayBuffer();
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
}
for (let i = 0; i < 100; i += 1) {  // warm-up
  await (await fetch(url, { headers })).arrayBuffer();
}
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: conc }, worker));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
times.sort((a, b) => a - b);
const p = (q) => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]);
console.log(JSON.stringify({ label, requests: total, concurrency: conc, seconds, rps: Math.round(total / seconds), p50_us: p(0.5), p90_us: p(0.9), p99_us: p(0.99) }));
