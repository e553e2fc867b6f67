// tools/list of a gateway through `pqmcp connect` with the official SDK:
// ROUNDS listings, the time of each and the number of tools (bench/openapi/openapi.sh).
//   node bench/openapi/list.mjs PQMCP URL PIN IDENTITY_DIR [ROUNDS]
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdk = path.join(here, '..', '..', 'tests', 'interop', 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', 'client');
const { Client } = await import(path.join(sdk, 'index.js'));
const { StdioClientTransport } = await import(path.join(sdk, 'stdio.js'));
const [pqmcp, url, pin, identity, rounds = '5'] = process.argv.slice(2);
const client = new Client({ name: 'bench-list', version: '1' });
await client.connect(new StdioClientTransport({ command: pqmcp, args: ['connect', url, '--pin', pin, '--identity', identity] }));
for (let r = 1; r <= Number(rounds); r += 1) {
  const t0 = process.hrtime.bigint();
  const { tools } = await client.listTools();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ part: 'tools/list', round: r, tools: tools.length, ms: Math.round(ms * 10) / 10, bytes: JSON.stringify(tools).length }));
}
await client.close();
