// Runs: the list (filtered by state), the queue per target with priorities, and the form that
// starts a run with inputs.
import {call, listAll} from '../api.js';
import {h, replace} from '../dom.js';
import {formatDuration, idCell, priorityBadge, runStateLabel, runStatePill, targetOf, TERMINAL_RUN_STATES, timeCell, toNumber} from '../format.js';
import {defaultText, inputsOf, parseDefinition} from '../flowmodel.js';
import {button, card, emptyState, errorSlot, field, linkButton, loading, pageHeader, select, table, textInput, toast, whileBusy} from '../ui.js';
import {autoRefresh, loadDirectory, targetKindLabel, targetLink} from './common.js';

const REFRESH_MS = 2000;

const FILTERS = [
  {value: '', label: 'All states', states: []},
  {value: 'active', label: 'Active (queued, dispatching, running)', states: ['RUN_STATE_QUEUED', 'RUN_STATE_DISPATCHING', 'RUN_STATE_RUNNING']},
  {value: 'succeeded', label: 'Succeeded', states: ['RUN_STATE_SUCCEEDED']},
  {value: 'failed', label: 'Failed or timed out', states: ['RUN_STATE_FAILED', 'RUN_STATE_TIMED_OUT']},
  {value: 'cancelled', label: 'Cancelled', states: ['RUN_STATE_CANCELLED']},
];

function tabs(active) {
  return h('nav', {class: 'tabs', 'aria-label': 'Run views'},
    h('a', {class: ['tab', active === 'all' ? 'active' : null], href: '#/runs', 'aria-current': active === 'all' ? 'page' : null, text: 'All runs'}),
    h('a', {class: ['tab', active === 'queue' ? 'active' : null], href: '#/runs/queue', 'aria-current': active === 'queue' ? 'page' : null, text: 'Queue'}));
}

function runDuration(run) {
  const started = toNumber(run.startedAtUnixMs) || toNumber(run.dispatchedAtUnixMs);
  if (!started) return h('span', {class: 'muted', text: '—'});
  const end = toNumber(run.finishedAtUnixMs) || Date.now();
  return h('span', {text: formatDuration(end - started)});
}

async function lookups(signal) {
  const [flows, connections] = await Promise.all([
    listAll('FlowService', 'ListFlows', 'flows', {}, {signal}),
    listAll('ConnectionService', 'ListConnections', 'connections', {}, {signal}),
  ]);
  return {
    flows: new Map(flows.map((f) => [f.flowId, f])),
    connections: new Map(connections.map((c) => [c.connectionId, c])),
  };
}

function flowCell(names, run) {
  const flow = names.flows.get(run.flowId);
  return h('div', {class: 'cell-main'},
    h('a', {href: `#/flows/${encodeURIComponent(run.flowId)}`, text: flow ? flow.name : run.flowId}),
    h('div', {class: 'cell-sub', text: `v${run.flowVersion}`}));
}

function connectionCell(names, run) {
  const connection = names.connections.get(run.connectionId);
  return connection ? h('span', {text: connection.name}) : h('span', {class: 'muted', title: run.connectionId, text: 'deleted connection'});
}

function stateCell(run, {detail = true} = {}) {
  return h('div', {}, runStatePill(run.state),
    run.cancelRequested && !TERMINAL_RUN_STATES.has(run.state) ? h('div', {class: 'cell-sub', text: 'cancel requested'}) : null,
    detail && run.stateDetail && run.stateDetail !== runStateLabel(run.state)
      ? h('div', {class: 'cell-sub ellipsis', title: run.stateDetail, text: run.stateDetail}) : null);
}

