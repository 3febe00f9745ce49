// The web portal in real Chromium against the running dev stack (portal_browser_test.sh starts it
// and sets the environment). Every check waits for a condition with a deadline, never for time.
//
//   PORTAL_URL      https://localhost:<cloud http port>/
//   DEVSTACK_DIR    the stack's state: demo.token, desk.password, pids/<name>.pid
//   ACCOUNT_USER    the account the agents verify passwords for (id -un)
//   SCREENSHOT_DIR  where the PNGs go
import {createRequire} from 'node:module';
import {createHash, randomBytes} from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
const {chromium} = require('playwright-core');

const PORTAL = process.env.PORTAL_URL;
const DIR = process.env.DEVSTACK_DIR;
const ACCOUNT = process.env.ACCOUNT_USER;
const SHOTS = process.env.SCREENSHOT_DIR;
const TOKEN = fs.readFileSync(path.join(DIR, 'demo.token'), 'utf8').trim();
const PASSWORD = fs.readFileSync(path.join(DIR, 'desk.password'), 'utf8').trim();
const STEP_MS = 20000;   // one UI step (a page load, a form answer)
const RUN_MS = 90000;    // a run through the stack, a machine going offline

let step = 'start';
function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}
function log(message) {
  console.log(`portal_browser_test: ${message}`);
}

