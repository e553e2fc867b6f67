// The MCP Inspector CLI (@modelcontextprotocol/inspector, --cli mode) through
// `pqmcp connect`: it launches the bridge like any stdio server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { INSPECTOR, NODE, PQMCP, connectArgs, startGateway } from './lib.mjs';

const run = promisify(execFile);

async function inspector(gateway, ...method) {
  const { stdout } = await run(NODE, [INSPECTOR, '--cli', PQMCP, ...connectArgs(gateway), ...method], {
    timeout: 60000,
    env: { ...process.env, BROWSER: 'none' },
  });
  return JSON.parse(stdout);
}

test('inspector --cli: tools/list and tools/call through pqmcp connect', async (t) => {
  const gateway = await startGateway(t, ['--demo']);
  const list = await inspector(gateway, '--method', 'tools/list');
  const names = list.tools.map((tool) => tool.name);
  assert.deepEqual(names, ['demo__echo', 'demo__add', 'demo__process_refund',
    'demo__get_patient_record', 'demo__search_records']);

  const echo = await inspector(gateway, '--method', 'tools/call', '--tool-name', 'demo__echo',
    '--tool-arg', 'message=through the inspector');
  assert.equal(echo.content[0].text, 'through the inspector');

  // --tool-arg values are converted with the tool's schema (numbers here).
  const sum = await inspector(gateway, '--method', 'tools/call', '--tool-name', 'demo__add',
    '--tool-arg', 'a=20', 'b=22');
  assert.equal(sum.content[0].text, '42');
});