export async function renderList(view, ctx) {
  const filterValue = ctx.query.get('state') || '';
  const filter = FILTERS.find((f) => f.value === filterValue) || FILTERS[0];
  const body = h('div', {});
  const slot = errorSlot();
  const live = autoRefresh(ctx, refresh, {intervalMs: REFRESH_MS, slot, title: 'Could not refresh'});
  const names = await lookups(ctx.signal);

  async function refresh() {
    const answer = await call('RunService', 'ListRuns', {pageSize: 100, states: filter.states}, {signal: ctx.signal});
    const runs = answer.runs || [];
    replace(body, table({
      caption: 'Runs',
      columns: [
        {label: 'Run', cell: (r) => h('a', {href: `#/runs/${encodeURIComponent(r.runId)}`, class: 'strong'}, idCell(r.runId, 12))},
        {label: 'Flow', cell: (r) => flowCell(names, r)},
        {label: 'Connection', cell: (r) => connectionCell(names, r)},
        {label: 'State', cell: (r) => stateCell(r)},
        {label: 'Priority', cell: (r) => priorityBadge(r.priority)},
        {label: 'Created', cell: (r) => timeCell(r.createdAtUnixMs)},
        {label: 'Duration', cell: runDuration},
      ],
      rows: runs,
      rowProps: (r) => ({dataset: {runId: r.runId, state: r.state}}),
      empty: emptyState({
        iconName: 'run',
        title: filter.states.length ? 'No runs in this state' : 'No runs yet',
        body: 'Start a run: pick a flow and a connection, fill in the inputs.',
        action: linkButton('Start a run', '#/runs/new', {kind: 'primary', iconName: 'run'}),
      }),
    }));
  }

  await refresh();
  if (!ctx.isCurrent()) return;
  const filterSelect = select(FILTERS.map((f) => ({value: f.value, label: f.label})), {'aria-label': 'Filter by state', class: 'input input-inline'});
  filterSelect.value = filter.value;
  filterSelect.addEventListener('change', () => ctx.navigate(filterSelect.value ? `#/runs?state=${filterSelect.value}` : '#/runs'));
  replace(view,
    pageHeader({
      title: 'Runs',
      subtitle: 'Every run you started, newest first. Runs queue per machine, group or cluster.',
      actions: [button('Refresh', {iconName: 'refresh', onClick: () => live.now()}),
                linkButton('Start a run', '#/runs/new', {kind: 'primary', iconName: 'run'})],
    }),
    h('div', {class: 'toolbar'}, tabs('all'), filterSelect),
    slot.el,
    body);
  live.start();
}

// The order the dispatcher serves a target's queue (docs/CLOUD.md): HIGH before NORMAL, then
// oldest first. (Runs resumed after a restart go first; the API does not say which those are.)
function queueOrder(a, b) {
  const pa = a.priority === 'RUN_PRIORITY_HIGH' ? 0 : 1;
  const pb = b.priority === 'RUN_PRIORITY_HIGH' ? 0 : 1;
  if (pa !== pb) return pa - pb;
  return toNumber(a.createdAtUnixMs) - toNumber(b.createdAtUnixMs);
}

export async function renderQueue(view, ctx) {
  const body = h('div', {class: 'queue'});
  const slot = errorSlot();
  const live = autoRefresh(ctx, refresh, {intervalMs: REFRESH_MS, slot, title: 'Could not refresh'});
  const [names, directory] = await Promise.all([lookups(ctx.signal), loadDirectory({signal: ctx.signal})]);

  async function cancel(run, buttonEl) {
    buttonEl.disabled = true;
    try {
      await call('RunService', 'CancelRun', {runId: run.runId, reason: `cancelled in the portal by ${ctx.user.name}`});
      toast(`Run ${run.runId.slice(0, 12)} cancelled.`);
      await refresh();
    } catch (e) {
      slot.show(e, {title: 'Could not cancel the run'});
      buttonEl.disabled = false;
    }
  }

  async function refresh() {
    const runs = await listAll('RunService', 'ListRuns', 'runs', {
      pageSize: 100, states: ['RUN_STATE_QUEUED', 'RUN_STATE_DISPATCHING', 'RUN_STATE_RUNNING'],
    }, {maxPages: 10, signal: ctx.signal});
    const byTarget = new Map();
    for (const run of runs) {
      const t = targetOf(run.target);
      const key = `${t.kind}:${t.id}`;
      if (!byTarget.has(key)) byTarget.set(key, {target: t, active: [], queued: []});
      (run.state === 'RUN_STATE_QUEUED' ? byTarget.get(key).queued : byTarget.get(key).active).push(run);
    }
    if (!byTarget.size) {
      replace(body, emptyState({iconName: 'run', title: 'The queue is empty',
        body: 'No run of yours is waiting or running.',
        action: linkButton('Start a run', '#/runs/new', {kind: 'primary', iconName: 'run'})}));
      return;
    }
    replace(body, [...byTarget.values()].map(({target, active, queued}) => {
      queued.sort(queueOrder);
      const rows = [...active.map((r) => ({run: r, position: null})), ...queued.map((r, i) => ({run: r, position: i + 1}))];
      return card(h('span', {class: 'queue-title'}, targetKindLabel(target.kind), ': ', targetLink(directory, target.kind, target.id),
                    h('span', {class: 'muted', text: ` · ${active.length} dispatched, ${queued.length} waiting`})),
        table({
          caption: 'Queue',
          columns: [
            {label: '#', cell: ({position}) => position === null ? h('span', {class: 'muted', text: 'now'}) : h('span', {class: 'queue-pos', text: String(position)})},
            {label: 'Run', cell: ({run}) => h('a', {href: `#/runs/${encodeURIComponent(run.runId)}`}, idCell(run.runId, 12))},
            {label: 'Flow', cell: ({run}) => flowCell(names, run)},
            {label: 'Connection', cell: ({run}) => connectionCell(names, run)},
            {label: 'Priority', cell: ({run}) => priorityBadge(run.priority)},
            {label: 'State', cell: ({run}) => stateCell(run, {detail: false})},
            {label: 'Waiting since', cell: ({run}) => timeCell(run.createdAtUnixMs)},
            {label: '', class: 'cell-actions', cell: ({run}) => run.cancelRequested ? h('span', {class: 'muted', text: 'cancelling…'})
              : button('Cancel', {kind: 'ghost-danger', iconName: 'stop', onClick: (e) => cancel(run, e.currentTarget)})},
          ],
          rows,
          rowProps: ({run}) => ({dataset: {runId: run.runId, state: run.state}}),
        }));
    }));
  }

  await refresh();
  if (!ctx.isCurrent()) return;
  replace(view,
    pageHeader({
      title: 'Runs',
      subtitle: 'What each target is doing and what waits for it: high priority first, then oldest first. One run at a time per machine.',
      actions: [button('Refresh', {iconName: 'refresh', onClick: () => live.now()}),
                linkButton('Start a run', '#/runs/new', {kind: 'primary', iconName: 'run'})],
    }),
    h('div', {class: 'toolbar'}, tabs('queue')),
    slot.el,
    body);
  live.start();
}