// Everything the browser sends and every place the password could leak to, for the final checks.
const sent = [];         // {url, method, headers, body}
const urls = [];         // every URL the page navigated to
const pageErrors = [];   // uncaught exceptions
const cspErrors = [];    // CSP violations (console and securitypolicyviolation events)

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const context = await browser.newContext({ignoreHTTPSErrors: true, viewport: {width: 1280, height: 800}});
// Records CSP violations the page reports (the init script runs outside the page's CSP).
await context.addInitScript(() => {
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolations.push(`${e.violatedDirective}: ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
  });
});
const page = await context.newPage();
page.setDefaultTimeout(STEP_MS);
page.on('request', (request) => {
  sent.push({url: request.url(), method: request.method(), headers: request.headers(), body: request.postData() || ''});
});
page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) urls.push(frame.url()); });
page.on('pageerror', (error) => pageErrors.push(error.message));
page.on('console', (message) => {
  const text = message.text();
  if (/Content Security Policy|Refused to (load|execute|apply|evaluate|connect|frame)/i.test(text)) cspErrors.push(text);
});

// The API straight from the test (same origin, same token), to check what the pages claim.
async function api(service, method, body = {}) {
  const response = await context.request.post(`${PORTAL}api/v1/${service}/${method}`, {
    headers: {Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json'},
    data: JSON.stringify(body),
  });
  const json = await response.json();
  if (response.status() !== 200) throw new Error(`${service}/${method}: HTTP ${response.status()} ${JSON.stringify(json)}`);
  return json;
}

async function shot(name) {
  // Let no focus ring, caret or half-finished transition decide how a screenshot looks.
  await page.evaluate(() => {
    document.activeElement?.blur?.();
    document.getElementById('toasts')?.replaceChildren();
  });
  await page.screenshot({path: path.join(SHOTS, `${name}.png`), animations: 'disabled', caret: 'hide'});
  log(`screenshot ${name}.png`);
}

async function go(hash) {
  // Resolves once the app's hashchange handler has run (it was registered first), so the old page
  // is gone and the new one shows its loading state until its data is in.
  await page.evaluate((h) => new Promise((resolve) => {
    window.addEventListener('hashchange', () => resolve(), {once: true});
    if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));  // render afresh
    else location.hash = h;
  }), hash);
  await page.locator('.view .loading').waitFor({state: 'detached'});
}

async function confirmDialog(label) {
  const dialog = page.locator('dialog.dialog[open]');
  await dialog.waitFor({state: 'visible'});
  await dialog.getByRole('button', {name: label, exact: true}).click();
  await dialog.waitFor({state: 'detached'});
}

async function startRun({flowName, connectionId, inputs = {}, priority = 'RUN_PRIORITY_NORMAL'}) {
  await go('#/runs/new');
  const flowValue = await page.locator('select[name=flow] option', {hasText: `${flowName} (v`}).getAttribute('value');
  await page.locator('select[name=flow]').selectOption(flowValue);
  for (const name of Object.keys(inputs)) await page.locator(`[data-input="${name}"]`).waitFor();
  await page.locator('select[name=connection]').selectOption(connectionId);
  await page.locator('select[name=priority]').selectOption(priority);
  for (const [name, value] of Object.entries(inputs)) await page.locator(`[data-input="${name}"]`).fill(value);
  await page.getByRole('button', {name: 'Start run'}).click();
  await page.waitForURL(/#\/runs\/run-[^/?]+$/);
  const runId = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  await page.locator('.run-state .pill').waitFor();
  return runId;
}

const runState = (state) => page.locator(`.run-state .pill[data-state="${state}"]`);

try {
  // ---- Sign-in: the page and its security headers; a bad token is refused and not kept -------
  step = 'sign-in';
  const response = await page.goto(PORTAL);
  const headers = response.headers();
  const csp = headers['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && /style-src 'self'/.test(csp) && !/unsafe-inline|unsafe-eval/.test(csp),
        `GET / carries a strict Content-Security-Policy (got "${csp}")`);
  check(/frame-ancestors 'none'/.test(csp) && headers['x-frame-options'] === 'DENY', 'GET / forbids framing');
  await page.locator('#token').waitFor();
  await shot('signin');
  await page.locator('#token').fill(`tt_${'A'.repeat(43)}`);
  await page.getByRole('button', {name: 'Sign in'}).click();
  await page.locator('.signin-form .alert', {hasText: 'This token was not accepted'}).waitFor();
  check(await page.evaluate(() => sessionStorage.length) === 0, 'a refused token is not kept in sessionStorage');
  await page.locator('#token').fill(TOKEN);
  await page.getByRole('button', {name: 'Sign in'}).click();
  await page.locator('.sidenav').waitFor();
  await page.locator('.user-name', {hasText: 'demo'}).waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('tether.apiToken')) === TOKEN, 'the token is kept in sessionStorage');
  check(await page.evaluate(() => localStorage.length) === 0, 'nothing is kept in localStorage');
  const apiCall = sent.find((r) => r.url.includes('/api/v1/UserService/WhoAmI') && r.headers.authorization === `Bearer ${TOKEN}`);
  check(apiCall && !apiCall.url.includes(TOKEN), 'the token travels as a bearer header, not in the URL');
  log('signed in');

  // A hash that is not valid percent-encoding is a page that does not exist, not an exception.
  step = 'malformed hash';
  await page.evaluate(() => { location.hash = '#/runs/%E0'; });
  await page.locator('.view .alert[data-code="NOT_FOUND"]', {hasText: 'Page not found'}).waitFor();
  check(pageErrors.length === 0, `#/runs/%E0 shows "not found" without an exception (${pageErrors.join('; ')})`);
  log('#/runs/%E0: not found');

  // ---- Machines: both agents listed, the direct one online; share it with alice -----------------
  step = 'machines';
  await go('#/machines');
  const directRow = page.locator('tr[data-machine-name="desk-direct"]');
  const gatewayRow = page.locator('tr[data-machine-name="desk-gateway"]');
  await directRow.locator('.pill[data-status="online"]').waitFor({timeout: RUN_MS});
  await gatewayRow.waitFor();
  check((await gatewayRow.textContent()).includes('demo-site'), 'desk-gateway shows its gateway cluster demo-site');
  const machines = (await api('MachineService', 'ListMachines')).machines;
  const direct = machines.find((m) => m.name === 'desk-direct');
  const viaGateway = machines.find((m) => m.name === 'desk-gateway');
  check(direct && viaGateway, 'the API lists both agents');
  // desk-direct's recipient key id: the first 16 bytes of SHA-256 of its X25519 public key.
  const keyId = createHash('sha256').update(Buffer.from(direct.x25519Pub, 'base64')).digest().subarray(0, 16);
  // The machine behind the gateway is online too: its member reports the agents on its local relay.
  await gatewayRow.locator('.pill[data-status="online"]').waitFor({timeout: RUN_MS});
  check(await api('MachineService', 'ListMachines').then((r) =>
      r.machines.find((m) => m.name === 'desk-gateway').status === 'MACHINE_STATUS_ONLINE'),
    'the cloud reports desk-gateway online');

  await directRow.getByRole('link', {name: 'desk-direct'}).click();
  await page.locator('h1', {hasText: 'desk-direct'}).waitFor();
  await page.locator('.inline-form input[name=user]').fill('alice');
  await page.locator('.inline-form').getByRole('button', {name: 'Share'}).click();
  await page.locator('.data-table td', {hasText: 'alice'}).waitFor();
  await go('#/machines');
  await directRow.locator('.chip', {hasText: 'alice'}).waitFor();
  await directRow.locator('.pill[data-status="online"]').waitFor();
  await shot('machines');
  log('machines: desk-direct and desk-gateway (via demo-site) online, desk-direct shared with alice');

  // ---- Machine groups and gateway clusters --------------------------------------------------
  step = 'groups and clusters';
  await go('#/groups');
  await page.locator('tr[data-group-name="finance-desks"]').waitFor();
  await shot('groups');
  await go('#/clusters');
  const clusterRow = page.locator('tr[data-cluster-name="demo-site"]');
  await clusterRow.waitFor();
  check(/gateway-1/.test(await clusterRow.textContent()), 'demo-site lists its member gateway-1');
  check((await clusterRow.textContent()).includes('desk-gateway'), 'demo-site lists the machine behind it');
  await shot('clusters');

  // ---- A connection made in the browser: sealed there, refused once, then stored -------------
  step = 'connection';
  await go('#/connections');
  await page.getByRole('link', {name: 'New connection'}).first().click();
  await page.locator('select[name=target]').waitFor();
  const targetValue = await page.locator('select[name=target] option', {hasText: 'desk-direct'}).getAttribute('value');
  check(targetValue === `machine:${direct.machineId}`, 'the target list offers desk-direct by its id');
  async function fillConnection(name) {
    await page.locator('input[name=name]').fill(name);
    await page.locator('select[name=target]').selectOption(targetValue);
    await page.locator('input[name=username]').fill(ACCOUNT);
    await page.locator('input[name=password]').fill(PASSWORD);
  }
  // The name "direct" is taken (devstack made it): the cloud refuses, the page says why, and the
  // password field is empty because the password was sealed (and dropped) before the request.
  await fillConnection('direct');
  await page.locator('.seal-note', {hasText: 'desk-direct'}).waitFor();
  // The form shows the key id it seals to, for the user to compare.
  await page.locator(`.seal-note .key-id[data-key-id="${keyId.toString('hex')}"]`).waitFor();
  await shot('connection-form');
  await page.getByRole('button', {name: 'Seal and save'}).click();
  const refusal = page.locator('form .alert');
  await refusal.waitFor();
  const refusalCode = await refusal.getAttribute('data-code');
  check(refusalCode === 'ALREADY_EXISTS', `a taken name is shown as the cloud's ALREADY_EXISTS (got ${refusalCode}: ${await refusal.textContent()})`);
  check(await page.locator('input[name=password]').inputValue() === '', 'the password input is cleared after sealing');
  await page.locator('.field-error', {hasText: 'type it again'}).waitFor();
  const creates = () => sent.filter((r) => r.url.endsWith('/api/v1/ConnectionService/CreateConnection'));
  check(creates().length === 1, 'the refused attempt sent one CreateConnection');

  // The target's key cannot be fetched when the form is submitted (as if the machine had been
  // deleted meanwhile: GetMachine answers 404): nothing is sent, and the password input is empty
  // all the same.
  const getMachineUrl = `${PORTAL}api/v1/MachineService/GetMachine`;
  await fillConnection('portal-direct');
  await page.locator(`.seal-note .key-id[data-key-id="${keyId.toString('hex')}"]`).waitFor();
  await page.route(getMachineUrl, (route) => route.fulfill({
    status: 404, contentType: 'application/json',
    body: JSON.stringify({error: {code: 'NOT_FOUND', message: 'machine gone (portal_browser_test)'}}),
  }));
  await page.getByRole('button', {name: 'Seal and save'}).click();
  await page.locator('form .alert[data-code="NOT_FOUND"]', {hasText: 'machine gone'}).waitFor();
  await page.unroute(getMachineUrl);
  check(await page.locator('input[name=password]').inputValue() === '', 'the password input is cleared when the key cannot be fetched');
  await page.locator('.field-error', {hasText: 'type it again'}).waitFor();
  check(creates().length === 1, 'nothing was sent when the key could not be fetched');

  await fillConnection('portal-direct');
  await page.getByRole('button', {name: 'Seal and save'}).click();
  await page.waitForURL(/#\/connections$/);
  await page.locator('tr[data-connection-name="portal-direct"]').waitFor();
  check(creates().length === 2, 'the second attempt sent one more CreateConnection');
  const request = JSON.parse(creates()[1].body);
  check(!creates()[1].body.includes(PASSWORD), 'the CreateConnection body holds no plaintext password');
  check(!('password' in request) && !('secret' in request), 'the CreateConnection body has no password field');
  const envelope = request.sealedCredentials;
  check(envelope && envelope.kemId === 32 && envelope.kdfId === 1 && envelope.aeadId === 2,
        `sealedCredentials is an HPKE X25519/HKDF-SHA256/AES-256-GCM envelope (${JSON.stringify(envelope)})`);
  check(Buffer.from(envelope.enc, 'base64').length === 32, 'the envelope has a 32-byte encapsulated key');
  check(Buffer.from(envelope.ciphertext, 'base64').length >= PASSWORD.length + 16, 'the envelope has a ciphertext with its tag');
  check(Buffer.from(envelope.recipientKeyId, 'base64').equals(keyId), "the envelope is sealed to desk-direct's key");
  check(envelope.connectionId === request.connectionId && /^[0-9a-f-]{36}$/.test(request.connectionId),
        'the envelope names the connection id chosen in the browser');
  check(request.username === ACCOUNT && request.target.machineId === direct.machineId, 'the request names the account and the machine');
  const connectionId = request.connectionId;
  const stored = await api('ConnectionService', 'GetConnection', {connectionId});
  check(stored.name === 'portal-direct' && stored.username === ACCOUNT, 'the cloud stored the connection');
  await shot('connections');
  log(`connection portal-direct ${connectionId} sealed in the browser`);

  // ---- A run through it: the agent opened the browser's envelope -----------------------------
  step = 'run';
  const who = `portal-${randomBytes(3).toString('hex')}`;
  const runId = await startRun({flowName: 'demo', connectionId, inputs: {Who: who}});
  await runState('succeeded').waitFor({timeout: RUN_MS});
  const greeting = page.locator('tr[data-output="Greeting"]');
  await greeting.waitFor();
  check((await greeting.textContent()).includes(`hello ${who}`), `the Greeting output is "hello ${who}"`);
  check((await page.locator('tr[data-output="Host"] pre').textContent()).trim().length > 0, 'the Host output is shown');
  check(await page.locator('.step[data-state="ok"]').count() === 3, 'the three actions are shown finished');
  check(await page.locator('.log-line.log-stdout').count() >= 1, "the hostname's stdout line is in the log");
  await page.locator('.timeline .pill[data-state="running"]').waitFor();
  const run = await api('RunService', 'GetRun', {runId});
  check(run.state === 'RUN_STATE_SUCCEEDED' && run.outputs.Greeting === `hello ${who}`, 'the cloud agrees the run succeeded');
  check(run.machineId === direct.machineId, 'the run ran on desk-direct');
  await shot('run-detail');
  log(`run ${runId} succeeded through the browser-sealed connection`);

  // ---- Flows: invalid uploads show the error at its line; a valid one is stored --------------
  step = 'flows';
  await go('#/flows');
  await page.locator('tr[data-flow-name="demo"]').waitFor();
  await shot('flows');
  await page.getByRole('link', {name: 'Upload flow'}).first().click();
  const editor = page.locator('#flow-definition');
  await editor.waitFor();
  async function upload(name, text) {
    await page.locator('input[name=name]').fill(name);
    await editor.fill(text);
    await page.getByRole('button', {name: 'Validate and upload'}).click();
  }
  const unknownAction = [
    '{',
    '  "name": "Broken",',
    '  "actions": [',
    '    {"action": "Folder.Create", "path": "/tmp/portal-test"},',
    '    {"action": "Variables.SetVariable", "variable": "A", "value": "1"},',
    '    {"action": "File.Delete",',                 // line 6: the unknown action starts here
    '     "path": "/tmp/portal-test/x"}',
    '  ]',
    '}',
  ].join('\n');
  await upload('broken', unknownAction);
  const diagnostic = page.locator('.diagnostic');
  await diagnostic.waitFor();
  check(await diagnostic.getAttribute('data-line') === '6', `the unknown action is marked at line 6 (got ${await diagnostic.getAttribute('data-line')})`);
  check((await diagnostic.textContent()).includes('$.actions[2]: unknown action "File.Delete"'), 'the cloud\'s message is shown');
  check(await page.locator('.gutter-line.is-error').getAttribute('data-line') === '6', 'the gutter marks line 6');
  check(await page.locator('.excerpt-line.is-error .excerpt-text').textContent() === '    {"action": "File.Delete",', 'the excerpt shows line 6');
  await shot('flow-error');

  const usedTooEarly = [
    '{"name": "Early",',
    ' "actions": [',
    '   {"action": "Folder.Create",',
    '    "path": "%Dir%"},',                         // line 4: %Dir% is used before it is assigned
    '   {"action": "Variables.SetVariable", "variable": "Dir", "value": "/tmp"}',
    ' ]}',
  ].join('\n');
  await upload('broken', usedTooEarly);
  await page.locator('.diagnostic[data-line="4"]', {hasText: 'used before it is assigned'}).waitFor();
  const syntaxError = '{\n  "name": "Trailing comma",\n  "actions": [],\n}\n';
  await upload('broken', syntaxError);
  await page.locator('.diagnostic[data-line="4"]', {hasText: 'syntax error'}).waitFor();
  check(await page.locator('.gutter-line.is-error').getAttribute('data-line') === '4', 'the gutter marks the syntax error at line 4');
  check(!(await api('FlowService', 'ListFlows')).flows.some((f) => f.name === 'broken'), 'no refused flow was stored');

  // The flow scanner itself, in this browser, on the file the cloud serves (static/js/flowpaths.js).
  const scanner = await page.evaluate(async () => {
    const m = await import('/static/js/flowpaths.js');
    const text = '{\n "actions": [\n  {"odd key": 1,\n   "k\\"q": 2, "é": 3,\n   "d": "a", "d": "b"}\n ]\n}';
    const at = (message) => { const x = m.locateFlowError(text, message); return x ? [x.line, x.column, x.exact] : null; };
    return {
      odd: at('$.actions[0]["odd key"]: unknown key'),
      quoted: at('$.actions[0]["k\\"q"]: unknown key'),
      utf8: at('$.actions[0]["\\303\\251"]: unknown key'),
      repeated: at('$.actions[0].d: the last of a repeated key'),
      prefix: at('$.actions[7].path: no such action'),
      none: at('no position here'),
      field: at('definition_json: $.actions[0].d: as CreateFlow sends it'),
      bytes: m.locateFlowError('{"n": "é",,}', 'line 1, column 12: syntax error').column,
    };
  });
  check(JSON.stringify(scanner) === JSON.stringify({
    odd: [3, 4, true], quoted: [4, 4, true], utf8: [4, 15, true], repeated: [5, 14, true],
    prefix: [2, 2, false], none: null, field: [5, 14, true], bytes: 11,
  }), `the flow scanner finds odd, quoted, UTF-8 and repeated keys, prefixes and byte columns (${JSON.stringify(scanner)})`);

  const slowFlow = JSON.stringify({
    name: 'Wait a minute',
    inputs: [{name: 'Seconds', type: 'number', default: 60, description: 'not used: the wait is fixed'}],
    outputs: [{name: 'Marker'}],
    actions: [
      {action: 'Variables.SetVariable', variable: 'Marker', value: 'started'},
      {action: 'Flow.Wait', duration_ms: 60000, description: 'long enough to cancel'},
    ],
  }, null, 2);
  await upload('wait-a-minute', slowFlow);
  await page.waitForURL(/#\/flows\/[^/]+$/);
  await page.locator('h1', {hasText: 'wait-a-minute'}).waitFor();
  check(await page.locator('.outline-item').count() === 2, 'the stored flow shows its two actions');
  log('flows: errors at lines 6, 4 and 4; wait-a-minute stored');

  // ---- The queue behind a running run: live progress, HIGH ahead of NORMAL, cancels -----------
  step = 'queue';
  // A refused input is shown at its field, with the cloud's message.
  await go('#/runs/new');
  await page.locator('select[name=flow]').selectOption(
    await page.locator('select[name=flow] option', {hasText: 'wait-a-minute (v'}).getAttribute('value'));
  await page.locator('[data-input="Seconds"]').fill('soon');
  await page.locator('select[name=connection]').selectOption(connectionId);
  await page.getByRole('button', {name: 'Start run'}).click();
  await page.locator('form .alert[data-code="INVALID_ARGUMENT"]', {hasText: 'is not a number'}).waitFor();
  await page.locator('.field:has([data-input="Seconds"]) .field-error', {hasText: 'is not a number'}).waitFor();
  check(page.url().endsWith('#/runs/new'), 'a refused run stays on the form');
  const slowRun = await startRun({flowName: 'wait-a-minute', connectionId, inputs: {Seconds: '60'}});
  await runState('running').waitFor({timeout: RUN_MS});
  // Live progress: while the run is still running, action 0 shows finished and action 1 (the
  // minute-long Flow.Wait) running.
  await page.locator('.step[data-index="0"][data-state="ok"]').waitFor();
  await page.locator('.step[data-index="1"][data-state="running"]').waitFor();
  check(await runState('running').count() === 1, 'the action events arrived while the run was live');
  // The machine runs one job at a time: these two wait behind it.
  const normalRun = await startRun({flowName: 'demo', connectionId, inputs: {Who: 'normal'}});
  await runState('queued').waitFor();
  const highRun = await startRun({flowName: 'demo', connectionId, inputs: {Who: 'high'}, priority: 'RUN_PRIORITY_HIGH'});
  await runState('queued').waitFor();
  await go('#/runs');
  await page.locator(`tr[data-run-id="${highRun}"][data-state="RUN_STATE_QUEUED"]`).waitFor();
  await page.locator(`tr[data-run-id="${slowRun}"][data-state="RUN_STATE_RUNNING"]`).waitFor();
  await shot('runs');
  await go('#/runs/queue');
  await page.waitForFunction((ids) => {
    const shown = [...document.querySelectorAll('.queue tr[data-run-id]')].map((r) => r.dataset.runId);
    return ids.every((id) => shown.includes(id));
  }, [slowRun, highRun, normalRun]);
  const queued = await page.locator('.queue tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.dataset.runId));
  check(JSON.stringify(queued) === JSON.stringify([slowRun, highRun, normalRun]),
        `the queue shows the running run, then HIGH, then NORMAL (${queued.join(', ')})`);
  check((await page.locator(`tr[data-run-id="${highRun}"] .queue-pos`).textContent()) === '1', 'the HIGH run is first in line');
  check((await page.locator(`tr[data-run-id="${normalRun}"] .queue-pos`).textContent()) === '2', 'the NORMAL run is second');
  await shot('run-queue');
  await page.locator(`tr[data-run-id="${normalRun}"]`).getByRole('button', {name: 'Cancel'}).click();
  await page.locator(`tr[data-run-id="${normalRun}"]`).waitFor({state: 'detached'});
  check((await api('RunService', 'GetRun', {runId: normalRun})).state === 'RUN_STATE_CANCELLED', 'the queued NORMAL run is cancelled');

  // Cancel the running one from its page; the HIGH run then gets the machine and succeeds.
  await go(`#/runs/${slowRun}`);
  await runState('running').waitFor();
  await page.getByRole('button', {name: 'Cancel run'}).click();
  await confirmDialog('Cancel run');
  await runState('cancelled').waitFor({timeout: RUN_MS});
  check((await api('RunService', 'GetRun', {runId: slowRun})).state === 'RUN_STATE_CANCELLED', 'the cloud recorded the cancel');
  await go(`#/runs/${highRun}`);
  await runState('succeeded').waitFor({timeout: RUN_MS});
  await page.locator('tr[data-output="Greeting"]', {hasText: 'hello high'}).waitFor();
  log(`queue: ${highRun} (HIGH) ahead of ${normalRun} (NORMAL, cancelled while queued); ${slowRun} cancelled while running`);

  // ---- Stop the direct agent: the machines page (refreshing itself) shows it offline ----------
  step = 'agent offline';
  // Leave a run page during its first load (its GetRun held until the test has moved on): it must
  // not start polling later. Its WatchRun requests are counted over the wait for offline below.
  const getRunUrl = `${PORTAL}api/v1/RunService/GetRun`;
  let releaseGetRun;
  const getRunHeld = new Promise((resolve) => { releaseGetRun = resolve; });
  const holdGetRun = async (route) => {
    if ((route.request().postData() || '').includes(runId)) await getRunHeld;
    await route.continue().catch(() => {});  // the page may have abandoned it
  };
  await page.route(getRunUrl, holdGetRun);
  const getRunSent = page.waitForRequest((r) => r.url() === getRunUrl && (r.postData() || '').includes(runId));
  await page.evaluate((hash) => { location.hash = hash; }, `#/runs/${runId}`);
  await getRunSent;
  const leftRunPage = sent.length;
  await go('#/machines');
  releaseGetRun();
  await page.unroute(getRunUrl, holdGetRun);
  await directRow.locator('.pill[data-status="online"]').waitFor();
  const agentPid = Number(fs.readFileSync(path.join(DIR, 'pids', 'agent-direct.pid'), 'utf8'));
  check(agentPid > 1, 'devstack wrote the direct agent\'s pid');
  process.kill(agentPid, 'SIGTERM');
  await directRow.locator('.pill[data-status="offline"]').waitFor({timeout: RUN_MS});
  const lateWatches = sent.slice(leftRunPage).filter((r) => r.url.endsWith('/api/v1/RunService/WatchRun') && r.body.includes(runId));
  check(lateWatches.length === 0, `a run page left during its first load never polls (${lateWatches.length} WatchRun after leaving)`);
  log('desk-direct went offline on the machines page; the run page left while loading sent no WatchRun');

  // ---- Delete the connection ------------------------------------------------------------------
  step = 'delete connection';
  await go('#/connections');
  await page.getByRole('button', {name: 'Delete connection portal-direct'}).click();
  await confirmDialog('Delete');
  await page.locator('tr[data-connection-name="portal-direct"]').waitFor({state: 'detached'});
  check(!(await api('ConnectionService', 'ListConnections')).connections.some((c) => c.connectionId === connectionId),
        'the cloud no longer has the connection');

  // ---- The password went nowhere but into the envelope; the page broke no CSP rule ------------
  step = 'final checks';
  const encodings = [PASSWORD, Buffer.from(PASSWORD).toString('base64'), encodeURIComponent(PASSWORD)];
  for (const r of sent) {
    for (const e of encodings) {
      check(!r.url.includes(e) && !r.body.includes(e) && !Object.values(r.headers).some((v) => v.includes(e)),
            `no request carries the password (${r.method} ${r.url})`);
    }
  }
  check(!urls.some((u) => u.includes(PASSWORD)), 'the password never appears in a URL');
  const storage = await page.evaluate(() => JSON.stringify({...sessionStorage}) + JSON.stringify({...localStorage}));
  check(!storage.includes(PASSWORD), 'the password is not in web storage');
  const violations = await page.evaluate(() => window.__cspViolations);
  check(violations.length === 0 && cspErrors.length === 0, `the pages break no CSP rule (${[...violations, ...cspErrors].join('; ')})`);
  check(pageErrors.length === 0, `no uncaught exception in the pages (${pageErrors.join('; ')})`);
  log(`checked ${sent.length} requests`);

  // Sign-out forgets the token.
  await page.getByRole('button', {name: 'Sign out'}).click();
  await page.locator('#token').waitFor();
  check(await page.evaluate(() => sessionStorage.length) === 0, 'sign-out clears sessionStorage');
  log('PASS');
} catch (e) {
  console.error(`portal_browser_test: FAILED at step "${step}": ${e.stack || e.message}`);
  try {
    await page.screenshot({path: path.join(SHOTS, `failure-${step.replace(/\W+/g, '-')}.png`)});
    console.error(`portal_browser_test: page at failure: ${page.url()}\n${(await page.locator('body').innerText()).slice(0, 3000)}`);
  } catch {
    // The page itself may be gone.
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