export async function renderNew(view, ctx) {
  const [flows, connections, directory] = await Promise.all([
    listAll('FlowService', 'ListFlows', 'flows'),
    listAll('ConnectionService', 'ListConnections', 'connections'),
    loadDirectory({groups: true, clusters: true}),
  ]);
  const header = pageHeader({
    title: 'Start a run',
    subtitle: 'The run waits in its target\u2019s queue until a machine is free.',
    back: {href: '#/runs', label: 'Runs'},
  });
  if (!flows.length || !connections.length) {
    replace(view, header, emptyState({
      iconName: flows.length ? 'connection' : 'flow',
      title: flows.length ? 'No connection yet' : 'No flow yet',
      body: flows.length ? 'A run needs a connection: a target and the account to run as.' : 'Upload a flow first.',
      action: flows.length ? linkButton('New connection', '#/connections/new', {kind: 'primary', iconName: 'plus'})
        : linkButton('Upload flow', '#/flows/new', {kind: 'primary', iconName: 'upload'}),
    }));
    return;
  }
  flows.sort((a, b) => a.name.localeCompare(b.name));
  connections.sort((a, b) => a.name.localeCompare(b.name));
  const targetName = (c) => {
    const t = targetOf(c.target);
    const collection = {machine: 'machines', group: 'groups', cluster: 'clusters'}[t.kind];
    const item = collection ? directory[collection].get(t.id) : null;
    return `${targetKindLabel(t.kind).toLowerCase()} ${item ? item.name : t.id}`;
  };

  const flowField = field({label: 'Flow', required: true,
    control: select(flows.map((f) => ({value: f.flowId, label: `${f.name} (v${f.version})`})), {name: 'flow'})});
  const versionField = field({label: 'Version', control: select([], {name: 'version'})});
  const connectionField = field({label: 'Connection', required: true,
    control: select(connections.map((c) => ({value: c.connectionId, label: `${c.name} — ${c.username} on ${targetName(c)}`})), {name: 'connection'})});
  const priorityField = field({label: 'Priority', control: select([
    {value: 'RUN_PRIORITY_NORMAL', label: 'Normal'},
    {value: 'RUN_PRIORITY_HIGH', label: 'High — ahead of every normal run of the same target'},
  ], {name: 'priority'})});
  const timeoutField = field({label: 'Timeout (seconds)',
    control: textInput({name: 'timeout', inputmode: 'numeric', placeholder: 'server default (1 h)'}),
    help: 'Maximum run time on the desktop.'});
  if (ctx.query.get('flow')) flowField.control.value = ctx.query.get('flow');
  if (ctx.query.get('connection')) connectionField.control.value = ctx.query.get('connection');

  const inputsBox = h('fieldset', {class: 'inputs-box'});
  let inputFields = [];
  let loadToken = 0;

  async function loadFlow() {
    const token = ++loadToken;
    const flowId = flowField.control.value;
    const version = Number(versionField.control.value || 0);
    replace(inputsBox, h('legend', {text: 'Inputs'}), loading('Reading the flow\u2019s inputs…'));
    const flow = await call('FlowService', 'GetFlow', {flowId, version});
    if (token !== loadToken) return;
    if (!version) {
      replace(versionField.control, h('option', {value: '0', text: `latest (v${flow.version})`}),
        Array.from({length: flow.version - 1}, (_, i) => flow.version - 1 - i).map((v) => h('option', {value: String(v), text: `v${v}`})));
    }
    const inputs = inputsOf(parseDefinition(flow.definitionJson));
    inputFields = inputs.map((input) => {
      const dflt = defaultText(input);
      let control;
      if (input.type === 'boolean') {
        control = select([{value: 'true', label: 'true'}, {value: 'false', label: 'false'}], {name: `input-${input.name}`});
        control.value = dflt === null ? 'false' : dflt;
      } else {
        control = textInput({name: `input-${input.name}`, inputmode: input.type === 'number' ? 'decimal' : null,
                             placeholder: dflt === null ? 'required' : ''});
        if (dflt !== null) control.value = dflt;
      }
      control.dataset.input = input.name;
      const f = field({label: `${input.name} (${input.type})`, control, required: dflt === null,
                       help: input.description || (dflt === null ? null : `Default: ${dflt}`)});
      return {name: input.name, field: f};
    });
    replace(inputsBox, h('legend', {text: 'Inputs'}),
      inputFields.length ? h('div', {class: 'form-grid'}, inputFields.map((x) => x.field.el))
        : h('p', {class: 'muted', text: 'This flow takes no inputs.'}));
  }

  const slot = errorSlot();
  flowField.control.addEventListener('change', () => {
    replace(versionField.control);
    loadFlow().catch((e) => slot.show(e, {title: 'Could not read the flow'}));
  });
  versionField.control.addEventListener('change', () => loadFlow().catch((e) => slot.show(e, {title: 'Could not read the flow'})));
  await loadFlow();

  // One id per filled-in form: a double submit (or a retry after a lost answer) starts one run.
  let requestId = crypto.randomUUID();
  const submit = button('Start run', {kind: 'primary', type: 'submit', iconName: 'run'});
  const form = h('form', {class: 'form', novalidate: true},
    h('div', {class: 'form-grid'}, flowField.el, versionField.el, connectionField.el, priorityField.el, timeoutField.el),
    inputsBox,
    slot.el,
    h('div', {class: 'form-actions'}, linkButton('Cancel', '#/runs'), submit));
  form.addEventListener('input', () => { requestId = crypto.randomUUID(); });
  form.addEventListener('change', () => { requestId = crypto.randomUUID(); });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    slot.clear();
    for (const x of inputFields) x.field.setError('');
    const timeoutText = timeoutField.control.value.trim();
    const timeoutOk = !timeoutText || /^[1-9]\d{0,5}$/.test(timeoutText);
    timeoutField.setError(timeoutOk ? '' : 'A whole number of seconds (at most 86400), or empty for the default.');
    if (!timeoutOk || (timeoutText && Number(timeoutText) > 86400)) {
      if (timeoutOk) timeoutField.setError('At most 86400 seconds (24 h).');
      timeoutField.control.focus();
      return;
    }
    // Object.fromEntries defines own properties: an input named "__proto__" is sent like any other.
    const inputs = Object.fromEntries(inputFields.map((x) => [x.name, x.field.control.value]));
    const request = {
      flowId: flowField.control.value,
      flowVersion: Number(versionField.control.value || 0),
      connectionId: connectionField.control.value,
      inputs,
      priority: priorityField.control.value,
      timeoutMs: timeoutText ? String(Number(timeoutText) * 1000) : '0',
      requestId,
    };
    await whileBusy(form, submit, 'Starting…', async () => {
      try {
        const answer = await call('RunService', 'RunFlow', request);
        toast(`Run ${answer.runId.slice(0, 12)} queued.`);
        ctx.navigate(`#/runs/${encodeURIComponent(answer.runId)}`);
      } catch (e) {
        // Input errors name the input ("inputs: input \"Count\": ..."): show them at its field too.
        const m = /^(?:inputs: )?input "([^"]+)"/.exec(e.message || '');
        const target = m && inputFields.find((x) => x.name === m[1]);
        if (target) target.field.setError(e.message);
        slot.show(e, {title: 'The run was not started'});
      }
    });
  });

  replace(view, header, card(null, form));
}
